"""Rows given by a program, staged durably into a job (``Client.load_rows``).

A job of rows is known by its name as a file's job is by the file: the same name and
target find its unfinished job again. Rows are pulled from the caller's iterable a batch at
a time and each batch is committed with the number of rows taken so far; a job that
stopped while staging (the caller's source failed, Ctrl-C, a fatal answer) goes on when the
same name is loaded again with the same rows: as many as were staged are passed over, not
stored twice, and staging goes on after them.

A plain iterable is pulled on the event loop's thread, as the caller wrote it (a cursor
that belongs to its thread keeps working); an async iterable is awaited. Records are made
from the mappings in the storage's thread, beside the commit.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from bulkimport import messages
from bulkimport.errors import ConfigError, InputError
from bulkimport.events import (
    ColumnsAdded,
    Emit,
    JobOpened,
    JobStopped,
    Opened,
    ReadProgress,
    RenameUnused,
    Step,
    StopFacts,
)
from bulkimport.jobs.summary import resumed
from bulkimport.reader import MappingRows, ReaderOptions, as_mapping, rows_format, rows_identity
from bulkimport.rows import Batch
from bulkimport.send import Feed
from bulkimport.settings import Settings, Target
from bulkimport.states import JobState, StopCause
from bulkimport.storage import Job, Storage

#: What ``load_rows`` takes: mappings of column to value, from anywhere.
RowSource = Iterable[Mapping[Any, Any]] | AsyncIterable[Mapping[Any, Any]]

log = logging.getLogger("bulkimport")

STAGE_BATCH_ROWS = 5000


class _Pull:
    """The caller's rows, a chunk at a time, whether they come from an iterable or an
    async iterable."""

    def __init__(self, rows: RowSource) -> None:
        self._sync: Iterator[Mapping[Any, Any]] | None = None
        self._async: AsyncIterator[Mapping[Any, Any]] | None = None
        if isinstance(rows, AsyncIterable):
            self._async = aiter(rows)
        elif isinstance(rows, Iterable) and not isinstance(rows, str | bytes | Mapping):
            self._sync = iter(rows)
        else:
            raise ConfigError(messages.not_rows(type(rows).__name__))

    async def chunk(self, size: int) -> list[Any]:
        """Up to ``size`` rows; fewer only at their end."""
        if self._sync is not None:
            items: list[Any] = list(itertools.islice(self._sync, size))
        else:
            assert self._async is not None
            items = []
            async for item in self._async:
                items.append(item)
                if len(items) >= size:
                    break
        return items

    async def skip(self, count: int) -> int:
        """Pass over ``count`` rows (fewer if the rows end first); return how many."""
        passed = 0
        while passed < count:
            taken = len(await self.chunk(min(STAGE_BATCH_ROWS, count - passed)))
            if not taken:
                break
            passed += taken
        return passed

    async def close(self) -> None:
        """Close an async generator we stopped pulling from (its ``finally`` runs now). A
        failure there is the caller's to know, but must not hide why staging ended."""
        if self._async is not None and hasattr(self._async, "aclose"):
            try:
                await self._async.aclose()
            except Exception:
                log.warning("closing the rows' async iterator failed", exc_info=True)


class RowsInput:
    """The rows of one ``load_rows`` call: the caller's source and the name they go by."""

    def __init__(self, rows: RowSource, name: str) -> None:
        self.identity = rows_identity(name)
        self.name = name
        self.pull = _Pull(rows)
        self._first: list[Any] = []
        #: How the keys map to fields (``open_rows_job`` sets the run's).
        self.options = ReaderOptions()

    async def first(self) -> tuple[int, Any]:
        """The first row that has a key, and its number; the rows up to it are kept (staging
        starts with them). A row with no key (a contact whose every value is empty, which
        its feed gives as ``{}``) names no column: it is a blank row, as in a file."""
        checked = 0
        while True:
            for item in self._first[checked:]:
                checked += 1
                mapping = as_mapping(item)
                if mapping is None or len(mapping):
                    return checked, item
            more = await self.pull.chunk(1)
            if not more:
                raise InputError(messages.no_keys(self.name, any_rows=bool(self._first)))
            self._first.extend(more)

    async def chunk(self, size: int) -> list[Any]:
        if self._first:
            head, self._first = self._first[:size], self._first[size:]
            if len(head) < size:
                head += await self.pull.chunk(size - len(head))
            return head
        return await self.pull.chunk(size)


