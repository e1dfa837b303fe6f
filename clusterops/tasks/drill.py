"""Failover drills (the guide's section 5 as a command): fault a master, measure, verify.

One drill, for one master:

1. check the cluster is ready (every node ``cluster_state:ok``, the master has an online replica);
2. start a writer on ONE connection that does ``SET`` then ``WAIT 1 <ms>`` on keys in the
   master's slots and records, per write, whether a replica acknowledged it;
3. inject the fault (``kill``, ``stop`` or ``partition``) through a :class:`NodeControl`;
4. measure client-observed recovery: from just before the fault until a write to the master's
   slots succeeds again. Every ``poll_interval_s`` the prober asks the live nodes who owns the
   slot (CLUSTER NODES, highest config epoch wins) and writes straight to that node: no
   redis-py cluster client, whose retry backoff would inflate the number. A write accepted by
   the faulted node itself does not count: under a partition that write is the one at risk;
5. bring the node back (``start`` or ``heal``) and poll until it is a replica of the new master
   with its replication link up;
6. read every write back from the slot's current owner: acknowledged writes must all be
   there; accepted-but-unacknowledged writes that vanished are counted, not forgiven.

``python -m clusterops drill`` (clusterops/cli/commands/drill.py) wraps this; the bench and the
tests call :func:`run_master_failure_drill` directly with their own control. The writer that
records each write's outcome is clusterops.tasks.writes.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import redis
from redis.crc import key_slot

from clusterops.core.errors import DrillError, NodeControlError, UsageError
from clusterops.core.model import hash_tags
from clusterops.core.poll import Deadline, poll
from clusterops.node.observe import NodeSnapshot, refuse_on_auth
from clusterops.node.targets import Targets
from clusterops.state import checks
from clusterops.tasks.node_control import NodeControl
from clusterops.tasks.writes import (
    ACKED,
    DEFAULT_WAIT_TIMEOUT_MS,
    INDETERMINATE,
    REJECTED,
    UNACKED,
    UNSENT,
    WRITER_TIMEOUT_S,
    AckedWriter,
    Connections,
    WriteRecord,
    slot_owner_candidates,
)

MODES = ("kill", "stop", "partition")
DEFAULT_MAX_RECOVERY_S = 5.0
DEFAULT_POLL_INTERVAL_S = 0.02
DEFAULT_RECOVERY_TIMEOUT_S = 60.0
DEFAULT_REJOIN_TIMEOUT_S = 60.0
DEFAULT_READY_TIMEOUT_S = 60.0
READY_POLL_S = 0.1
REJOIN_POLL_S = 0.05
WRITER_POLL_S = 0.02
MIN_ACKED_BEFORE_FAULT = 100
KEY_TAGS = 4  # writes spread over this many slots of the master
READ_CHUNK = 500
LOST_SAMPLE = 5



def wait_until_ready(
    conns: Connections, names: Sequence[str], timeout_s: float = DEFAULT_READY_TIMEOUT_S
) -> list[NodeSnapshot]:
    """Poll until the cluster is drill-ready (:func:`clusterops.state.checks.drill_readiness`) and
    return the snapshots that showed it. A refused password raises AuthError at once."""

    def ready() -> tuple[bool, tuple[list[str], list[NodeSnapshot]]]:
        snapshots = conns.observe(names)
        refuse_on_auth(snapshots)
        problems = checks.drill_readiness(snapshots)
        return not problems, (problems, snapshots)

    done, (problems, snapshots) = poll(ready, Deadline.after(timeout_s), READY_POLL_S)
    if not done:
        raise DrillError(f"cluster not ready within {timeout_s:g}s: " + "; ".join(problems))
    return snapshots


def live_masters(conns: Connections, names: Sequence[str]) -> list[str]:
    """Names of the nodes that are masters serving slots right now (each asked itself)."""
    snapshots = conns.observe(names)
    refuse_on_auth(snapshots)
    silent = [f"{s.name} did not report its role: {s.error}" for s in snapshots if not s.myself]
    if silent:
        raise DrillError("; ".join(silent))
    return [s.name for s in snapshots if s.serves_slots]


def node_timeout_ms(conns: Connections, name: str) -> int | None:
    """cluster-node-timeout of a node, or None where CONFIG is renamed away."""
    try:
        reply = conns.client(name).config_get("cluster-node-timeout")
        return int(reply["cluster-node-timeout"])
    except (redis.RedisError, KeyError, ValueError):
        return None


@dataclass
class DrillResult:
    """What one drill measured. Times in seconds; None where the event never happened."""

    master: str
    mode: str
    node_timeout_ms: int | None = None
    new_master: str | None = None
    recovery_seconds: float | None = None
    fault_command_seconds: float | None = None
    rejoined: bool = False
    rejoin_seconds: float | None = None
    writes: int = 0
    acked_writes: int = 0
    acked_lost: int = 0
    unacked_accepted: int = 0
    unacked_lost: int = 0
    indeterminate_writes: int = 0
    rejected_writes: int = 0  # error replies (CLUSTERDOWN, MOVED, NOREPLICAS): not applied
    faulted_node_accepted_after_fault: int = 0
    faulted_node_accepted_lost: int = 0
    lost_keys_sample: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # each one fails the drill
    notes: list[str] = field(default_factory=list)  # worth knowing, not a failure

    def failures(self, max_recovery_s: float) -> list[str]:
        """Why this drill fails the operator's bar (empty when it passes)."""
        reasons = list(self.errors)
        if self.recovery_seconds is None:
            reasons.append("writes to its slots never succeeded again")
        elif self.recovery_seconds > max_recovery_s:
            reasons.append(
                f"recovery took {self.recovery_seconds:.2f}s, more than "
                f"--max-recovery-seconds {max_recovery_s:g}"
            )
        if self.acked_lost:
            reasons.append(
                f"{self.acked_lost} acknowledged writes lost (e.g. "
                f"{', '.join(self.lost_keys_sample)})"
            )
        if not self.rejoined:
            reasons.append(
                f"did not rejoin as a replica of the new master {self.new_master or '(none)'}"
            )
        return reasons


