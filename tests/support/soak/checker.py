"""The soak's verdict: a pure function of the history, the final reads and the faults.

What Redis Cluster promises, and so what is asserted:
- a write that WAIT 1 confirmed (a replica has it) survives any single fault: ``acked_lost``
  must be 0;
- a write SET answered OK but no replica confirmed may be lost when its master dies before
  replicating it (Redis' asynchronous replication): counted as ``unacked_lost``, allowed;
- a write that failed (error, timeout) may still have been applied: ``failed_appeared``,
  allowed;
- a read may return an older value than one already acknowledged: a client's map still points
  at a master that was failed over and has not noticed yet, for up to node-timeout: counted as
  ``stale_reads``, allowed; a read of a value never written is a bug (``phantom_reads``, 0).

Availability is judged per chunk of slots (a quarter of each master's range when the soak
began: ``chunk_starts``): a window opens at the first failed operation in a chunk and closes
when an operation in that chunk succeeds again. Each window is charged to every fault whose
time (injection to healed) it overlaps. Goal per fault: node-timeout + 2 s. Where no copy of
the data stays reachable, or too few masters are left to vote a failover (a master cut off
together with its replica, a host holding half the masters or more:
``FAULTS_WITHOUT_FAILOVER``), nothing can serve its slots during the cut, and afterwards the
other masters clear the FAIL flag of a master that comes back still owning its slots only
2 x node-timeout after they set it (CLUSTER_FAIL_UNDO_TIME_MULT in Redis' cluster.c): there
the goal is the cut's length + 2 x node-timeout + 2 s.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from statistics import median
from typing import Any

from tests.support.soak.history import FaultRecord, Op

# No failover can serve these: the shard's replica is cut off too, or too few masters are left
# to vote one (a host holding half the masters or more).
FAULTS_WITHOUT_FAILOVER = frozenset({"partition_shard", "host_cut_masters"})
FAIL_UNDO_TIME_MULT = 2  # cluster.c: a master back with its slots is un-FAILed after 2 x timeout
GRACE_S = 2.0  # the goal: longest unavailable window <= node-timeout + 2 s
DEFAULT_CHUNKS = tuple(range(0, 16384, 1024))


@dataclass(frozen=True)
class Window:
    chunk: int
    start: float
    end: float
    failures: int
    errors: tuple[str, ...] = ()  # the failures' errors, most frequent first

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class FinalReads:
    """What a fresh client read after the soak: every key either workload wrote."""

    set_values: Mapping[str, int | None]  # set workload key -> its value now (None: missing)
    registers: Mapping[str, int]  # register key -> the version it holds now (-1: none)


@dataclass
class Verdict:
    counts: dict[str, int] = field(default_factory=dict)
    availability: dict[str, float] = field(default_factory=dict)
    faults: dict[str, dict[str, Any]] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    per_fault: list[float] = field(default_factory=list)  # each fault's longest judged window

    @property
    def acked_lost(self) -> int:
        return self.counts["acked_lost"]

    def problems(self, window_allowance: float = 1.0) -> list[str]:
        """Every goal missed, in words (empty: all met). ``window_allowance``: the windows are
        judged against goal x this (the short e2e soak's ceiling, see its module)."""
        found = [f"{self.counts[k]} {k.replace('_', ' ')}: {self.examples.get(k, [])[:5]}"
                 for k in ("acked_lost", "phantom_reads") if self.counts[k]]
        for kind, entry in self.faults.items():
            if entry["unhealed"]:
                found.append(f"{kind}: {entry['unhealed']} fault(s) never healed")
            ceiling = round(entry["goal_s"] * window_allowance, 2)
            if entry["longest_window_s"] > ceiling or (window_allowance == 1.0
                                                       and not entry["within_goal"]):
                found.append(f"{kind}: an unavailable window of {entry['longest_window_s']} s, "
                             f"over {ceiling} s")
        return found

    def as_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "availability": self.availability,
                "faults": self.faults, "examples": self.examples}


