"""What a live node says, read once: the ``CLUSTER NODES`` and INFO parsers and one snapshot.

Pure parsing (:func:`parse_cluster_nodes`, :func:`parse_info`) is separate from I/O
(:func:`observe_node`), so the checks built on snapshots are tested with fabricated text.
Observing is read-only and never raises for a node that cannot be asked: the snapshot says
why (``error``, password redacted) and whether waiting could help (``auth_failed``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis

from clusterops.core.engines import ServerIdentity, identity_from_info
from clusterops.core.errors import AuthError
from clusterops.core.model import NodeTarget, format_ranges
from clusterops.node.access import Access

DEFAULT_TIMEOUT_S = 2.0
MAX_PARALLEL = 16


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
    def failed(self) -> bool:
        """Flagged FAIL: a majority of masters agreed it is down."""
        return "fail" in self.flags

    @property
    def possibly_failed(self) -> bool:
        """Flagged PFAIL (``fail?``) by the node whose view this is."""
        return "fail?" in self.flags

    @property
    def is_failing(self) -> bool:
        return self.failed or self.possibly_failed

    @property
    def open_slots(self) -> tuple[tuple[int, str, str], ...]:
        """(slot, "migrating to" | "importing from", peer id), in slot order."""
        opened = [(slot, "migrating to", peer) for slot, peer in self.migrating]
        opened += [(slot, "importing from", peer) for slot, peer in self.importing]
        return tuple(sorted(opened))

    def owns(self, slot: int) -> bool:
        return any(first <= slot <= last for first, last in self.slots)


def parse_cluster_nodes(text: str) -> list[ClusterNodeEntry]:
    """Parse ``CLUSTER NODES`` output (Redis 7: ``ip:port@cport[,hostname]``)."""
    entries = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        node_id, address, flags, master, _ping, _pong, epoch, link = parts[:8]
        host_port, _, bus = address.split(",", 1)[0].partition("@")
        host, _, port = host_port.rpartition(":")
        slots: list[tuple[int, int]] = []
        migrating: list[tuple[int, str]] = []
        importing: list[tuple[int, str]] = []
        for token in parts[8:]:
            if token.startswith("["):  # an open slot: [slot->-target] or [slot-<-source]
                body = token.strip("[]")
                if "->-" in body:
                    slot, peer = body.split("->-")
                    migrating.append((int(slot), peer))
                elif "-<-" in body:
                    slot, peer = body.split("-<-")
                    importing.append((int(slot), peer))
                continue
            first, _, last = token.partition("-")
            slots.append((int(first), int(last or first)))
        entries.append(
            ClusterNodeEntry(
                node_id=node_id, host=host, port=int(port or 0), bus_port=int(bus or 0),
                flags=frozenset(flags.split(",")), master_id=None if master == "-" else master,
                config_epoch=int(epoch), link_state=link, slots=tuple(slots),
                migrating=tuple(migrating), importing=tuple(importing),
            )
        )
    return entries


def parse_info(text: str) -> dict[str, str]:
    """``key:value`` lines of INFO / CLUSTER INFO; section headers and blanks are skipped."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        fields[key] = value
    return fields


def info_int(fields: Mapping[str, str], key: str, default: int = 0) -> int:
    """An integer field of parsed INFO; ``default`` when it is missing or not a number."""
    try:
        return int(fields.get(key, default))
    except (TypeError, ValueError):
        return default


def parse_kv_list(text: str) -> dict[str, str]:
    """``ip=1.2.3.4,port=6379,state=online`` (INFO's slaveN values)."""
    pairs = (item.partition("=") for item in text.split(",") if item)
    return {key: value for key, _, value in pairs}


def is_auth_error(exc: BaseException) -> bool:
    """NOAUTH / WRONGPASS: no amount of waiting makes the node accept us."""
    return isinstance(exc, redis.AuthenticationError) or (
        isinstance(exc, redis.ResponseError) and str(exc).startswith(("NOAUTH", "WRONGPASS"))
    )


def describe_error(exc: BaseException, access: Access, timeout_s: float) -> str:
    """A message for an operator; the password never appears in it."""
    if is_auth_error(exc) and not access.password:
        text = ("authentication required (NOAUTH) but no password was given: use "
                "--password-file, the stack outputs or $REDIS_PASSWORD")
    elif is_auth_error(exc):
        text = f"authentication failed: the password was refused (WRONGPASS: {exc})"
    elif isinstance(exc, redis.TimeoutError):
        text = f"no answer within {timeout_s:.3g}s (timeout): node down, frozen or unreachable"
    elif isinstance(exc, redis.ConnectionError):
        text = f"unreachable: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return access.redact(text)


