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

``python -m clusterops drill`` wraps this (``add_arguments``/``run``); the bench and the tests
call :func:`run_master_failure_drill` directly with their own control.
"""

from __future__ import annotations

import argparse
import itertools
import json
import secrets
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import redis
from redis.backoff import NoBackoff
from redis.connection import Connection
from redis.crc import key_slot
from redis.retry import Retry

from clusterops import checks
from clusterops.connection import no_retry_client
from clusterops.errors import (
    AuthError,
    ClusterOpsError,
    DrillError,
    NodeControlError,
    UsageError,
    redact,
)
from clusterops.node_control import CommandNodeControl, DockerNodeControl, NodeControl
from clusterops.observe import ClusterNodeEntry, NodeSnapshot, observe_nodes, parse_cluster_nodes
from clusterops.poll import Deadline, poll
from clusterops.targets import Targets, add_target_arguments, load_targets

MODES = ("kill", "stop", "partition")
DEFAULT_MAX_RECOVERY_S = 5.0
DEFAULT_POLL_INTERVAL_S = 0.02
DEFAULT_WAIT_TIMEOUT_MS = 500
DEFAULT_RECOVERY_TIMEOUT_S = 60.0
DEFAULT_REJOIN_TIMEOUT_S = 60.0
DEFAULT_READY_TIMEOUT_S = 60.0
ADMIN_TIMEOUT_S = 0.5
READY_POLL_S = 0.1
REJOIN_POLL_S = 0.05
WRITER_POLL_S = 0.02
WRITER_TIMEOUT_S = 1.0
WRITER_INTERVAL_S = 0.005
MIN_ACKED_BEFORE_FAULT = 100
KEY_TAGS = 4  # writes spread over this many slots of the master
READ_CHUNK = 500
LOST_SAMPLE = 5

# Write outcomes, as the client saw them.
ACKED = "acked"  # SET ok and WAIT counted >= 1 replica
UNACKED = "unacked"  # SET ok, no replica confirmed it in time
REJECTED = "rejected"  # an error reply (MOVED, CLUSTERDOWN, ...): not applied
UNSENT = "unsent"  # could not connect: not applied
INDETERMINATE = "indeterminate"  # sent, but the reply never came: may or may not be applied


# --- reading the cluster ------------------------------------------------------------------


def pick_hash_tags(slot_ranges: Sequence[tuple[int, int]], count: int = KEY_TAGS) -> list[str]:
    """Hash tags whose slots lie in ``slot_ranges``, each on a different slot."""
    tags: list[str] = []
    used: set[int] = set()
    for index in range(1_000_000):
        tag = f"d{index}"
        slot = key_slot(tag.encode())
        if slot not in used and any(a <= slot <= b for a, b in slot_ranges):
            tags.append(tag)
            used.add(slot)
            if len(tags) == count:
                break
    if not tags:
        raise DrillError(f"no hash tag found in slots {list(slot_ranges)}")
    return tags


class Connections:
    """One client per node with short timeouts and NO retries (a retry would hide latency)."""

    def __init__(self, targets: Targets, timeout_s: float = ADMIN_TIMEOUT_S) -> None:
        self._nodes = {node.name: node for node in targets.nodes}
        self._password = targets.password
        self._timeout_s = timeout_s
        self._clients: dict[str, redis.Redis] = {}

    def client(self, name: str) -> redis.Redis:
        if name not in self._clients:
            node = self._nodes[name]
            self._clients[name] = no_retry_client(
                node.host, node.port, self._password, self._timeout_s, self._timeout_s,
                single_connection_client=True,
            )
        return self._clients[name]

    def drop(self, name: str) -> None:
        """Forget a client after an error so the next call reconnects cleanly."""
        client = self._clients.pop(name, None)
        if client is not None:
            client.close()

    def call(self, name: str, *command: object) -> object:
        try:
            return self.client(name).execute_command(*command)
        except redis.RedisError:
            self.drop(name)
            raise

    def cluster_nodes(self, name: str) -> list[ClusterNodeEntry]:
        return parse_cluster_nodes(str(self.call(name, "CLUSTER", "NODES")))

    def observe(self, names: Sequence[str]) -> list[NodeSnapshot]:
        """Fresh snapshots of ``names`` (own connections: observing never disturbs ours)."""
        return observe_nodes([self._nodes[n] for n in names], self._password, self._timeout_s)

    def close(self) -> None:
        for name in list(self._clients):
            self.drop(name)


def slot_owner_candidates(
    conns: Connections, ask: Iterable[str], id_to_name: dict[str, str], slot: int
) -> list[str]:
    """Names of nodes that some live node says own ``slot``, newest config epoch first."""
    claims: dict[str, int] = {}
    for name in ask:
        try:
            views = conns.cluster_nodes(name)
        except redis.RedisError:
            continue
        for view in views:
            if view.is_master and view.owns(slot) and view.node_id in id_to_name:
                claims[view.node_id] = max(claims.get(view.node_id, -1), view.config_epoch)
    ordered = sorted(claims, key=lambda node_id: claims[node_id], reverse=True)
    return [id_to_name[node_id] for node_id in ordered]


def identify_nodes(conns: Connections, names: Iterable[str]) -> dict[str, str]:
    """node id -> target name, from CLUSTER MYID on every node (all must answer)."""
    ids = {}
    for name in names:
        try:
            ids[str(conns.call(name, "CLUSTER", "MYID"))] = name
        except redis.RedisError as exc:
            raise DrillError(f"{name} did not answer CLUSTER MYID: {exc}") from None
    return ids


def readiness_problems(conns: Connections, names: Sequence[str]) -> list[str]:
    """What stops the cluster from being drill-ready (empty when ready); see
    :func:`clusterops.checks.drill_readiness`. A refused password raises AuthError at once."""
    snapshots = conns.observe(names)
    refused = [s for s in snapshots if s.auth_failed]
    if refused:
        raise AuthError(f"{refused[0].name} refused the password: {refused[0].error}")
    return checks.drill_readiness(snapshots)


def wait_until_ready(
    conns: Connections, names: Sequence[str], timeout_s: float = DEFAULT_READY_TIMEOUT_S
) -> None:
    def ready() -> tuple[bool, list[str]]:
        problems = readiness_problems(conns, names)
        return not problems, problems

    done, problems = poll(ready, Deadline.after(timeout_s), READY_POLL_S)
    if not done:
        raise DrillError(f"cluster not ready within {timeout_s:g}s: " + "; ".join(problems))


def _myself(conns: Connections, name: str) -> ClusterNodeEntry:
    """The node's own CLUSTER NODES line; DrillError (AuthError) when it cannot say."""
    try:
        return next(v for v in conns.cluster_nodes(name) if v.is_myself)
    except redis.AuthenticationError as exc:
        raise AuthError(f"{name} refused the password: {exc}") from None
    except (redis.RedisError, StopIteration) as exc:
        raise DrillError(f"{name} did not report its role: {exc}") from None