def check(ops: Sequence[Op], final: FinalReads, faults: Sequence[FaultRecord],
          node_timeout_s: float, chunk_starts: Sequence[int] = DEFAULT_CHUNKS,
          serving: Sequence[tuple[float, bool]] = ()) -> Verdict:
    """``serving``: (time, every slot served) samples from the nodes' side (serving.py); the
    goals are judged on its windows when given, else on the clients'."""
    verdict = Verdict()
    _check_set(ops, final, verdict)
    _check_registers(ops, final, verdict)
    for workload in ("set", "register"):
        mine = [op for op in ops if op.workload == workload]
        verdict.availability[workload] = (
            round(sum(op.succeeded for op in mine) / len(mine), 5) if mine else 1.0)
    end_of_run = max((op.end for op in ops), default=0.0)
    windows = unavailable_windows(ops, chunk_starts)
    cluster = serving_windows(serving) if serving else None
    verdict.faults = _fault_table(windows, cluster, faults, node_timeout_s, end_of_run)
    judged = windows if cluster is None else cluster
    verdict.per_fault = [round(max([0.0, *(judged[i].seconds for i in _overlapping(
        judged, f.injected, f.healed if f.healed is not None else end_of_run))]), 2)
        for f in faults]
    began = min((op.start for op in ops), default=0.0)
    verdict.examples["longest_windows"] = [
        f"{w.seconds:.2f} s from {w.start - began:.1f} s, slots {chunk_starts[w.chunk]}+, "
        f"{w.failures} failed: {', '.join(w.errors)}"
        for w in sorted(windows, key=lambda w: -w.seconds)[:5]]
    return verdict


def _check_set(ops: Sequence[Op], final: FinalReads, verdict: Verdict) -> None:
    writes = [op for op in ops if op.workload == "set" and op.kind == "write"]
    lost = [op.key for op in writes
            if op.outcome == "acked" and final.set_values.get(op.key) != op.value]
    unacked_lost = [op.key for op in writes
                    if op.outcome == "unacked" and final.set_values.get(op.key) != op.value]
    appeared = [op.key for op in writes
                if op.outcome == "fail" and final.set_values.get(op.key) == op.value]
    verdict.counts.update({
        "set_writes": len(writes),
        "set_acked": sum(op.outcome == "acked" for op in writes),
        "set_unacked": sum(op.outcome == "unacked" for op in writes),
        "set_failed": sum(op.outcome == "fail" for op in writes),
        "acked_lost": len(lost),
        "unacked_lost": len(unacked_lost),
        "failed_appeared": len(appeared),
    })
    verdict.examples.update({"acked_lost": lost[:20], "unacked_lost": unacked_lost[:20]})


def _check_registers(ops: Sequence[Op], final: FinalReads, verdict: Verdict) -> None:
    writes: dict[str, list[Op]] = defaultdict(list)
    reads: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.workload == "register":
            (writes if op.kind == "write" else reads)[op.key].append(op)
    lost, stale, phantom, appeared = [], [], [], []
    for key in set(writes) | set(reads) | set(final.registers):
        # One writer per register: versions rise with time, so "the newest version acknowledged
        # before t" and "the newest version started by t" are bisections.
        mine = sorted(writes.get(key, []), key=lambda op: op.value)
        acked = sorted((op for op in mine if op.outcome == "acked"), key=lambda op: op.end)
        acked_ends = [op.end for op in acked]
        newest_acked = list(accumulate((op.value for op in acked), max))
        started_at = [op.start for op in mine]
        now = final.registers.get(key, -1)
        if acked and now < newest_acked[-1]:
            lost.append(f"{key}: holds {now}, version {newest_acked[-1]} was acknowledged")
        by_version = {op.value: op for op in mine}
        if now >= 0 and now not in by_version:
            phantom.append(f"{key}: holds {now}, never written")
        elif now >= 0 and by_version[now].outcome == "fail":
            appeared.append(key)
        for read in reads.get(key, []):
            if read.outcome != "ok":
                continue
            begun = bisect_right(started_at, read.end)
            if read.value > (mine[begun - 1].value if begun else 0):
                phantom.append(f"{key}: read {read.value} before it was written")
            confirmed = bisect_left(acked_ends, read.start)
            if confirmed and read.value < newest_acked[confirmed - 1]:
                stale.append(f"{key}: read {read.value} after {newest_acked[confirmed - 1]} "
                             "was acknowledged")
    verdict.counts["acked_lost"] = verdict.counts.get("acked_lost", 0) + len(lost)
    verdict.examples["acked_lost"] = [*verdict.examples.get("acked_lost", []), *lost[:20]]
    all_register = [op for op in ops if op.workload == "register"]
    verdict.counts.update({
        "register_writes": sum(op.kind == "write" for op in all_register),
        "register_reads": sum(op.kind == "read" for op in all_register),
        "register_acked": sum(op.outcome == "acked" for op in all_register),
        "stale_reads": len(stale),
        "phantom_reads": len(phantom),
        "register_failed_appeared": len(appeared),
    })
    verdict.examples.update({"stale_reads": stale[:20], "phantom_reads": phantom[:20]})