def _try_restore(control: NodeControl, result: DrillResult) -> float | None:
    """Undo the fault (start or heal); the time it began, or None (recorded) if it failed."""
    began = time.monotonic()
    try:
        if result.mode == "partition":
            control.heal(result.master)
        else:
            control.start(result.master)
    except NodeControlError as exc:
        result.errors.append(f"could not bring {result.master} back: {exc}")
        return None
    return began


def _inject(control: NodeControl, master: str, mode: str) -> None:
    {"kill": control.kill, "stop": control.stop, "partition": control.isolate}[mode](master)


@dataclass
class _Probe:
    """Outcome of polling for the first successful write after the fault."""

    seconds: float | None = None
    node: str | None = None
    last_error: str = "no owner found yet"
    refused_for_replicas: str | None = None  # a new owner answered NOREPLICAS


def _measure_recovery(
    conns: Connections,
    ask: Sequence[str],
    id_to_name: dict[str, str],
    faulted: str | None,
    probe_key: str,
    started: float,
    timeout_s: float,
    poll_interval_s: float,
    stop_on_noreplicas: bool,
) -> _Probe:
    """Poll until a write of ``probe_key`` lands on a node other than ``faulted`` (None: on
    any node, the faulted one back in place included).

    With ``stop_on_noreplicas`` it returns early when the new owner refuses writes for lack of
    replicas (min-replicas-to-write): that cannot change until the faulted node is back.
    """
    probe = _Probe()
    slot = key_slot(probe_key.encode())
    attempts = itertools.count(1)

    def write_lands() -> tuple[bool, _Probe]:
        attempt = next(attempts)
        for name in slot_owner_candidates(conns, ask, id_to_name, slot):
            if name == faulted:
                continue
            try:
                conns.call(name, "SET", probe_key, f"probe-{attempt}")
            except redis.RedisError as exc:
                probe.last_error = f"{name}: {exc}"
                if stop_on_noreplicas and str(exc).startswith("NOREPLICAS"):
                    probe.refused_for_replicas = name
                    return True, probe
                continue
            probe.seconds, probe.node = time.monotonic() - started, name
            return True, probe
        return False, probe

    poll(write_lands, Deadline(started + timeout_s), poll_interval_s)
    return probe


