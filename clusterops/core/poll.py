"""The one polling helper: probe until done or a monotonic deadline, keeping what was last seen.

Callers turn a timeout into their own error (formation, drill, password rotation, tests),
always naming what they saw last, so a timeout explains itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

Seen = TypeVar("Seen")


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock (wall-clock jumps cannot shorten or stretch it)."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    @property
    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at


def poll(
    probe: Callable[[], tuple[bool, Seen]], deadline: Deadline, interval_s: float
) -> tuple[bool, Seen]:
    """Call ``probe`` (returns ``(done, what it saw)``) every ``interval_s`` until it is done or
    the deadline passes; return the last ``(done, seen)``. The probe runs at least once, and
    its exceptions propagate: a probe catches what waiting can fix and raises what it cannot.
    """
    while True:
        started = time.monotonic()
        done, seen = probe()
        if done or deadline.expired:
            return done, seen
        # Sleep out the rest of the interval (the probe's own time counts), never past the end.
        time.sleep(min(max(0.0, interval_s - (time.monotonic() - started)), deadline.remaining))