def unavailable_windows(ops: Sequence[Op],
                        chunk_starts: Sequence[int] = DEFAULT_CHUNKS) -> list[Window]:
    """Per slot chunk (``chunk_starts``: each chunk's first slot, ascending from 0): from the
    first failed operation to the next success in that chunk (or to the last failure, when
    none followed)."""
    by_chunk: dict[int, list[Op]] = defaultdict(list)
    for op in ops:
        by_chunk[bisect_right(chunk_starts, op.slot) - 1].append(op)
    windows = []
    for chunk, mine in by_chunk.items():
        mine.sort(key=lambda op: op.start)
        opened: Op | None = None
        errors: Counter[str] = Counter()
        last_failure_end = 0.0
        for op in mine:
            if not op.succeeded:
                opened = opened or op
                errors[op.error.split(" ", 3)[0][:60] if op.error else "?"] += 1
                last_failure_end = max(last_failure_end, op.end)
            elif opened is not None:
                windows.append(Window(chunk, opened.start, op.end, errors.total(),
                                      tuple(e for e, _n in errors.most_common(3))))
                opened, errors = None, Counter()
        if opened is not None:
            windows.append(Window(chunk, opened.start, last_failure_end, errors.total(),
                                  tuple(e for e, _n in errors.most_common(3))))
    return windows


def serving_windows(samples: Sequence[tuple[float, bool]]) -> list[Window]:
    """Runs of samples that found a slot unserved; each change is put halfway between the
    samples on either side of it (the error is half a sampling interval, either way)."""
    windows = []
    opened: float | None = None
    failures = 0
    previous: float | None = None
    for at, serving in samples:
        if not serving and opened is None:
            opened = at if previous is None else (previous + at) / 2
        if not serving:
            failures += 1
        elif opened is not None and previous is not None:  # previous: the run's last sample
            windows.append(Window(-1, opened, (previous + at) / 2, failures, ("slot unserved",)))
            opened, failures = None, 0
        previous = at
    if opened is not None:
        windows.append(Window(-1, opened, samples[-1][0], failures, ("slot unserved",)))
    return windows


def _overlapping(windows: Sequence[Window], start: float, until: float) -> list[int]:
    return [i for i, w in enumerate(windows) if w.end >= start and w.start <= until]


def _fault_table(windows: Sequence[Window], cluster: Sequence[Window] | None,
                 faults: Sequence[FaultRecord], node_timeout_s: float,
                 end_of_run: float) -> dict[str, dict[str, Any]]:
    judged = windows if cluster is None else cluster
    table: dict[str, dict[str, Any]] = {}
    charged: set[int] = set()
    for kind in sorted({f.kind for f in faults}):
        mine = [f for f in faults if f.kind == kind]
        longest, client_longest, worst_over = 0.0, 0.0, float("-inf")
        for fault in mine:
            until = fault.healed if fault.healed is not None else end_of_run
            goal = _goal(kind, fault.recovered - fault.injected, node_timeout_s)
            for index in _overlapping(judged, fault.injected, until):
                charged.add(index)
                longest = max(longest, judged[index].seconds)
                worst_over = max(worst_over, judged[index].seconds - goal)
            client_longest = max([client_longest, *(
                windows[i].seconds for i in _overlapping(windows, fault.injected, until))])
        heals = [f.heal_seconds for f in mine if f.heal_seconds is not None]
        holds = [f.recovered - f.injected for f in mine]
        table[kind] = {
            "count": len(mine),
            "unhealed": sum(f.healed is None for f in mine),
            "hold_s_max": round(max(holds), 2),
            "heal_s_median": round(median(heals), 2) if heals else None,
            "heal_s_max": round(max(heals), 2) if heals else None,
            "longest_window_s": round(longest, 2),
            "client_window_s": round(client_longest, 2),
            "goal_s": round(_goal(kind, max(holds), node_timeout_s), 2),
            "within_goal": worst_over <= 0,
            "notes": sorted({f.note for f in mine if f.note})[:5],
        }
    stray = [w for i, w in enumerate(judged) if i not in charged]
    table["no fault"] = {
        "count": 0, "unhealed": 0, "hold_s_max": 0.0, "heal_s_median": None,
        "heal_s_max": None, "longest_window_s": round(max((w.seconds for w in stray),
                                                          default=0.0), 2),
        "client_window_s": round(max((w.seconds for w in windows if not any(
            w.end >= f.injected and w.start <= (f.healed or end_of_run) for f in faults)),
            default=0.0), 2),
        "goal_s": GRACE_S,
        "within_goal": all(w.seconds <= GRACE_S for w in stray), "notes": [],
    }
    return table


def _goal(kind: str, hold_s: float, node_timeout_s: float) -> float:
    if kind in FAULTS_WITHOUT_FAILOVER:
        return hold_s + FAIL_UNDO_TIME_MULT * node_timeout_s + GRACE_S
    return node_timeout_s + GRACE_S
