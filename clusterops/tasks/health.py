"""The health checks: the deployment guide's, and what it lacks (``python -m clusterops health``
is their command line, clusterops/cli/commands/health.py).

Checks (each yields per-node results: ok / warn / fail, with a message):

- ``reachable``          every node answers PING with the password (names NOAUTH/WRONGPASS)
- ``cluster_state``      CLUSTER INFO says ``cluster_state:ok`` on every node
- ``slot_coverage``      every hash slot assigned and ok, none pfail/fail, on every node
- ``node_count``         every node knows the expected number of nodes; every target is in the
                         cluster; the expected number of masters serves slots
- ``node_flags``         no node is flagged ``fail`` (or ``fail?``) by its peers
- ``open_slots``         no slot is importing or migrating
- ``slot_map``           all nodes agree on which node owns each slot
- ``replication``        per master: connected replicas; per replica: link up, lag (bytes, s)
- ``replica_placement``  every master has a replica on ANOTHER Docker host (the outputs' node
                         ``host``; warns on a single-host stack)
- ``memory``             used memory vs maxmemory on every node (and vs the declared value)
- ``write_read``         a SET/GET/DEL round trip through a cluster client, one key per master
                         (unique key, TTL, deleted afterwards)

Gathering talks to the nodes concurrently with short timeouts, so a dead or frozen node costs
one timeout and is reported, never a crash. The checks themselves are pure functions over the
gathered snapshots, so they are tested without servers.

A run is ok when nothing failed (warnings allowed); see :attr:`HealthRun.exit_code`.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from clusterops.core.model import HASH_SLOTS, format_ranges, hash_tags
from clusterops.core.units import format_bytes
from clusterops.node.access import Access
from clusterops.node.observe import (
    ClusterNodeEntry,
    NodeSnapshot,
    describe_error,
    info_int,
    observe_nodes,
    parse_kv_list,
)
from clusterops.node.targets import Targets
from clusterops.state import checks
from clusterops.state.checks import ClusterView, expand_runs, majority_view

CLUSTER = "cluster"  # the "node" column of results about the cluster as a whole
KEY_PREFIX = "clusterops:health"
KEY_TTL_S = 60  # the probe key expires even if this process dies before deleting it

DEFAULT_TIMEOUT_S = 2.0
DEFAULT_MAX_LAG_SECONDS = 5
DEFAULT_MAX_LAG_BYTES = 1024 * 1024
DEFAULT_MEMORY_WARN_PERCENT = 80.0
DEFAULT_MEMORY_FAIL_PERCENT = 95.0

CHECKS = (
    "reachable",
    "cluster_state",
    "slot_coverage",
    "node_count",
    "node_flags",
    "open_slots",
    "slot_map",
    "replication",
    "replica_placement",
    "memory",
    "persistence",
    "write_read",
)


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class CheckResult:
    check: str
    node: str
    status: Status
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "node": self.node, "status": str(self.status),
                "message": self.message}


@dataclass(frozen=True)
class Thresholds:
    max_lag_seconds: float = DEFAULT_MAX_LAG_SECONDS
    max_lag_bytes: int = DEFAULT_MAX_LAG_BYTES
    memory_warn_percent: float = DEFAULT_MEMORY_WARN_PERCENT
    memory_fail_percent: float = DEFAULT_MEMORY_FAIL_PERCENT


# --------------------------------------------------------------------------- naming


class NameBook:
    """Names live nodes (known by id or announced address) after their targets."""

    def __init__(self, snapshots: Sequence[NodeSnapshot], targets: Targets) -> None:
        self.by_address = {n.cluster_address: n.name for n in targets.nodes}
        self.by_id = {node_id: name for name, node_id in targets.node_ids.items()}
        for snap in snapshots:
            me = snap.myself
            if me is not None:
                self.by_id[me.node_id] = snap.name  # live identity beats the planned one

    def label(self, entry: ClusterNodeEntry) -> str:
        name = self.by_id.get(entry.node_id) or self.by_address.get(entry.address)
        return name or (entry.address if entry.host else entry.node_id[:12])

    def label_id(self, node_id: str, view: Sequence[ClusterNodeEntry] = ()) -> str:
        if node_id in self.by_id:
            return self.by_id[node_id]
        entry = next((e for e in view if e.node_id == node_id), None)
        return self.label(entry) if entry else node_id[:12]


# --------------------------------------------------------------------------- checks (pure)


class _Verdict:
    """Failures fail the run; warnings are reported but allowed."""

    results: Sequence[CheckResult]

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status is Status.FAIL]

    @property
    def warnings(self) -> list[CheckResult]:
        return [r for r in self.results if r.status is Status.WARN]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


@dataclass
class Report(_Verdict):
    results: list[CheckResult] = field(default_factory=list)

    def add(self, check: str, node: str, status: Status, message: str) -> None:
        self.results.append(CheckResult(check, node, status, message))

    def sorted(self, node_order: Sequence[str]) -> list[CheckResult]:
        check_rank = {name: i for i, name in enumerate(CHECKS)}
        node_rank = {CLUSTER: -1, **{name: i for i, name in enumerate(node_order)}}
        return sorted(
            self.results,
            key=lambda r: (check_rank.get(r.check, len(CHECKS)),
                           node_rank.get(r.node, len(node_rank)), r.node),
        )


def check_reachable(report: Report, snapshots: Sequence[NodeSnapshot]) -> None:
    for snap in snapshots:
        if snap.reachable and not snap.cluster_enabled:
            report.add("reachable", snap.name, Status.FAIL,
                       f"{snap.address} answers but has cluster support disabled")
        elif snap.reachable:
            role = snap.replication.get("role", "?")
            answered = (f"PONG from {snap.address} in {snap.ping_ms:.1f} ms"
                        if snap.ping_ms is not None else
                        f"{snap.address} answers but refuses PING and writes (MISCONF: see "
                        "persistence)")
            report.add("reachable", snap.name, Status.OK, f"{answered}, role {role}")
        else:
            report.add("reachable", snap.name, Status.FAIL, f"{snap.address}: {snap.error}")
    if not any(s.reachable for s in snapshots):
        report.add("reachable", CLUSTER, Status.FAIL, "no node could be queried")


def check_cluster_state(report: Report, snapshots: Sequence[NodeSnapshot]) -> None:
    for snap in _reachable(snapshots):
        state = snap.cluster_info.get("cluster_state", "missing")
        if state == "ok":
            report.add("cluster_state", snap.name, Status.OK, "cluster_state:ok")
        else:
            report.add("cluster_state", snap.name, Status.FAIL, f"cluster_state:{state}")


def check_slot_coverage(report: Report, snapshots: Sequence[NodeSnapshot]) -> None:
    for snap in _reachable(snapshots):
        info = snap.cluster_info
        assigned = info_int(info, "cluster_slots_assigned")
        ok = info_int(info, "cluster_slots_ok")
        pfail = info_int(info, "cluster_slots_pfail")
        failed = info_int(info, "cluster_slots_fail")
        text = f"assigned {assigned}, ok {ok}, pfail {pfail}, fail {failed} of {HASH_SLOTS}"
        if assigned != HASH_SLOTS or failed or ok + pfail != HASH_SLOTS:
            status = Status.FAIL
        elif pfail:
            status = Status.WARN  # a peer missed pings; it becomes fail only if others agree
        else:
            status = Status.OK
        report.add("slot_coverage", snap.name, status, text)


def check_node_count(report: Report, snapshots: Sequence[NodeSnapshot], view: ClusterView,
                     names: NameBook, targets: Targets) -> None:
    node_names = [n.name for n in targets.nodes]
    for snap in _reachable(snapshots):
        known = info_int(snap.cluster_info, "cluster_known_nodes")
        status = Status.OK if known == len(node_names) else Status.FAIL
        report.add("node_count", snap.name, status,
                   f"knows {known} nodes, expected {len(node_names)}")
    if not view.reference:
        return
    in_cluster = {names.label(e) for e in view.reference}
    for name in node_names:
        if name not in in_cluster:
            report.add("node_count", name, Status.FAIL,
                       f"not in the cluster map of {view.reference_node}")
    strangers = sorted(in_cluster - set(node_names))
    if strangers:
        report.add("node_count", CLUSTER, Status.FAIL,
                   f"nodes outside the targets are in the cluster: {', '.join(strangers)}")
    order = {name: i for i, name in enumerate(node_names)}
    masters = sorted(view.masters, key=lambda m: (order.get(names.label(m), len(order)),
                                                  names.label(m)))
    status = Status.OK if len(masters) == targets.expected_masters else Status.FAIL
    report.add("node_count", CLUSTER, status,
               f"{len(masters)} masters serve slots, expected {targets.expected_masters}: "
               + ", ".join(names.label(m) for m in masters))


def check_node_flags(report: Report, snapshots: Sequence[NodeSnapshot],
                     names: NameBook) -> None:
    """A node is only as healthy as its peers think: collect fail / fail? flags from all views."""
    failed = checks.flagged(snapshots)
    suspected = checks.flagged(snapshots, possibly=True)
    viewers = len(_reachable(snapshots))
    for entry, by in failed.values():
        report.add("node_flags", names.label(entry), Status.FAIL,
                   f"flagged fail by {len(by)} of {viewers} reachable nodes ({', '.join(by)})")
    for node_id, (entry, by) in suspected.items():
        if node_id not in failed:
            report.add("node_flags", names.label(entry), Status.WARN,
                       f"flagged fail? (no pong) by {len(by)} of {viewers}: {', '.join(by)}")
    if viewers and not failed and not suspected:
        report.add("node_flags", CLUSTER, Status.OK, "no node is flagged fail or fail?")


def check_open_slots(report: Report, snapshots: Sequence[NodeSnapshot],
                     names: NameBook) -> None:
    for snap in _reachable(snapshots):
        me = snap.myself
        opened = me.open_slots if me else ()
        if not opened:
            report.add("open_slots", snap.name, Status.OK, "no importing/migrating slots")
            continue
        described = [
            f"slot {slot} {verb} {names.label_id(peer, snap.entries)}"
            for slot, verb, peer in opened
        ]
        report.add("open_slots", snap.name, Status.FAIL,
                   f"{len(opened)} open slot(s): {'; '.join(described[:5])}"
                   + (" ..." if len(described) > 5 else ""))


def check_slot_map(report: Report, snapshots: Sequence[NodeSnapshot], view: ClusterView,
                   names: NameBook) -> None:
    entries = {s.name: s.entries for s in snapshots}
    ref_owners = view.owners
    for name, mine in view.maps.items():
        if mine == view.majority:
            report.add("slot_map", name, Status.OK,
                       f"agrees with the majority map ({len(view.masters)} masters)")
            continue
        owners = expand_runs(mine)
        differing = [s for s in range(HASH_SLOTS) if owners[s] != ref_owners[s]]
        first = differing[0]
        here = names.label_id(owners[first], entries[name]) if owners[first] else "nobody"
        there = names.label_id(ref_owners[first], view.reference) if ref_owners[first] \
            else "nobody"
        report.add("slot_map", name, Status.FAIL,
                   f"disagrees on {len(differing)} slots: slot {first} owned by {here} here, "
                   f"by {there} in the majority map (from {view.reference_node})")


def check_replication(report: Report, snapshots: Sequence[NodeSnapshot], view: ClusterView,
                      names: NameBook, targets: Targets, limits: Thresholds) -> None:
    by_name = {s.name: s for s in snapshots}
    for master in view.masters:
        master_name = names.label(master)
        master_snap = by_name.get(master_name)
        replicas = view.replicas_of(master)
        if master_snap is None or not master_snap.reachable:
            report.add("replication", master_name, Status.FAIL,
                       "master not reachable: its replication cannot be read")
            continue
        info = master_snap.replication
        master_offset = info_int(info, "master_repl_offset")
        links = [
            parse_kv_list(value) for key, value in sorted(info.items())
            if re.fullmatch(r"slave\d+", key)
        ]
        online = [link for link in links if link.get("state") == "online"]
        link_names = [_replica_label(link, replicas, names) for link in online]
        text = (f"{len(online)} of {targets.replicas_per_master} expected replicas online"
                + (f": {', '.join(link_names)}" if link_names else ""))
        if len(online) < targets.replicas_per_master:
            missing = [names.label(r) for r in replicas if names.label(r) not in link_names]
            if missing:
                text += f"; not connected: {', '.join(missing)}"
            report.add("replication", master_name, Status.FAIL, text)
        else:
            report.add("replication", master_name, Status.OK, text)
        for link in links:
            _check_replica_link(report, link, replicas, names, by_name, master_name,
                                master_offset, limits)
        linked = {_replica_label(link, replicas, names) for link in links}
        for replica in replicas:
            label = names.label(replica)
            if label in linked:
                continue
            snap = by_name.get(label)
            detail = _replica_side(snap) if snap is not None else "not a target"
            report.add("replication", label, Status.FAIL,
                       f"replica of {master_name} in the cluster map but not connected to it "
                       f"({detail})")


def _replica_side(snap: NodeSnapshot) -> str:
    if not snap.reachable:
        return "unreachable"
    info = snap.replication
    if info.get("role") != "slave":
        return f"role {info.get('role', '?')}"
    status = info.get("master_link_status", "?")
    down_since = info.get("master_link_down_since_seconds")
    return f"master_link_status:{status}" + (f" for {down_since}s" if down_since else "")


def _replica_label(link: Mapping[str, str], replicas: Sequence[ClusterNodeEntry],
                   names: NameBook) -> str:
    ip, port = link.get("ip", ""), info_int(link, "port")
    exact = [r for r in replicas if r.host == ip and r.port == port]
    by_port = [r for r in replicas if r.port == port]
    match = exact or (by_port if len(by_port) == 1 else [])
    if match:
        return names.label(match[0])
    return names.by_address.get(f"{ip}:{port}", f"{ip}:{port}")


def _check_replica_link(report: Report, link: Mapping[str, str],
                        replicas: Sequence[ClusterNodeEntry], names: NameBook,
                        by_name: Mapping[str, NodeSnapshot], master_name: str,
                        master_offset: int, limits: Thresholds) -> None:
    label = _replica_label(link, replicas, names)
    state = link.get("state", "?")
    lag_bytes = max(0, master_offset - info_int(link, "offset"))
    lag_s = info_int(link, "lag", -1)
    snap = by_name.get(label)
    side = _replica_side(snap) if snap is not None else "replica not a target"
    text = f"replica of {master_name}: state {state}, lag {format_bytes(lag_bytes)} / {lag_s}s"
    if snap is not None and snap.reachable:
        text += f", {side}"
    status = Status.OK
    if state != "online":
        # Still syncing: the master's own result already fails if too few are online.
        status = Status.WARN
        text += " (sync in progress)"
    if snap is not None and snap.reachable and side != "master_link_status:up":
        status = Status.FAIL
    if lag_s > limits.max_lag_seconds:
        status = Status.FAIL
        text += f"; lag above {limits.max_lag_seconds:g}s"
    elif lag_bytes > limits.max_lag_bytes and status is Status.OK:
        status = Status.WARN
        text += f"; lag above {format_bytes(limits.max_lag_bytes)}"
    report.add("replication", label, status, text)


def check_replica_placement(report: Report, view: ClusterView, names: NameBook,
                            targets: Targets) -> None:
    """Each master needs a healthy replica on another host. A node's host is the Docker host
    the targets name for it; where they name none, its announced address stands in (with
    container IPs on one host that cannot tell hosts apart, hence the outputs' `host`)."""

    machines = {n.name: n.machine for n in targets.nodes if n.machine}

    def machine(entry: ClusterNodeEntry) -> str:
        return machines.get(names.label(entry)) or entry.host

    single_host = len(set(machines.values())) == 1 and len(machines) == len(targets.nodes)
    for master in view.masters:
        master_name = names.label(master)
        replicas = [r for r in view.replicas_of(master) if not r.failed]
        elsewhere = [r for r in replicas if machine(r) != machine(master)]
        if single_host and replicas:
            report.add("replica_placement", master_name, Status.WARN,
                       f"single-host stack: the master and its replica(s) all run on "
                       f"{machine(master)}; losing that host loses the cluster")
        elif elsewhere:
            report.add("replica_placement", master_name, Status.OK,
                       f"master on {machine(master)}; replica(s) on other hosts: "
                       + ", ".join(f"{names.label(r)} ({machine(r)})" for r in elsewhere))
        elif replicas:
            report.add("replica_placement", master_name, Status.FAIL,
                       f"every replica is on the master's own host {machine(master)}: "
                       + ", ".join(names.label(r) for r in replicas)
                       + "; losing that host loses the shard")
        elif targets.replicas_per_master == 0:
            report.add("replica_placement", master_name, Status.OK, "no replicas planned")
        else:
            report.add("replica_placement", master_name, Status.FAIL,
                       "no working replica: a failure of this master loses its slots "
                       f"{format_ranges(master.slots)}")
    if not single_host:
        _warn_on_bunched_masters(report, [machine(m) for m in view.masters],
                                 {machine(e) for e in view.reference})


def _warn_on_bunched_masters(report: Report, master_hosts: Sequence[str],
                             hosts: set[str]) -> None:
    """Failovers promote a replica wherever it runs, so masters can gather on one host. A host
    holding more than an even share, and half of all masters or more, takes the majority that
    votes failovers with it when it goes: its shards would wait for it to come back."""
    if len(hosts) < 2 or not master_hosts:
        return
    even_share = -(-len(master_hosts) // len(hosts))
    for host, count in sorted(Counter(master_hosts).items()):
        if count > even_share and 2 * count >= len(master_hosts):
            report.add("replica_placement", host, Status.WARN,
                       f"{count} of {len(master_hosts)} masters run on {host}: losing it "
                       "leaves too few masters to vote a failover, and their shards wait "
                       "for it. Fix: python -m clusterops failback --apply (hands each shard "
                       "back to its planned master)")


def check_memory(report: Report, snapshots: Sequence[NodeSnapshot],
                 declared: int | None, limits: Thresholds) -> None:
    for snap in _reachable(snapshots):
        used = info_int(snap.memory, "used_memory")
        limit = info_int(snap.memory, "maxmemory")
        policy = snap.memory.get("maxmemory_policy", "?")
        if limit <= 0:
            status = Status.WARN
            text = f"used {format_bytes(used)}, no maxmemory limit set"
            if declared:
                text += f" (declared {format_bytes(declared)})"
            report.add("memory", snap.name, status, text)
            continue
        percent = 100.0 * used / limit
        text = (f"used {format_bytes(used)} of {format_bytes(limit)} ({percent:.1f}%), "
                f"policy {policy}")
        if percent >= limits.memory_fail_percent:
            status = Status.FAIL
            text += f"; at or above {limits.memory_fail_percent:g}%"
        elif percent >= limits.memory_warn_percent:
            status = Status.WARN
            text += f"; at or above {limits.memory_warn_percent:g}%"
        else:
            status = Status.OK
        if declared and limit != declared:
            status = Status.FAIL if status is Status.FAIL else Status.WARN
            text += f"; declared maxmemory is {format_bytes(declared)}"
        report.add("memory", snap.name, status, text)


# INFO persistence field -> what its failure means for the node's clients.
PERSISTENCE_STATUS = {
    "aof_last_write_status": "AOF writes are failing (disk full or I/O error): the node "
                             "refuses writes (MISCONF) until one succeeds",
    "rdb_last_bgsave_status": "the last RDB snapshot failed: backups are stale, and with "
                              "stop-writes-on-bgsave-error the node refuses writes",
    "aof_last_bgrewrite_status": "the last AOF rewrite failed: the AOF keeps growing",
}


def check_persistence(report: Report, snapshots: Sequence[NodeSnapshot]) -> None:
    """Each node's own account of its last disk writes (INFO persistence)."""
    for snap in _reachable(snapshots):
        failing = [(key, why) for key, why in PERSISTENCE_STATUS.items()
                   if snap.persistence.get(key, "ok") != "ok"]
        if not failing:
            report.add("persistence", snap.name, Status.OK, "last AOF write, RDB save and "
                       "AOF rewrite ok")
            continue
        writes_refused = any(key != "aof_last_bgrewrite_status" for key, _why in failing)
        report.add("persistence", snap.name, Status.FAIL if writes_refused else Status.WARN,
                   "; ".join(f"{key}:{snap.persistence[key]}: {why}" for key, why in failing)
                   + ". Fix: free space on the node's data volume (docker logs names the "
                   "error); it serves writes again by itself once a write succeeds")


def _reachable(snapshots: Sequence[NodeSnapshot]) -> list[NodeSnapshot]:
    return [s for s in snapshots if s.reachable]


def evaluate(snapshots: Sequence[NodeSnapshot], targets: Targets,
             thresholds: Thresholds | None = None) -> tuple[Report, ClusterView, NameBook]:
    """All checks that need no further I/O, over the gathered snapshots."""
    limits = thresholds or Thresholds()
    report = Report()
    names = NameBook(snapshots, targets)
    view = majority_view(snapshots)
    check_reachable(report, snapshots)
    check_cluster_state(report, snapshots)
    check_slot_coverage(report, snapshots)
    check_node_count(report, snapshots, view, names, targets)
    check_node_flags(report, snapshots, names)
    check_open_slots(report, snapshots, names)
    check_slot_map(report, snapshots, view, names)
    check_replication(report, snapshots, view, names, targets, limits)
    check_replica_placement(report, view, names, targets)
    check_memory(report, snapshots, targets.maxmemory_bytes, limits)
    check_persistence(report, snapshots)
    return report, view, names


# --------------------------------------------------------------------------- write / read


def probe_key(slots: Sequence[tuple[int, int]], token: str) -> str:
    """A unique key whose hash tag lands in one of ``slots``."""
    (tag,) = hash_tags(slots, 1, "h")
    return f"{KEY_PREFIX}:{{{tag}}}:{token}"


def check_write_read(report: Report, targets: Targets, snapshots: Sequence[NodeSnapshot],
                     view: ClusterView, names: NameBook, timeout_s: float,
                     cluster_factory: Callable[..., RedisCluster] = RedisCluster) -> None:
    """SET/GET/DEL through a cluster client (as applications do), one key per master."""
    if not view.masters:
        report.add("write_read", CLUSTER, Status.FAIL, "no master serves slots: nothing to test")
        return
    reachable = {s.name for s in snapshots if s.reachable}
    startup = [n for n in targets.nodes if n.name in reachable]
    if not startup:
        report.add("write_read", CLUSTER, Status.FAIL, "no reachable node to start a client from")
        return
    try:
        client = cluster_factory(
            **targets.cluster_client_options(startup),
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
            protocol=2,
            # Per-master results need a client even when some slots are down.
            require_full_coverage=False,
            retry=Retry(NoBackoff(), 1),
        )
    except (redis.RedisError, RedisClusterException) as exc:
        # RedisClusterException is not a RedisError: redis-py raises it when the startup nodes
        # disagree on the slot map, the very state this command exists to report.
        reason = describe_error(exc, targets.access, timeout_s)
        report.add("write_read", CLUSTER, Status.FAIL, f"cluster client could not start: {reason}")
        return
    try:
        for master in view.masters:
            _round_trip(report, client, master, names.label(master), targets.access, timeout_s)
    finally:
        client.close()


def _round_trip(report: Report, client: RedisCluster, master: ClusterNodeEntry, label: str,
                access: Access, timeout_s: float) -> None:
    token = uuid.uuid4().hex
    key = probe_key(master.slots, token)
    slot = key_slot(key.encode())
    written = False
    try:
        started = time.perf_counter()
        written = bool(client.set(key, token, ex=KEY_TTL_S))
        value = client.get(key)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if value == token:
            report.add("write_read", label, Status.OK,
                       f"SET+GET of slot {slot} via cluster client in {elapsed_ms:.1f} ms")
        else:
            report.add("write_read", label, Status.FAIL,
                       f"slot {slot}: read back {value!r}, expected the value just written")
    except (redis.RedisError, RedisClusterException) as exc:  # e.g. SlotNotCoveredError
        report.add("write_read", label, Status.FAIL,
                   f"slot {slot}: {describe_error(exc, access, timeout_s)}")
    finally:
        if written:
            with contextlib.suppress(redis.RedisError):  # the TTL removes it anyway
                client.delete(key)


# --------------------------------------------------------------------------- run


@dataclass(frozen=True)
class HealthRun(_Verdict):
    targets: Targets
    results: tuple[CheckResult, ...]
    duration_s: float


def run_health(targets: Targets, timeout_s: float = DEFAULT_TIMEOUT_S,
               thresholds: Thresholds | None = None, write_read: bool = True) -> HealthRun:
    started = time.monotonic()
    snapshots = observe_nodes(targets.nodes, targets.access, timeout_s)
    report, view, names = evaluate(snapshots, targets, thresholds)
    if write_read and any(s.reachable for s in snapshots):
        check_write_read(report, targets, snapshots, view, names, timeout_s)
    ordered = report.sorted([n.name for n in targets.nodes])
    clean = tuple(
        CheckResult(r.check, r.node, r.status, targets.access.redact(r.message))
        for r in ordered
    )
    return HealthRun(targets, clean, time.monotonic() - started)


def failing_nodes(run: _Verdict) -> dict[str, list[str]]:
    """Failing node -> the checks it failed, in report order."""
    by_node: dict[str, list[str]] = {}
    for result in run.failures:
        checks = by_node.setdefault(result.node, [])
        if result.check not in checks:
            checks.append(result.check)
    return by_node