def _wait_rejoined(
    conns: Connections, node: str, new_master_id: str, timeout_s: float
) -> tuple[bool, str]:
    """Poll until ``node`` calls itself a replica of ``new_master_id`` with its link up."""

    def rejoined() -> tuple[bool, str]:
        (snapshot,) = conns.observe([node])
        me = snapshot.myself
        if me is None:
            return False, snapshot.error or "no CLUSTER NODES line for itself"
        link = checks.replica_link(snapshot)
        seen = f"flags={','.join(sorted(me.flags))} master={me.master_id} link={link}"
        return me.is_replica and me.master_id == new_master_id and link == "up", seen

    return poll(rejoined, Deadline.after(timeout_s), REJOIN_POLL_S)


def _wait_serving(conns: Connections, node: str, timeout_s: float) -> tuple[bool, str]:
    """Poll until ``node`` is a master serving slots again (it recovered in place)."""

    def serving() -> tuple[bool, str]:
        (snapshot,) = conns.observe([node])
        me = snapshot.myself
        if me is None:
            return False, snapshot.error or "no CLUSTER NODES line for itself"
        return snapshot.serves_slots and not me.is_replica, f"flags={','.join(sorted(me.flags))}"

    return poll(serving, Deadline.after(timeout_s), REJOIN_POLL_S)


def _chunks_by_owner(
    conns: Connections, names: Sequence[str], id_to_name: dict[str, str], keys: Iterable[str]
) -> Iterator[tuple[int, str | None, list[str]]]:
    """(slot, its owner now or None, up to READ_CHUNK of the keys in that slot)."""
    by_slot: dict[int, list[str]] = {}
    for key in keys:
        by_slot.setdefault(key_slot(key.encode()), []).append(key)
    for slot, group in by_slot.items():
        owners = slot_owner_candidates(conns, names, id_to_name, slot)
        for start in range(0, len(group), READ_CHUNK):
            yield slot, owners[0] if owners else None, group[start : start + READ_CHUNK]


def _read_back(
    conns: Connections, names: Sequence[str], id_to_name: dict[str, str],
    records: Sequence[WriteRecord],
) -> set[str]:
    """Keys of ``records`` whose value is not there, read from each slot's owner."""
    expected = {r.key: r.value for r in records}
    missing: set[str] = set()
    for slot, owner, keys in _chunks_by_owner(conns, names, id_to_name, expected):
        if owner is None:
            raise DrillError(f"no node owns slot {slot} when reading the writes back")
        try:
            values = conns.call(owner, "MGET", *keys)
        except redis.RedisError as exc:
            raise DrillError(f"reading writes back from {owner}: {exc}") from None
        missing.update(k for k, v in zip(keys, values, strict=True) if v != expected[k])
    return missing


def _delete_keys(conns: Connections, names: Sequence[str], id_to_name: dict[str, str],
                 keys: Iterable[str]) -> None:
    """Best effort: drills should not leave their keys behind in a production cluster."""
    for _slot, owner, chunk in _chunks_by_owner(conns, names, id_to_name, keys):
        if owner is not None:
            with contextlib.suppress(redis.RedisError):
                conns.call(owner, "UNLINK", *chunk)