def live_masters(conns: Connections, names: Sequence[str]) -> list[str]:
    """Names of the nodes that are masters serving slots right now (each asked itself)."""
    masters = []
    for name in names:
        me = _myself(conns, name)
        if me.is_master and me.slots:
            masters.append(name)
    return masters


def node_timeout_ms(conns: Connections, name: str) -> int | None:
    """cluster-node-timeout of a node, or None where CONFIG is renamed away."""
    try:
        reply = conns.client(name).config_get("cluster-node-timeout")
        return int(reply["cluster-node-timeout"])
    except (redis.RedisError, KeyError, ValueError):
        return None


# --- the writer -----------------------------------------------------------------------------


@dataclass
class WriteRecord:
    seq: int
    key: str
    value: str
    node: str  # where the client sent it
    sent_at: float  # monotonic
    outcome: str = INDETERMINATE


class AckedWriter(threading.Thread):
    """Writes on one connection: SET, then WAIT 1 on that same connection, and records each.

    Like a real client it follows the cluster's view of who owns the slot; unlike redis-py it
    never retries a write, so every outcome is exactly what the client saw.
    """

    def __init__(
        self,
        targets: Targets,
        id_to_name: dict[str, str],
        tags: Sequence[str],
        run_id: str,
        wait_timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS,
        interval_s: float = WRITER_INTERVAL_S,
        socket_timeout_s: float = WRITER_TIMEOUT_S,
    ) -> None:
        super().__init__(name="drill-writer", daemon=True)
        self._targets = targets
        self._nodes = {node.name: node for node in targets.nodes}
        self._id_to_name = id_to_name
        self._tags = list(tags)
        self._run_id = run_id
        self._wait_timeout_ms = wait_timeout_ms
        self._interval_s = interval_s
        self._socket_timeout_s = socket_timeout_s
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._records: list[WriteRecord] = []
        self.error: BaseException | None = None
        # Nodes not asked for the slot map (the faulted one: asking it would only stall us).
        self.dont_ask: set[str] = set()

    def records(self) -> list[WriteRecord]:
        with self._lock:
            return list(self._records)

    def count(self, outcome: str) -> int:
        with self._lock:
            return sum(1 for r in self._records if r.outcome == outcome)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop_event.set()
        self.join(timeout_s)

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # surfaced by the drill; a dead writer must not go unseen
            self.error = exc

    def _connect(self, name: str) -> Connection:
        node = self._nodes[name]
        conn = Connection(
            host=node.host,
            port=node.port,
            password=self._targets.password,
            socket_timeout=self._socket_timeout_s,
            socket_connect_timeout=self._socket_timeout_s,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        conn.connect()
        return conn

    def _loop(self) -> None:
        lookups = Connections(self._targets, ADMIN_TIMEOUT_S)
        conn: Connection | None = None
        owner: str | None = None
        slot = key_slot(self._tags[0].encode())
        seq = 0
        try:
            while not self._stop_event.is_set():
                if owner is None:
                    ask = [n for n in self._nodes if n not in self.dont_ask]
                    found = slot_owner_candidates(lookups, ask, self._id_to_name, slot)
                    if not found:
                        self._stop_event.wait(self._interval_s)
                        continue
                    owner = found[0]
                seq += 1
                tag = self._tags[seq % len(self._tags)]
                record = WriteRecord(
                    seq, f"drill:{{{tag}}}:{self._run_id}:{seq}", f"{self._run_id}:{seq}",
                    owner, time.monotonic(),
                )
                if conn is None:
                    try:
                        conn = self._connect(owner)
                    except redis.RedisError:
                        record.outcome = UNSENT
                        self._append(record)
                        owner = None
                        self._stop_event.wait(self._interval_s)
                        continue
                record.outcome = self._write(conn, record)
                self._append(record)
                if record.outcome in (REJECTED, INDETERMINATE):
                    conn.disconnect()
                    conn, owner = None, None
                self._stop_event.wait(self._interval_s)
        finally:
            if conn is not None:
                conn.disconnect()
            lookups.close()

    def _write(self, conn: Connection, record: WriteRecord) -> str:
        try:
            conn.send_command("SET", record.key, record.value)
            conn.read_response()
        except redis.ResponseError:
            return REJECTED
        except redis.RedisError:
            return INDETERMINATE
        try:
            conn.send_command("WAIT", 1, self._wait_timeout_ms)
            replicas = int(conn.read_response())
        except (redis.RedisError, ValueError):
            return UNACKED
        return ACKED if replicas >= 1 else UNACKED

    def _append(self, record: WriteRecord) -> None:
        with self._lock:
            self._records.append(record)


# --- one drill ------------------------------------------------------------------------------


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
    faulted: str,
    probe_key: str,
    started: float,
    timeout_s: float,
    poll_interval_s: float,
    stop_on_noreplicas: bool,
) -> _Probe:
    """Poll until a write of ``probe_key`` lands on a node other than ``faulted``.

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


def _read_back(
    conns: Connections,
    names: Sequence[str],
    id_to_name: dict[str, str],
    records: Sequence[WriteRecord],
) -> set[str]:
    """Keys of ``records`` whose value is not there, read from each slot's owner."""
    by_slot: dict[int, list[WriteRecord]] = {}
    for record in records:
        by_slot.setdefault(key_slot(record.key.encode()), []).append(record)
    missing: set[str] = set()
    for slot, group in by_slot.items():
        owners = slot_owner_candidates(conns, names, id_to_name, slot)
        if not owners:
            raise DrillError(f"no node owns slot {slot} when reading the writes back")
        for start in range(0, len(group), READ_CHUNK):
            chunk = group[start : start + READ_CHUNK]
            try:
                values = conns.call(owners[0], "MGET", *[r.key for r in chunk])
            except redis.RedisError as exc:
                raise DrillError(f"reading writes back from {owners[0]}: {exc}") from None
            missing.update(
                r.key for r, value in zip(chunk, values, strict=True) if value != r.value
            )
    return missing


