"""How a row's cells are stored: the joined form, and JSON when it cannot be used."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from bulkimport.storage.sqlite.cells import CELLS_MARK, CELLS_UNIT, decode_cells, encode_cells

# Text with the separators, quotes, line breaks and non-ASCII characters made likely.
cell_text = st.text(
    alphabet=st.one_of(
        st.sampled_from([CELLS_MARK, CELLS_UNIT, '"', ",", "\n", "\r", "[", "]", "张", "é"]),
        st.characters(),
    )
)


@given(st.lists(cell_text, max_size=8).map(tuple))
def test_any_cells_round_trip(cells: tuple[str, ...]) -> None:
    assert decode_cells(encode_cells(cells)) == cells


def test_plain_cells_are_joined() -> None:
    cells = ("13800000000", "张三", 'say "hi", then\nleave', "\x1e")
    stored = encode_cells(cells)
    assert stored == CELLS_MARK + CELLS_UNIT.join(cells)
    assert decode_cells(stored) == cells


def test_cells_holding_the_separator_or_none_fall_back_to_json() -> None:
    for cells in [("a\x1fb", "c"), (), ("",)]:
        stored = encode_cells(cells)
        if cells == ("",):
            assert stored == CELLS_MARK  # one empty cell joins to nothing: still exact
        else:
            assert json.loads(stored) == list(cells)
        assert decode_cells(stored) == cells


def test_cells_stored_as_json_by_earlier_versions_still_decode() -> None:
    assert decode_cells('["张三","a,b","x\\u001fy"]') == ("张三", "a,b", "x\x1fy")