@dataclass
class NodeSnapshot:
    """Read-only facts about one node, gathered in one go (or why they could not be)."""

    node: NodeTarget
    error: str | None = None  # why the node could not be observed (password redacted)
    auth_failed: bool = False  # the error is NOAUTH/WRONGPASS: waiting cannot fix it
    cluster_enabled: bool = False
    my_id: str = ""
    key_count: int = 0
    cluster_info: dict[str, str] = field(default_factory=dict)
    entries: list[ClusterNodeEntry] = field(default_factory=list)  # CLUSTER NODES
    replication: dict[str, str] = field(default_factory=dict)  # INFO replication
    memory: dict[str, str] = field(default_factory=dict)  # INFO memory
    server: dict[str, str] = field(default_factory=dict)  # INFO server: engine and version
    persistence: dict[str, str] = field(default_factory=dict)  # INFO persistence
    ping_ms: float | None = None

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def address(self) -> str:
        return self.node.address

    @property
    def reachable(self) -> bool:
        return self.error is None

    @property
    def identity(self) -> ServerIdentity | None:
        """Which server this is (Redis or Valkey, its version), as INFO server says."""
        return identity_from_info(self.server)

    @property
    def myself(self) -> ClusterNodeEntry | None:
        return next((entry for entry in self.entries if entry.is_myself), None)

    @property
    def others(self) -> list[ClusterNodeEntry]:
        return [entry for entry in self.entries if not entry.is_myself]

    @property
    def state(self) -> str:
        return self.cluster_info.get("cluster_state", "?")

    @property
    def serves_slots(self) -> bool:
        """A master serving slots now (by its own account)."""
        me = self.myself
        return me is not None and me.is_master and bool(me.slots)

    def describe(self) -> str:
        """A one-line summary for error messages."""
        if not self.reachable:
            return f"{self.name}: unreachable ({self.error})"
        me = self.myself
        role = "replica" if me and me.is_replica else "master"
        return (
            f"{self.name}: {role}, cluster_state={self.state}, knows "
            f"{len(self.entries)} node(s) ({sum(e.in_handshake for e in self.entries)} in "
            f"handshake), slots={format_ranges(me.slots if me else ()) or 'none'}, "
            f"keys={self.key_count}"
        )


def reply_text(reply: Any, **_options: Any) -> str:
    """A reply as text, whether the client decodes replies or not (also a redis-py callback)."""
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def server_identity(conn: redis.Redis) -> ServerIdentity | None:
    """Which server ``conn`` reaches (INFO server; clusterops/core/engines.py)."""
    # "INFO server" as one word: the raw text, not redis-py's number-guessing parser.
    return identity_from_info(parse_info(reply_text(conn.execute_command("INFO server"))))


def observe_node(
    node: NodeTarget,
    access: Access,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    conn: redis.Redis | None = None,
) -> NodeSnapshot:
    """Gather a :class:`NodeSnapshot` of ``node`` with read-only commands.

    Pass ``conn`` to reuse an open connection (polling loops); otherwise a short-lived one
    is made and closed here.
    """
    if conn is None:
        # RESP2: a missing password yields a plain NOAUTH instead of a HELLO error.
        with access.client(node, timeout_s, min(1.0, timeout_s),
                          protocol=2) as own_conn:
            return observe_node(node, access, timeout_s, own_conn)
    # Every INFO reply as raw text, parsed by parse_info: one parser for every INFO section.
    conn.set_response_callback("INFO", reply_text)
    snapshot = NodeSnapshot(node)
    try:
        started = time.perf_counter()
        try:
            conn.ping()
            snapshot.ping_ms = (time.perf_counter() - started) * 1000
        except redis.ResponseError as exc:
            # A master whose disk writes fail refuses PING with the writes (MISCONF): it is
            # up and answers the rest; the health's persistence check says why.
            if not str(exc).startswith("MISCONF"):
                raise
        # One round trip for the rest. "CLUSTER", "NODES" as two words: redis-py then returns
        # the raw text instead of applying its own (version-dependent) parser.
        pipe = conn.pipeline(transaction=False)
        pipe.execute_command("INFO", "cluster")
        pipe.dbsize()
        pipe.execute_command("INFO", "replication")
        pipe.execute_command("INFO", "memory")
        pipe.execute_command("INFO", "server")
        pipe.execute_command("INFO", "persistence")
        pipe.execute_command("CLUSTER", "MYID")
        pipe.execute_command("CLUSTER", "INFO")
        pipe.execute_command("CLUSTER", "NODES")
        replies = pipe.execute(raise_on_error=False)
        (info, key_count, replication, memory, server, persistence, my_id, cluster_info,
         nodes) = replies
        for reply in (info, key_count, replication, memory, server, persistence):
            if isinstance(reply, Exception):
                raise reply
        snapshot.cluster_enabled = parse_info(reply_text(info)).get("cluster_enabled") == "1"
        snapshot.key_count = int(key_count)
        snapshot.replication = parse_info(reply_text(replication))
        snapshot.memory = parse_info(reply_text(memory))
        snapshot.server = parse_info(reply_text(server))
        snapshot.persistence = parse_info(reply_text(persistence))
        if snapshot.cluster_enabled:
            for reply in (my_id, cluster_info, nodes):
                if isinstance(reply, Exception):
                    raise reply
            snapshot.my_id = reply_text(my_id)
            snapshot.cluster_info = parse_info(reply_text(cluster_info))
            snapshot.entries = parse_cluster_nodes(reply_text(nodes))
    except redis.RedisError as exc:
        snapshot.error = describe_error(exc, access, timeout_s)
        snapshot.auth_failed = is_auth_error(exc)
    return snapshot


def refuse_on_auth(snapshots: Sequence[NodeSnapshot]) -> None:
    """A refused password is a usage error no waiting fixes (exit 2): name every such node."""
    refused = [s for s in snapshots if s.auth_failed]
    if refused:
        raise AuthError("; ".join(f"{s.name} ({s.address}): {s.error}" for s in refused))


def observe_nodes(
    nodes: Sequence[NodeTarget], access: Access, timeout_s: float = DEFAULT_TIMEOUT_S
) -> list[NodeSnapshot]:
    """Observe every node at once, so a dead node costs one timeout, not one per node."""
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, max(1, len(nodes)))) as pool:
        return list(pool.map(lambda node: observe_node(node, access, timeout_s), nodes))
