"""The pace of the calls: ``Pace``, what the dispatcher paces its calls with, and its two
kinds, each in its own module on the statistics they share (``base.AnswerStats``):

- ``auto.PaceController``: ``--rate auto``, as fast as the server takes calls without
  slowing down (``docs/pace.md``);
- ``fixed.FixedPace``: ``--rate N``, the rate chosen, slowed down by throttling only.

Pure: no I/O, no clock, no asyncio; every input carries its time ``now_s``, so both are
tested on a virtual clock (``tests/test_pace.py``).
"""

from bulkimport.send.pace.auto import PaceController, PaceSettings, PaceTuning
from bulkimport.send.pace.base import (
    AnswerStats,
    Pace,
    PaceReason,
    PaceState,
    Signal,
    p95_of,
    signal_of,
)
from bulkimport.send.pace.fixed import FixedPace

__all__ = [
    "AnswerStats",
    "FixedPace",
    "Pace",
    "PaceController",
    "PaceReason",
    "PaceSettings",
    "PaceState",
    "PaceTuning",
    "Signal",
    "p95_of",
    "signal_of",
]