def _delete_keys(conns: Connections, names: Sequence[str], id_to_name: dict[str, str],
                 keys: Iterable[str]) -> None:
    """Best effort: drills should not leave their keys behind in a production cluster."""
    by_slot: dict[int, list[str]] = {}
    for key in keys:
        by_slot.setdefault(key_slot(key.encode()), []).append(key)
    for slot, group in by_slot.items():
        owners = slot_owner_candidates(conns, names, id_to_name, slot)
        for start in range(0, len(group), READ_CHUNK):
            try:
                conns.call(owners[0], "UNLINK", *group[start : start + READ_CHUNK])
            except (redis.RedisError, IndexError):
                break


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
        wait_until_ready(conns, names, ready_timeout_s)
        id_to_name = identify_nodes(conns, names)
        me = _myself(conns, master)
        if not (me.is_master and me.slots):
            raise DrillError(
                f"{master} is not a master serving slots now (live masters: "
                f"{', '.join(live_masters(conns, names))})"
            )
        result = DrillResult(master, mode, node_timeout_ms=node_timeout_ms(conns, master))
        run_id = secrets.token_hex(4)
        tags = pick_hash_tags(me.slots)
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
            conns, others, id_to_name, master, probe_key, started, recovery_timeout_s,
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


# --- the command ----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    drill = parser.add_argument_group("drill")
    drill.add_argument(
        "--master", required=True, metavar="NAME|all",
        help="the master to fault, or 'all' for every current master in turn",
    )
    drill.add_argument("--mode", choices=MODES, default="kill",
                       help="kill (SIGKILL), stop (graceful) or partition (isolate) [kill]")
    drill.add_argument(
        "--max-recovery-seconds", type=float, default=DEFAULT_MAX_RECOVERY_S, metavar="S",
        help=f"fail when client-observed recovery exceeds this [{DEFAULT_MAX_RECOVERY_S:g}]",
    )
    drill.add_argument(
        "--control-command", metavar="CMD",
        help="program that injects faults, called as `CMD ACTION NODE` with ACTION one of "
        "kill/stop/start/isolate/heal (default: Docker, from the stack outputs)",
    )
    drill.add_argument("--hold-seconds", type=float, default=0.0, metavar="S",
                       help="keep the fault in place this long after recovery [0]")
    drill.add_argument("--poll-interval", type=float, default=DEFAULT_POLL_INTERVAL_S,
                       metavar="S", help=f"recovery probe interval [{DEFAULT_POLL_INTERVAL_S:g}]")
    drill.add_argument("--wait-timeout-ms", type=int, default=DEFAULT_WAIT_TIMEOUT_MS,
                       metavar="MS", help=f"WAIT 1 timeout per write [{DEFAULT_WAIT_TIMEOUT_MS}]")
    drill.add_argument("--recovery-timeout", type=float, default=DEFAULT_RECOVERY_TIMEOUT_S,
                       metavar="S", help="give up waiting for recovery after this long")
    drill.add_argument("--rejoin-timeout", type=float, default=DEFAULT_REJOIN_TIMEOUT_S,
                       metavar="S", help="give up waiting for the node to rejoin after this long")
    drill.add_argument("--ready-timeout", type=float, default=DEFAULT_READY_TIMEOUT_S,
                       metavar="S", help="give up waiting for a drill-ready cluster after this")
    drill.add_argument("--json", action="store_true", help="print the report as JSON")