def run_master_failure_drill(
    targets: Targets,
    control: NodeControl,
    master: str,
    mode: str,
    *,
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    wait_timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS,
    recovery_timeout_s: float = DEFAULT_RECOVERY_TIMEOUT_S,
    rejoin_timeout_s: float = DEFAULT_REJOIN_TIMEOUT_S,
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
    hold_s: float = 0.0,
    writer_timeout_s: float = WRITER_TIMEOUT_S,
    cleanup: bool = True,
) -> DrillResult:
    """Fault ``master`` (``mode``: kill | stop | partition), measure, restore, verify.

    Raises DrillError when the drill cannot start (cluster not ready, ``master`` not a master)
    or the fault cannot be injected; once the fault is in, problems are recorded in the
    result's ``errors`` and the node is always restored.
    """
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; choose one of {MODES}")
    names = [node.name for node in targets.nodes]
    if master not in names:
        raise UsageError(f"unknown node {master!r}; known: {', '.join(names)}")
    others = [name for name in names if name != master]
    conns = Connections(targets)
    try:
        snapshots = wait_until_ready(conns, names, ready_timeout_s)
        id_to_name = {s.my_id: s.name for s in snapshots}
        serving = {s.name: s.myself.slots for s in snapshots if s.serves_slots and s.myself}
        if master not in serving:
            raise DrillError(f"{master} is not a master serving slots now (live masters: "
                             f"{', '.join(serving)})")
        result = DrillResult(master, mode, node_timeout_ms=node_timeout_ms(conns, master))
        run_id = secrets.token_hex(4)
        tags = hash_tags(serving[master], KEY_TAGS, "d")
        probe_key = f"drill:{{{tags[0]}}}:{run_id}:probe"
        writer = AckedWriter(
            targets, id_to_name, tags, run_id, wait_timeout_ms, socket_timeout_s=writer_timeout_s
        )
        writer.start()
        try:
            _wait_for_acked_writes(writer, MIN_ACKED_BEFORE_FAULT, timeout_s=10.0)
            fault_started = _fault_and_restore(
                result, control, conns, writer, id_to_name, others,
                probe_key, poll_interval_s, recovery_timeout_s, rejoin_timeout_s, hold_s,
            )
        finally:
            writer.stop()
        if writer.error is not None:
            result.errors.append(f"writer crashed: {writer.error!r}")
        account_writes(result, conns, names, id_to_name, writer.records(), fault_started)
        if cleanup:
            keys = [r.key for r in writer.records()] + [probe_key]
            _delete_keys(conns, names, id_to_name, keys)
        try:
            wait_until_ready(conns, names, ready_timeout_s)
        except DrillError as exc:
            result.errors.append(f"after the drill: {exc}")
        return result
    finally:
        conns.close()


def _wait_for_acked_writes(writer: AckedWriter, count: int, timeout_s: float) -> None:
    def enough() -> tuple[bool, dict[str, int]]:
        if writer.error is not None or not writer.is_alive():
            raise DrillError(f"the writer stopped before the fault: {writer.error!r}")
        outcomes = {o: writer.count(o) for o in (ACKED, UNACKED, REJECTED, UNSENT)}
        return outcomes[ACKED] >= count, outcomes

    done, outcomes = poll(enough, Deadline.after(timeout_s), WRITER_POLL_S)
    if not done:
        raise DrillError(
            f"no {count} replica-acknowledged writes within {timeout_s:.0f}s before the "
            f"fault (saw {outcomes}); is a replica connected?"
        )


