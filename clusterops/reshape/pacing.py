"""How fast the key mover may go: a ceiling on keys per second, for the operator to trade move
speed against what live clients feel.

A source runs every MIGRATE of a pipeline back to back while its other clients wait (Redis is
one thread), so the clients' latency during a move is set by how much the mover sends at once
and how often. Unpaced, the mover sends a chunk's MIGRATEs in pipelines as fast as the nodes
take them. Paced, it sends at most ``rate`` keys per second on average (and, in
``SlotMover``, one small MIGRATE per round trip from one source at a time), sleeping in
between: each stall of a source is short and the clients get the time between. The ceiling
is shared by every source of a move, so it is the move's rate, not one pair's. What it buys:
docs/reshard-pacing.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

ROUND_SECONDS = 0.05  # a paced round sends about this long's worth of keys at the rate


class KeyPacer:
    """Keys sent so far never run ahead of ``rate`` x elapsed time by more than one round."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError(f"a pace is a positive number of keys per second, not {rate}")
        self.rate = float(rate)
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._started: float | None = None
        self._sent = 0

    @property
    def round_keys(self) -> int:
        """How many keys one paced round may carry (at least one)."""
        return max(1, int(self.rate * ROUND_SECONDS))

    def before_sending(self, keys: int) -> None:
        """Wait until ``keys`` more may go, then count them as sent."""
        with self._lock:
            now = self._clock()
            if self._started is None:
                self._started = now
            due = self._started + self._sent / self.rate
            self._sent += keys
        if due > now:
            self._sleep(due - now)
