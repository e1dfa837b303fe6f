"""The soak: workloads running, one random fault after another, a heal wait after each, then the
checker's verdict on everything the clients saw and a fresh client's final reads."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clusterops.core.poll import Deadline, poll
from clusterops.state.live import read_live
from tests.support.soak.checker import FinalReads, Verdict, check
from tests.support.soak.healing import targets_and_access, unhealed, wait_healed
from tests.support.soak.history import FaultRecord, History
from tests.support.soak.nemesis import Nemesis, Roles, SoakTarget
from tests.support.soak.serving import ServingMonitor
from tests.support.soak.workloads import (
    CLIENT_ERRORS,
    RegisterReader,
    RegisterWriter,
    SetWriter,
    Worker,
    cluster_client,
    register_keys,
)

READ_BATCH = 500


@dataclass
class SoakSettings:
    seconds: float
    seed: int
    kinds: list[str] | None = None  # None: every kind the topology can run
    heal_timeout_s: float = 120.0
    set_lanes: int = 3
    registers: int = 8
    interval_s: float = 0.002  # each client's pause between operations
    quiet_s: tuple[float, float] = (1.0, 3.0)  # healed time between faults


@dataclass
class SoakResult:
    settings: SoakSettings
    kinds: list[str]
    faults: list[FaultRecord]
    verdict: Verdict
    final_problems: list[str]
    stopped_early: str  # why the fault loop stopped before its time ('' when it did not)
    seconds: float
    evicted_keys: int

    def problems(self, window_allowance: float = 1.0) -> list[str]:
        found = self.verdict.problems(window_allowance) + [f"not healed at the end: {p}"
                                                           for p in self.final_problems]
        if self.stopped_early:
            found.append(self.stopped_early)
        found += [f"{f.kind} on {','.join(f.targets)}: {f.note}" for f in self.faults
                  if "re-run after healing failed" in f.note]
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.settings.seed, "seconds": round(self.seconds, 1),
            "kinds": self.kinds, "faults_injected": dict(Counter(f.kind for f in self.faults)),
            "evicted_keys": self.evicted_keys, "verdict": self.verdict.as_dict(),
            "final_problems": self.final_problems, "stopped_early": self.stopped_early,
            "fault_log": [{"kind": f.kind, "targets": list(f.targets),
                           "hold_s": round(f.recovered - f.injected, 2),
                           "heal_s": None if f.heal_seconds is None else round(f.heal_seconds, 2),
                           "window_s": window, "note": f.note}
                          for f, window in zip(self.faults, self.verdict.per_fault,
                                               strict=True)],
            "problems": self.problems(),
        }


def run_soak(target: SoakTarget, settings: SoakSettings,
             log: Callable[[str], None] = print) -> SoakResult:
    rng = random.Random(settings.seed)
    kinds = settings.kinds or target.kinds()
    log(f"soak: seed {settings.seed}, {settings.seconds:g} s, faults {', '.join(kinds)}")
    targets, access = targets_and_access(target.outputs)
    healed, seen = wait_healed(targets, access, settings.heal_timeout_s)
    if healed is None:
        raise RuntimeError(f"the cluster is not healthy before the soak: {seen}")
    chunks = chunk_starts(read_live(targets.nodes, access).owners)
    history = History()
    run_id = uuid.uuid4().hex[:8]
    keys = register_keys(run_id, settings.registers)
    set_writers = [SetWriter(target.outputs, history, run_id, lane, settings.interval_s)
                   for lane in range(settings.set_lanes)]
    workers: list[Worker] = [*set_writers,
                             RegisterWriter(target.outputs, history, keys, settings.seed,
                                            settings.interval_s),
                             RegisterReader(target.outputs, history, keys, settings.seed,
                                            settings.interval_s)]
    monitor = ServingMonitor(lambda: targets_and_access(target.outputs))
    monitor.start()
    started = time.monotonic()
    for worker in workers:
        worker.start()
    poll(lambda: (len(history) >= 50, None), Deadline.after(30), 0.1)
    nemesis = Nemesis(target, rng)
    faults: list[FaultRecord] = []
    stopped_early = ""
    deadline = Deadline.after(settings.seconds)
    # Every kind once first, in an order the seed decides, so even a short run covers them all.
    first_round = rng.sample(kinds, len(kinds))
    try:
        while first_round or not deadline.expired:
            targets, access = targets_and_access(target.outputs)
            roles = Roles.of(read_live(targets.nodes, access))
            kind = first_round.pop(0) if first_round else rng.choice(kinds)
            record, rerun = nemesis.run_one(kind, roles)
            faults.append(record)
            targets, access = targets_and_access(target.outputs)
            record.healed, seen = wait_healed(targets, access, settings.heal_timeout_s)
            log(f"  {time.monotonic() - started:7.1f} s  {kind:<17} {','.join(record.targets):<32}"
                f" held {record.recovered - record.injected:5.2f} s, healed "
                + (f"{record.heal_seconds:5.2f} s later" if record.healed else f"NEVER: {seen}")
                + (f"  [{record.note}]" if record.note else ""))
            if record.healed is None:
                stopped_early = f"{kind} on {','.join(record.targets)} never healed: {seen}"
                break
            if rerun is not None:
                record.note += _rerun(rerun, target, settings, log)
            time.sleep(rng.uniform(*settings.quiet_s))
    finally:
        for worker in workers:
            worker.stop()
        serving = monitor.stop()
    elapsed = time.monotonic() - started
    targets, access = targets_and_access(target.outputs)
    final_problems = unhealed(targets, access)
    final = final_reads(target.outputs, [k for w in set_writers for k in w.written_keys()], keys)
    verdict = check(history.ops(), final, faults, target.node_timeout_s, chunks, serving)
    return SoakResult(settings, kinds, faults, verdict, final_problems, stopped_early, elapsed,
                      evicted_keys(target.outputs))


def chunk_starts(owners: list[str | None], parts: int = 4) -> list[int]:
    """Each master's range at the start split in ``parts``: availability is judged per chunk,
    and a chunk inside one master's range fails and recovers as one."""
    starts = []
    first = 0
    for slot in range(1, len(owners) + 1):
        if slot == len(owners) or owners[slot] != owners[first]:
            size = slot - first
            starts += sorted({first + size * part // parts for part in range(parts)})
            first = slot
    return starts


def _rerun(action: Callable[[], str], target: SoakTarget, settings: SoakSettings,
           log: Callable[[str], None]) -> str:
    """Re-run a deploy or rebalance that failed during its fault, once, on the healed cluster."""
    try:
        outcome = f"; re-run after healing: ok: {action()}"
    except Exception as exc:  # noqa: BLE001 - reported
        outcome = f"; re-run after healing failed: {type(exc).__name__}: {str(exc)[:300]}"
    log(f"           {outcome[2:]}")
    targets, access = targets_and_access(target.outputs)
    healed, seen = wait_healed(targets, access, settings.heal_timeout_s)
    return outcome if healed else f"{outcome}; re-run after healing failed to heal: {seen}"


def final_reads(outputs: dict[str, Any], set_keys: list[str], registers: list[str]
                ) -> FinalReads:
    """Every key either workload wrote, read by a fresh client (retrying a batch that fails:
    the cluster is healed, so an error here is transient)."""
    client = cluster_client(outputs)
    try:
        values: dict[str, int | None] = {}
        everything = set_keys + registers
        for start in range(0, len(everything), READ_BATCH):
            batch = everything[start:start + READ_BATCH]
            done, got = poll(lambda b=batch: _read_batch(client, b), Deadline.after(60), 0.5)
            if not done:
                raise RuntimeError(f"final reads failed: {got}")
            values.update(zip(batch, got, strict=True))
        return FinalReads({k: values[k] for k in set_keys},
                          {k: -1 if values[k] is None else int(values[k]) for k in registers})
    finally:
        client.close()


def _read_batch(client: Any, keys: list[str]) -> tuple[bool, Any]:
    try:
        return True, [None if v is None else int(v) for v in client.mget_nonatomic(keys)]
    except CLIENT_ERRORS as exc:
        return False, f"{type(exc).__name__}: {exc}"


def evicted_keys(outputs: dict[str, Any]) -> int:
    """Keys the masters evicted (maxmemory policy): acknowledged writes Redis may drop."""
    targets, access = targets_and_access(outputs)
    total = 0
    for node in targets.nodes:
        try:
            with access.client(node) as conn:
                total += int(conn.info("stats").get("evicted_keys", 0))
        except CLIENT_ERRORS:
            continue
    return total