def _fault_and_restore(
    result: DrillResult,
    control: NodeControl,
    conns: Connections,
    writer: AckedWriter,
    id_to_name: dict[str, str],
    others: Sequence[str],
    probe_key: str,
    poll_interval_s: float,
    recovery_timeout_s: float,
    rejoin_timeout_s: float,
    hold_s: float,
) -> float:
    """Inject the fault, measure recovery, restore, wait for the rejoin; returns the fault time."""
    master = result.master
    # Where the platform restarts a killed node by itself (Kubernetes), it may be back before
    # its replica is promoted: a write it accepts then is a recovery too, in place.
    in_place = result.mode in getattr(control, "recovers_in_place", ())
    writer.dont_ask.add(master)
    conns.drop(master)
    started = time.monotonic()
    try:
        _inject(control, master, result.mode)
    except NodeControlError as exc:
        raise DrillError(f"could not {result.mode} {master}: {exc}") from None
    result.fault_command_seconds = time.monotonic() - started

    def measure(stop_on_noreplicas: bool) -> _Probe:
        return _measure_recovery(
            conns, [*others, master] if in_place else others, id_to_name,
            None if in_place else master, probe_key, started, recovery_timeout_s,
            poll_interval_s, stop_on_noreplicas,
        )

    restored_at: float | None = None
    restore_attempted = False
    try:
        probe = measure(stop_on_noreplicas=True)
        if probe.refused_for_replicas:
            result.notes.append(
                f"{probe.refused_for_replicas} took over but refused writes (NOREPLICAS: "
                f"min-replicas-to-write) until {master} came back; recovery includes that"
            )
            restore_attempted = True
            restored_at = _try_restore(control, result)
            probe = measure(stop_on_noreplicas=False)
        else:
            time.sleep(hold_s)
    finally:
        if not restore_attempted:
            restored_at = _try_restore(control, result)
    result.recovery_seconds, result.new_master = probe.seconds, probe.node
    if probe.node is None:
        result.errors.append(
            f"no write to {master}'s slots succeeded within {recovery_timeout_s:.0f}s "
            f"(last error: {probe.last_error})"
        )
    if restored_at is None:
        return started
    writer.dont_ask.discard(master)
    new_master_id = next(
        (node_id for node_id, name in id_to_name.items() if name == probe.node), None
    )
    if new_master_id is None:
        return started
    if probe.node == master:
        result.notes.append(f"{master} was restarted and back before its replica was "
                            "promoted: recovered in place")
        result.rejoined, seen = _wait_serving(conns, master, rejoin_timeout_s)
    else:
        result.rejoined, seen = _wait_rejoined(conns, master, new_master_id, rejoin_timeout_s)
    if result.rejoined:
        result.rejoin_seconds = time.monotonic() - restored_at
    else:
        result.errors.append(
            f"{master} not a replica of {probe.node} with link up within "
            f"{rejoin_timeout_s:.0f}s (last seen: {seen})"
        )
    return started


def account_writes(
    result: DrillResult,
    conns: Connections,
    names: Sequence[str],
    id_to_name: dict[str, str],
    records: Sequence[WriteRecord],
    fault_started: float,
) -> None:
    """Read every accepted write back from its slot's owner and fill in the loss counts."""
    accepted = [r for r in records if r.outcome in (ACKED, UNACKED)]
    try:
        missing = _read_back(conns, names, id_to_name, accepted)
    except DrillError as exc:
        result.errors.append(str(exc))
        return
    acked = [r for r in accepted if r.outcome == ACKED]
    unacked = [r for r in accepted if r.outcome == UNACKED]
    on_faulted = [r for r in accepted if r.node == result.master and r.sent_at >= fault_started]
    result.writes = len(records)
    result.acked_writes = len(acked)
    result.acked_lost = sum(1 for r in acked if r.key in missing)
    result.unacked_accepted = len(unacked)
    result.unacked_lost = sum(1 for r in unacked if r.key in missing)
    result.indeterminate_writes = sum(1 for r in records if r.outcome == INDETERMINATE)
    result.rejected_writes = sum(1 for r in records if r.outcome == REJECTED)
    result.faulted_node_accepted_after_fault = len(on_faulted)
    result.faulted_node_accepted_lost = sum(1 for r in on_faulted if r.key in missing)
    result.lost_keys_sample = [r.key for r in acked if r.key in missing][:LOST_SAMPLE]


