"""``SendWindow``: the hours of the day, local time, in which a job may send (``--window``).

The server also carries the live call center, and many sites may load only at night:
``20:00-07:00`` is open from 20:00 to 07:00 the next morning. Pure: the time is given.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

_WINDOW_RE = re.compile(r"\A\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*\Z")


def _time(hours: str, minutes: str, text: str) -> datetime.time:
    try:
        return datetime.time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"{text!r}: {hours}:{minutes} is not a time of day") from None


@dataclass(frozen=True)
class SendWindow:
    """Open from ``start`` (included) to ``end`` (excluded), local time; across midnight
    when ``end`` is not after ``start``."""

    start: datetime.time
    end: datetime.time

    @classmethod
    def parse(cls, text: str) -> SendWindow:
        """``20:00-07:00``, ``9:30-17:00``."""
        match = _WINDOW_RE.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a window of hours (e.g. 20:00-07:00)")
        start = _time(match[1], match[2], text)
        end = _time(match[3], match[4], text)
        if start == end:
            raise ValueError(
                f"{text!r} starts when it ends; leave the window out to send at any time"
            )
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def is_open(self, now_s: float) -> bool:
        """Whether a call may start at ``now_s`` (Unix seconds)."""
        now = datetime.datetime.fromtimestamp(now_s).time()
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end

    def opens_at(self, now_s: float) -> float:
        """When the window next opens (``now_s`` itself if it is open)."""
        if self.is_open(now_s):
            return now_s
        return _next(now_s, self.start)

    def closes_at(self, now_s: float) -> float:
        """When the window next closes after ``now_s``."""
        return _next(now_s, self.end)


def _next(now_s: float, at: datetime.time) -> float:
    """The first moment after ``now_s`` whose local time of day is ``at``."""
    now = datetime.datetime.fromtimestamp(now_s)
    day = now.date()
    for _ in range(3):  # today, tomorrow; a day more when a DST jump skips ``at``
        moment = datetime.datetime.combine(day, at).timestamp()
        if moment > now_s:
            return moment
        day += datetime.timedelta(days=1)
    return moment