def build_control(args: argparse.Namespace, targets: Targets) -> NodeControl:
    if getattr(args, "control_command", None):
        return CommandNodeControl(args.control_command)
    if not targets.network_name:
        raise UsageError(
            "no way to inject faults: give --control-command CMD, or --stack-outputs/--stack "
            "of a Docker deployment (they name the network and containers)"
        )
    return DockerNodeControl.from_targets(targets)


def run(args: argparse.Namespace) -> int:
    """Drill each chosen master; 1 when any drill fails the bar.

    An error that stops the drills is raised for the CLI to print (exit 1, or 2 for usage,
    target and auth errors) after the report of the drills done so far; a JSON report names
    it too, so a consumer of stdout alone still sees why it stopped.
    """
    targets = load_targets(args)
    control = build_control(args, targets)
    results: list[DrillResult] = []
    report = render_json if args.json else render_table
    try:
        for master in _masters_to_drill(targets, args.master):
            if not args.json:
                print(f"drilling {master} ({args.mode}) ...", file=sys.stderr, flush=True)
            results.append(
                run_master_failure_drill(
                    targets, control, master, args.mode,
                    poll_interval_s=args.poll_interval,
                    wait_timeout_ms=args.wait_timeout_ms,
                    recovery_timeout_s=args.recovery_timeout,
                    rejoin_timeout_s=args.rejoin_timeout,
                    ready_timeout_s=args.ready_timeout,
                    hold_s=args.hold_seconds,
                )
            )
    except (ClusterOpsError, redis.RedisError) as exc:
        error = _as_clusterops_error(exc, targets.password)
        if results or args.json:
            print(report(results, args.max_recovery_seconds, str(error)))
        raise error from None
    print(report(results, args.max_recovery_seconds, ""))
    return 1 if any(r.failures(args.max_recovery_seconds) for r in results) else 0


