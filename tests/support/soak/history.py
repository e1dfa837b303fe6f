"""What the soak's clients did: one record per operation, appended from several threads.

Outcomes of a write: ``acked`` (SET returned OK and WAIT 1 said a replica has it), ``unacked``
(SET returned OK, no replica confirmed within the WAIT timeout), ``fail`` (an error: the write
may or may not have been applied; a timeout in particular says nothing). Of a read: ``ok``
(``value`` is what was read, -1 for no key) or ``fail``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Op:
    workload: str  # "set" or "register"
    kind: str  # "write" or "read"
    key: str
    value: int  # the element or version written; for reads, what was read (-1: none)
    slot: int
    start: float  # monotonic
    end: float
    outcome: str  # acked | unacked | fail (writes); ok | fail (reads)
    error: str = ""

    @property
    def succeeded(self) -> bool:
        return self.outcome != "fail"


class History:
    """A thread-safe list of operations, in the order they completed."""

    def __init__(self) -> None:
        self._ops: list[Op] = []
        self._lock = threading.Lock()

    def add(self, op: Op) -> None:
        with self._lock:
            self._ops.append(op)

    def ops(self) -> list[Op]:
        with self._lock:
            return list(self._ops)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ops)


@dataclass
class FaultRecord:
    """One fault as the nemesis ran it; times are monotonic, ``healed`` None when it never did."""

    kind: str
    targets: tuple[str, ...]
    injected: float
    recovered: float  # when the nemesis undid it (restart, SIGCONT, reconnect, ...)
    healed: float | None = None
    note: str = ""  # e.g. what a `pulumi up` run during the fault answered

    @property
    def heal_seconds(self) -> float | None:
        return None if self.healed is None else self.healed - self.recovered
