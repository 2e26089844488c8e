"""What an ingest owes the batches it reads in a worker thread: it ends only once its thread
has, and leaves them closed.

A thread cannot be cancelled, and a generator cannot be closed from one thread while
another runs it (``ValueError: generator already executing``, raised there or, when the
last reference goes in the worker thread, as an unraisable error of its finalizer). So the
coroutine that started the thread waits it out whatever cancels it meanwhile, and the
batches are closed where nothing else can be running them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator, Iterator
from typing import Any


async def outlast(work: asyncio.Future[Any]) -> None:
    """Wait until ``work`` (a worker thread's) is done, however often the waiting task is
    cancelled meanwhile (a second Ctrl-C, a shutdown). Its error, if any, is taken as seen:
    the caller goes on with the cancellation that made it wait."""
    while not work.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({work})
    if not work.cancelled():
        work.exception()


def close_batches(batches: Iterator[Any]) -> None:
    """Close ``batches`` if they are a generator: its ``finally`` (the reader's file) runs
    now, in the calling thread, and a resume reads again from the committed position."""
    if isinstance(batches, Generator):
        batches.close()
