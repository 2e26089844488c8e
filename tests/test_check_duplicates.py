"""``check``'s duplicate store: the ``DuplicateStore`` role, run against every implementation
(SQLite's temporary file, and a plain one in memory that shows the role is all ``check``
needs), then ``check`` on a real file with either."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from bulkimport.check import CheckOptions, check_file
from bulkimport.storage.interface import DuplicateStore, Repeat
from bulkimport.storage.sqlite.duplicates import SqliteDuplicates


class MemoryDuplicates:
    """A ``DuplicateStore`` in a dict: a second backend, small enough to read at a glance."""

    def __init__(self) -> None:
        self.lines: dict[str, list[int]] = defaultdict(list)
        self.closed = False

    def add(self, numbers: Sequence[tuple[int, str]]) -> None:
        for line, number in numbers:
            self.lines[number].append(line)

    def repeats(self, limit: int | None) -> tuple[int, list[Repeat]]:
        found = sorted(
            Repeat(line, number, lines[0])
            for number, lines in self.lines.items()
            for line in lines[1:]
        )
        return len(found), found[:limit]

    def of_length(self, digits: int, limit: int | None) -> list[tuple[int, str]]:
        found = sorted(
            (line, number)
            for number, lines in self.lines.items()
            if len(number) == digits and not number.startswith("+")
            for line in lines
        )
        return found[:limit]

    def close(self) -> None:
        self.closed = True


BACKENDS: dict[str, Callable[[], DuplicateStore]] = {
    "sqlite": SqliteDuplicates,
    "memory": MemoryDuplicates,
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest) -> Iterator[DuplicateStore]:
    made = BACKENDS[request.param]()
    yield made
    made.close()


def test_repeats_name_the_first_line_and_count_every_one(store: DuplicateStore) -> None:
    store.add([(2, "13800138000"), (3, "+8613800138000"), (4, "13800138001")])
    store.add([(7, "13800138000"), (9, "13800138001"), (12, "13800138000")])
    assert store.repeats(None) == (
        3,
        [Repeat(7, "13800138000", 2), Repeat(9, "13800138001", 4), Repeat(12, "13800138000", 2)],
    )


def test_repeats_keep_the_count_exact_past_the_limit(store: DuplicateStore) -> None:
    store.add([(line, "13800138000") for line in range(2, 302)])
    count, shown = store.repeats(10)
    assert count == 299
    assert [repeat.line for repeat in shown] == list(range(3, 13))
    assert {repeat.first for repeat in shown} == {2}


def test_no_repeats(store: DuplicateStore) -> None:
    store.add([(2, "13800138000"), (3, "13800138001")])
    assert store.repeats(100) == (0, [])


def test_of_length_leaves_international_numbers_out(store: DuplicateStore) -> None:
    store.add([(2, "1065529988"), (3, "+1065529988"), (4, "13800138000"), (5, "1065529989")])
    assert store.of_length(10, None) == [(2, "1065529988"), (5, "1065529989")]
    assert store.of_length(10, 1) == [(2, "1065529988")]
    assert store.of_length(12, None) == []


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_check_finds_the_same_with_either_store(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "leads.csv"
    lines = ["name,phone1", *(f"L{i},139{i:08d}" for i in range(30))]
    lines += ["Again,139-0000-0003", "Short,1065529988", "Plus,+8613900000004"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    store = BACKENDS[backend]()
    report = check_file(path, None, CheckOptions(), duplicates=store)
    found = {g.code.value: [(f.line, f.message) for f in g.examples] for g in report.groups}
    assert found["duplicate-phone"] == [(32, "phone1 '13900000003' is already on line 5")]
    assert found["phone-truncated"] == [
        (
            33,
            "phone1 '1065529988' has 10 digits where 97% of the 32 numbers have 11: Excel "
            "drops a leading 0",
        )
    ]
    if isinstance(store, MemoryDuplicates):
        assert store.closed
