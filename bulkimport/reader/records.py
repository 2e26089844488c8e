"""From the cells of one record of the file to the row that is stored: the one record encoder.

``RecordMaker.make`` encodes exactly as ``protocol.encode_record`` would, but fast: the names
were checked once (when the header was mapped), so a record can only fail on a value holding
``|``, and counting the ``|`` of the joined record tells whether one does. Such a record, and
only such a one, goes through ``encode_record`` for its verdict and message.

``cells_rebuilder`` is the way back, for the formats that lose nothing on the way: it gives a
row's cells back from its record, so storage need not keep them twice.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from itertools import compress

from bulkimport.errors import RecordError
from bulkimport.protocol import RECORD_SEPARATOR, decode_record, encode_record
from bulkimport.reader.format import FileFormat
from bulkimport.rows import NewRow
from bulkimport.states import InvalidReason, RowState

_new_tuple = tuple.__new__
_PENDING = RowState.PENDING
_INVALID = RowState.INVALID


class RecordMaker:
    """Turns the cells of one record of a file of format ``fmt`` into its ``NewRow``.

    ``template`` (``name=%s||phone1=%s...``) encodes, in one C call, the common record that
    has every cell of the header and no empty one; anything else takes the general path.
    """

    def __init__(self, fmt: FileFormat) -> None:
        kept = [index for index, name in enumerate(fmt.fields) if name is not None]
        self.width = len(fmt.header)
        self.names = [name for name in fmt.fields if name is not None]
        self.prefixes = [f"{name}=" for name in self.names]
        self.pick: Callable[[Sequence[str]], tuple[str, ...]] | None
        if kept == list(range(self.width)):
            self.pick = None
        elif len(kept) == 1:
            only = kept[0]
            self.pick = lambda cells: (cells[only],)
        else:
            self.pick = operator.itemgetter(*kept)
        self.constants = fmt.constants
        self.keep_empty = fmt.keep_empty
        self.tail = "".join(f"{RECORD_SEPARATOR}{name}={value}" for name, value in fmt.constants)
        # The pipes of a record of n parts, when its values hold none: 2 * n + tail_pipes.
        self.tail_pipes = self.tail.count("|") - 2
        # A name with a '|' of its own would throw the count off: always check such records.
        self.countable = not any("|" in name for name in self.names)
        self.template = RECORD_SEPARATOR.join(
            prefix.replace("%", "%%") + "%s" for prefix in self.prefixes
        ) + self.tail.replace("%", "%%")
        self.template_pipes = 2 * len(self.prefixes) + self.tail_pipes
        self.undecodable = f"undecodable bytes (not {fmt.encoding}); try another --encoding"

    def make(self, line: int, cells: tuple[str, ...], undecodable: bool = False) -> NewRow:
        """The row for a record starting at ``line`` (any record, valid or not)."""
        return self.maker()(line, cells, undecodable)

    def maker(self) -> Callable[[int, tuple[str, ...], bool], NewRow]:
        """``make`` as a plain function, for loops over millions of records: the common case
        (the header's width, no empty value, no '|' in any) runs on local names only."""
        width, pick, template = self.width, self.pick, self.template
        template_pipes, general = self.template_pipes, self._make
        if not self.countable:
            return general

        def make(line: int, cells: tuple[str, ...], undecodable: bool = False) -> NewRow:
            if not undecodable and len(cells) == width:
                values = cells if pick is None else pick(cells)
                if "" not in values:
                    record = template % values
                    if record.count("|") == template_pipes:
                        return _new_tuple(NewRow, (line, _PENDING, record, cells, None, None))
            return general(line, cells, undecodable)

        return make

    def _make(self, line: int, cells: tuple[str, ...], undecodable: bool) -> NewRow:
        count = len(cells)
        width = self.width
        if undecodable:
            return NewRow(line, _INVALID, None, cells, InvalidReason.ENCODING, self.undecodable)
        if count != width and (count < width or any(cells[width:])):
            if not count:
                return NewRow(line, _INVALID, None, cells, InvalidReason.EMPTY_LINE, "empty line")
            message = f"{count} cells, the header has {width}"
            return NewRow(line, _INVALID, None, cells, InvalidReason.CELLS, message)
        values = cells[:width] if self.pick is None else self.pick(cells)
        if not any(values):
            return NewRow(line, _INVALID, None, cells, InvalidReason.NO_VALUES, "no values")
        if self.keep_empty:
            parts = list(map(operator.add, self.prefixes, values))
        else:
            parts = list(compress(map(operator.add, self.prefixes, values), values))
        record = RECORD_SEPARATOR.join(parts) + self.tail
        if not self.countable or record.count("|") != 2 * len(parts) + self.tail_pipes:
            pairs = [
                (name, value)
                for name, value in zip(self.names, values, strict=True)
                if value or self.keep_empty
            ]
            try:
                record = encode_record(pairs + list(self.constants))
            except RecordError as exc:
                return NewRow(line, _INVALID, None, cells, InvalidReason.PIPE, str(exc))
        return NewRow(line, _PENDING, record, cells)


def cells_rebuilder(fmt: FileFormat) -> Callable[[str], tuple[str, ...]] | None:
    """How to get a pending row's cells back from its record, for a format that loses
    nothing on the way: every column sent under a name of its own (one without ``|``), no
    constants added, so each cell is in the record (an empty one by its absence). ``None``
    for any other format."""
    fields, constants = fmt.fields, fmt.constants
    if constants or not fields:
        return None
    names = [name for name in fields if name is not None and "|" not in name]
    if len(names) != len(fields) or len(set(names)) != len(names):
        return None

    def rebuild(record: str) -> tuple[str, ...]:
        values = dict(decode_record(record))
        return tuple(values.get(name, "") for name in names)

    return rebuild