def _as_clusterops_error(exc: Exception, password: str | None) -> ClusterOpsError:
    """What stopped the drills, as the error the CLI prints (a RedisError never escapes raw)."""
    if isinstance(exc, ClusterOpsError):
        return exc
    if isinstance(exc, redis.AuthenticationError):
        return AuthError(redact(f"a node refused the password: {exc}", password))
    return DrillError(redact(f"{type(exc).__name__}: {exc}", password))


def _masters_to_drill(targets: Targets, choice: str) -> list[str]:
    names = [node.name for node in targets.nodes]
    conns = Connections(targets)
    try:
        if choice == "all":
            return live_masters(conns, names)
        if choice not in names:
            raise UsageError(f"unknown node {choice!r}; known: {', '.join(names)}")
        return [choice]
    finally:
        conns.close()


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render_table(results: Sequence[DrillResult], max_recovery_s: float, setup_error: str) -> str:
    header = ("master", "mode", "new master", "recovery s", "acked", "acked lost",
              "unacked lost", "indeterminate", "rejoined", "result")
    rows = [header]
    for r in results:
        failed = r.failures(max_recovery_s)
        rows.append((
            r.master, r.mode, r.new_master or "-", _seconds(r.recovery_seconds),
            str(r.acked_writes), str(r.acked_lost), f"{r.unacked_lost}/{r.unacked_accepted}",
            str(r.indeterminate_writes),
            f"yes ({_seconds(r.rejoin_seconds)}s)" if r.rejoined else "NO",
            "FAIL" if failed else "ok",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    timeouts = sorted({r.node_timeout_ms for r in results if r.node_timeout_ms is not None})
    if timeouts:
        lines.append(f"cluster-node-timeout: {', '.join(map(str, timeouts))} ms; "
                     f"recovery limit {max_recovery_s:g}s")
    for r in results:
        lines += [f"note {r.master}: {note}" for note in r.notes]
        lines += [f"FAIL {r.master}: {reason}" for reason in r.failures(max_recovery_s)]
    # ``setup_error`` is the CLI's to print (on stderr): the table only reports drills.
    return "\n".join(lines)


def render_json(results: Sequence[DrillResult], max_recovery_s: float, setup_error: str) -> str:
    drills = []
    for r in results:
        entry = asdict(r)
        entry["failures"] = r.failures(max_recovery_s)
        drills.append(entry)
    ok = not setup_error and not any(d["failures"] for d in drills)
    return json.dumps(
        {"ok": ok, "max_recovery_seconds": max_recovery_s, "error": setup_error or None,
         "drills": drills},
        indent=2,
    )
