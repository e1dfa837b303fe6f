"""What one node says about the cluster: ``CLUSTER NODES`` parsed, plus a read-only snapshot.

Pure parsing (``parse_cluster_nodes``) is separate from I/O (``observe_node``) so it can be
tested with fabricated text and reused by the operator commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import redis

from clusterops.connection import admin_client
from clusterops.errors import redact
from clusterops.model import NodeTarget, merge_ranges


@dataclass(frozen=True)
class ClusterNodeEntry:
    """One line of ``CLUSTER NODES``."""

    node_id: str
    host: str  # "" when the node does not know its own IP yet (never met anyone)
    port: int
    bus_port: int
    flags: frozenset[str]
    master_id: str | None  # for replicas
    config_epoch: int
    link_state: str
    slots: tuple[tuple[int, int], ...]
    migrating: tuple[tuple[int, str], ...] = ()  # (slot, target node id)
    importing: tuple[tuple[int, str], ...] = ()  # (slot, source node id)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_myself(self) -> bool:
        return "myself" in self.flags

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def is_replica(self) -> bool:
        return "slave" in self.flags

    @property
    def in_handshake(self) -> bool:
        return "handshake" in self.flags

    @property
    def is_failing(self) -> bool:
        return self.failed or self.possibly_failed

    @property
    def failed(self) -> bool:
        """Flagged FAIL: a majority of masters agreed it is down."""
        return "fail" in self.flags

    @property
    def possibly_failed(self) -> bool:
        """Flagged PFAIL (``fail?``) by the node whose view this is."""
        return "fail?" in self.flags

    @property
    def open_slots(self) -> tuple[tuple[int, str, str], ...]:
        """(slot, "migrating to" | "importing from", peer id), in slot order."""
        opened = [(slot, "migrating to", peer) for slot, peer in self.migrating]
        opened += [(slot, "importing from", peer) for slot, peer in self.importing]
        return tuple(sorted(opened))

    @property
    def slot_count(self) -> int:
        return sum(last - first + 1 for first, last in self.slots)


def parse_cluster_nodes(text: str) -> list[ClusterNodeEntry]:
    """Parse ``CLUSTER NODES`` output (Redis 7: ``ip:port@cport[,hostname]``)."""
    entries = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        node_id, address, flags, master, _ping, _pong, epoch, link = parts[:8]
        address = address.split(",", 1)[0]
        host_port, _, bus = address.partition("@")
        host, _, port = host_port.rpartition(":")
        slots: list[tuple[int, int]] = []
        migrating: list[tuple[int, str]] = []
        importing: list[tuple[int, str]] = []
        for token in parts[8:]:
            if token.startswith("["):
                body = token.strip("[]")
                if "->-" in body:
                    slot, target = body.split("->-")
                    migrating.append((int(slot), target))
                elif "-<-" in body:
                    slot, source = body.split("-<-")
                    importing.append((int(slot), source))
                continue
            first, _, last = token.partition("-")
            slots.append((int(first), int(last or first)))
        entries.append(
            ClusterNodeEntry(
                node_id=node_id,
                host=host,
                port=int(port or 0),
                bus_port=int(bus or 0),
                flags=frozenset(flags.split(",")),
                master_id=None if master == "-" else master,
                config_epoch=int(epoch),
                link_state=link,
                slots=tuple(slots),
                migrating=tuple(migrating),
                importing=tuple(importing),
            )
        )
    return entries


@dataclass
class NodeSnapshot:
    """Read-only facts about one planned node, gathered in one go (no writes)."""

    target: NodeTarget
    error: str | None = None  # why the node could not be observed (password redacted)
    cluster_enabled: bool = False
    my_id: str = ""
    key_count: int = 0
    cluster_info: dict[str, str] = field(default_factory=dict)
    entries: list[ClusterNodeEntry] = field(default_factory=list)
    replication: dict[str, str] = field(default_factory=dict)  # INFO replication

    @property
    def reachable(self) -> bool:
        return self.error is None

    @property
    def myself(self) -> ClusterNodeEntry | None:
        for entry in self.entries:
            if entry.is_myself:
                return entry
        return None

    @property
    def others(self) -> list[ClusterNodeEntry]:
        return [entry for entry in self.entries if not entry.is_myself]

    @property
    def state(self) -> str:
        return self.cluster_info.get("cluster_state", "?")

    def describe(self) -> str:
        """A one-line summary for error messages."""
        if not self.reachable:
            return f"{self.target.name}: unreachable ({self.error})"
        me = self.myself
        slots = merge_ranges(s for a, b in (me.slots if me else ()) for s in range(a, b + 1))
        role = "replica" if me and me.is_replica else "master"
        return (
            f"{self.target.name}: {role}, cluster_state={self.state}, knows "
            f"{len(self.entries)} node(s) ({sum(e.in_handshake for e in self.entries)} in "
            f"handshake), slots={slots or 'none'}, keys={self.key_count}"
        )


def parse_info_text(text: str) -> dict[str, str]:
    """``CLUSTER INFO``-style ``key:value`` lines -> dict."""
    info = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            info[key] = value
    return info


def observe_node(
    target: NodeTarget,
    password: str | None,
    socket_timeout_s: float = 2.0,
    conn: redis.Redis | None = None,
) -> NodeSnapshot:
    """Gather a :class:`NodeSnapshot` of ``target`` with read-only commands.

    Pass ``conn`` to reuse an open admin connection (polling loops); otherwise a short-lived
    one is made and closed here.
    """
    if conn is None:
        timeouts = (socket_timeout_s, min(1.0, socket_timeout_s))
        with admin_client(target, password, *timeouts) as own_conn:
            return observe_node(target, password, socket_timeout_s, own_conn)
    snapshot = NodeSnapshot(target)
    # One round trip for all six reads. "CLUSTER", "NODES" as two words: redis-py then returns
    # the raw text instead of applying its own (version-dependent) parser.
    try:
        pipe = conn.pipeline(transaction=False)
        pipe.info("cluster")
        pipe.dbsize()
        pipe.execute_command("CLUSTER", "MYID")
        pipe.execute_command("CLUSTER", "INFO")
        pipe.execute_command("CLUSTER", "NODES")
        pipe.execute_command("INFO", "replication")
        info, key_count, my_id, cluster_info, nodes, replication = pipe.execute(
            raise_on_error=False
        )
        for reply in (info, key_count):
            if isinstance(reply, Exception):
                raise reply
        snapshot.cluster_enabled = bool(int(info.get("cluster_enabled", 0)))
        snapshot.key_count = int(key_count)
        if snapshot.cluster_enabled:
            for reply in (my_id, cluster_info, nodes):
                if isinstance(reply, Exception):
                    raise reply
            snapshot.my_id = str(my_id)
            snapshot.cluster_info = parse_info_text(str(cluster_info))
            snapshot.entries = parse_cluster_nodes(str(nodes))
        if isinstance(replication, dict):  # redis-py parses INFO replies itself
            snapshot.replication = {k: str(v) for k, v in replication.items()}
    except redis.RedisError as exc:
        snapshot.error = redact(f"{type(exc).__name__}: {exc}", password)
    return snapshot


def observe_nodes(
    targets: Sequence[NodeTarget], password: str | None, socket_timeout_s: float = 2.0
) -> list[NodeSnapshot]:
    return [observe_node(target, password, socket_timeout_s) for target in targets]