async def open_rows_job(
    storage: Storage,
    rows: RowsInput,
    settings: Settings,
    target: Target,
    options: ReaderOptions,
    *,
    new: bool,
    emit: Emit,
) -> Job:
    """The unfinished job of these rows (by name) for the target, or a new one whose
    columns are the first row's keys, mapped by ``options`` as a file's are (and so are the
    keys later rows bring)."""
    rows.options = options
    if not new:
        job = await storage.jobs.find_unfinished(rows.identity, target.ref)
        if job is not None:
            emit(await resumed(storage, job, Opened.FOUND))
            return job
    number, first = await rows.first()
    fmt = rows_format(rows.name, first, options, number=number)
    job = await storage.jobs.create(rows.identity, target.ref, settings.stored(), fmt.to_json())
    emit(JobOpened(job.id, job.file.path, fmt, len(fmt.header), rows_name=rows.name))
    return job


async def stage_rows(
    storage: Storage,
    job: Job,
    rows: RowsInput | None,
    emit: Emit,
    halt: threading.Event,
    *,
    feed: Feed | None = None,
) -> Job:
    """Stage the job's rows from where staging stopped to their end (``read_job`` for rows
    given by a program). ``halt`` ends it after the batch in hand; alone, the job is then
    ``interrupted``. Raises ``ConfigError`` without ``rows`` (a resume from the command
    line): only the program that gives the rows can go on staging them."""
    if rows is None:
        raise ConfigError(messages.rows_from_a_program(job.id))
    make = MappingRows(job.format, rows.options)
    total = job.total_rows
    emit(ReadProgress(job.id, Step.START, job.read_offset, 0, 0))
    number = job.read_offset + 1
    whole = False
    try:
        passed = await rows.pull.skip(job.read_offset) if job.read_offset else 0
        if passed < job.read_offset:
            raise InputError(messages.fewer_rows(rows.name, passed, job.read_offset, job.id))
        number = job.read_offset + 1
        while not halt.is_set():
            items = await rows.chunk(STAGE_BATCH_ROWS)
            if not items:
                whole = True
                break
            items = make.mappings(number, items)
            added = make.new_columns(items)
            if added:
                # Before the rows that have them: the columns of a job only ever grow, and
                # in the order the rows bring them, so a resume stages the rest alike.
                await storage.reading.widen(job.id, make.widen(list(added)).to_json())
                first = {key: number + place for key, place in added.items()}
                emit(ColumnsAdded(job.id, first))
            stored = await storage.reading.ingest(job.id, _made(make, number, items))
            number += len(items)
            total += stored
            emit(ReadProgress(job.id, Step.GOING, number - 1, 0, total))
            if feed is not None:
                feed.added.set()
    finally:
        emit(ReadProgress(job.id, Step.END, number - 1, 0, total))
        await rows.pull.close()
    if whole:
        for key in make.unused_renames():
            emit(RenameUnused(job.id, key))
    return await end_reading(storage, job, emit, whole=whole, alone=feed is None)


async def end_reading(storage: Storage, job: Job, emit: Emit, *, whole: bool, alone: bool) -> Job:
    """Reading (or staging) stopped: at the end of the rows, the job is read; before it, a
    job only being read (``alone``) is interrupted (and says so: ``JobStopped``), one being
    sent keeps sending's state."""
    if not whole:
        if alone:
            facts = StopFacts(StopCause.SIGNAL, at=time.time(), reading=True)
            await storage.jobs.set_state(
                job.id, JobState.INTERRUPTED, cause=facts.cause, facts=facts.to_json()
            )
            emit(JobStopped(job.id, JobState.INTERRUPTED, facts))
        return await storage.jobs.get(job.id)
    await storage.reading.finish(job.id)
    return await storage.jobs.get(job.id)


def _made(make: MappingRows, number: int, items: list[Any]) -> Iterator[Batch]:
    # A generator: the records are made in the storage's thread, beside the commit.
    yield make.batch(number, items)
