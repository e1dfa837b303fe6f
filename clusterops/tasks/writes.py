"""Writes as a client sees them: a writer that records, per write, what the cluster answered.

Used by the failover drill (clusterops.tasks.drill). Every client here has short timeouts and NO
retries: a retry would hide exactly the latency and the outcomes a drill measures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis
from redis.crc import key_slot

from clusterops.node.observe import (
    ClusterNodeEntry,
    NodeSnapshot,
    observe_nodes,
    parse_cluster_nodes,
)
from clusterops.node.targets import Targets

ADMIN_TIMEOUT_S = 0.5
WRITER_TIMEOUT_S = 1.0
WRITER_INTERVAL_S = 0.005
DEFAULT_WAIT_TIMEOUT_MS = 500

# Write outcomes, as the client saw them.
ACKED = "acked"  # SET ok and WAIT counted >= 1 replica
UNACKED = "unacked"  # SET ok, no replica confirmed it in time
REJECTED = "rejected"  # an error reply (MOVED, CLUSTERDOWN, ...): not applied
UNSENT = "unsent"  # could not connect: not applied
INDETERMINATE = "indeterminate"  # sent, but the reply never came: may or may not be applied


class Connections:
    """One client per node with short timeouts and NO retries (a retry would hide latency)."""

    def __init__(self, targets: Targets, timeout_s: float = ADMIN_TIMEOUT_S) -> None:
        self._nodes = {node.name: node for node in targets.nodes}
        self._access = targets.access
        self._timeout_s = timeout_s
        self._clients: dict[str, redis.Redis] = {}

    def client(self, name: str) -> redis.Redis:
        if name not in self._clients:
            node = self._nodes[name]
            self._clients[name] = self._access.client(
                node, self._timeout_s, self._timeout_s, single_connection_client=True)
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
        return observe_nodes([self._nodes[n] for n in names], self._access, self._timeout_s)

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

    def _connect(self, name: str) -> redis.Redis:
        # One connection, made now (a refused connect is UNSENT): a WAIT counts the replicas
        # that acknowledged the writes of its own connection.
        return self._targets.access.client(self._nodes[name], self._socket_timeout_s,
                                           self._socket_timeout_s, single_connection_client=True)

    def _loop(self) -> None:
        lookups = Connections(self._targets, ADMIN_TIMEOUT_S)
        conn: redis.Redis | None = None
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
                    conn.close()
                    conn, owner = None, None
                self._stop_event.wait(self._interval_s)
        finally:
            if conn is not None:
                conn.close()
            lookups.close()

    def _write(self, conn: redis.Redis, record: WriteRecord) -> str:
        try:
            conn.execute_command("SET", record.key, record.value)
        except redis.ResponseError:
            return REJECTED
        except redis.RedisError:
            return INDETERMINATE
        try:
            replicas = int(conn.execute_command("WAIT", 1, self._wait_timeout_ms))
        except (redis.RedisError, ValueError):
            return UNACKED
        return ACKED if replicas >= 1 else UNACKED

    def _append(self, record: WriteRecord) -> None:
        with self._lock:
            self._records.append(record)


