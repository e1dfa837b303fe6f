"""Live traffic for change tests: a redis-py RedisCluster client writing SET + WAIT 1 across
all slots while `pulumi up` changes the cluster, recording what each write got.

Keys are `live:<run>:<seq>`, so consecutive writes hash all over the 16384 slots (every
shard). Each SET and its WAIT go down ONE connection (a non-transactional pipeline on the
owning node's client): WAIT counts the replicas that acknowledged that connection's writes, so
a WAIT on another pooled connection would prove nothing. redis-py's cluster client routes by
its slot map; on an error the write is recorded as failed (never retried: a retry would hide
the error window we measure) and the map is refreshed, as the client does after a MOVED.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException

WAIT_TIMEOUT_MS = 500


@dataclass
class LiveWriteResult:
    acked: list[tuple[str, str]] = field(default_factory=list)  # (key, value) WAIT >= 1
    unacked: int = 0  # SET ok, no replica confirmed within WAIT_TIMEOUT_MS
    errors: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time, error)
    applied_at: list[float] = field(default_factory=list)  # monotonic time of each SET ok
    started: float = 0.0
    stopped: float = 0.0

    @property
    def error_window_s(self) -> float:
        """From the first failed write to the last one (0 when none failed)."""
        if not self.errors:
            return 0.0
        return self.errors[-1][0] - self.errors[0][0]

    def summary(self) -> str:
        kinds = sorted({why.split(":", 1)[0] for _t, why in self.errors})
        return (f"{len(self.acked)} acknowledged writes (SET + WAIT 1) in "
                f"{self.stopped - self.started:.1f} s, {self.unacked} unacknowledged, "
                f"{len(self.errors)} failed, error window {self.error_window_s:.3f} s"
                + (f" ({', '.join(kinds)})" if kinds else ""))


def set_and_wait(cluster: RedisCluster, key: str, value: str | int,
                 wait_timeout_ms: int) -> bool:
    """SET then WAIT 1 down ONE connection to the slot's owner in the client's map (see the
    module doc): whether a replica confirmed the write. Raises the SET's error."""
    node = cluster.get_node_from_key(key)
    pipe = cluster.get_redis_connection(node).pipeline(transaction=False)
    pipe.set(key, value)
    pipe.execute_command("WAIT", 1, wait_timeout_ms)
    set_reply, replicas = pipe.execute(raise_on_error=False)
    if isinstance(set_reply, Exception):
        raise set_reply
    return isinstance(replicas, int) and replicas >= 1


class LiveWriter(threading.Thread):
    def __init__(self, seeds: list[tuple[str, int]], password: str, run_id: str,
                 interval_s: float = 0.002, **client_options: object) -> None:
        """``client_options`` go to RedisCluster (e.g. ``username``, TLS settings)."""
        super().__init__(name="live-writer", daemon=True)
        self._seeds = seeds
        self._password = password
        self._run_id = run_id
        self._interval_s = interval_s
        self._client_options = client_options
        self._stop_event = threading.Event()
        self.result = LiveWriteResult()
        self.failure: BaseException | None = None

    def cluster(self) -> RedisCluster:
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in self._seeds],
            password=self._password, socket_timeout=1.0, socket_connect_timeout=1.0,
            decode_responses=True, **self._client_options,  # type: ignore[arg-type]
        )

    def stop(self) -> LiveWriteResult:
        self._stop_event.set()
        self.join(30)
        if self.failure is not None:
            raise AssertionError(f"the live writer died: {self.failure!r}") from self.failure
        return self.result

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # surfaced by stop(): a dead writer must not go unseen
            self.failure = exc

    def _loop(self) -> None:
        cluster = self.cluster()
        self.result.started = time.monotonic()
        seq = 0
        try:
            while not self._stop_event.is_set():
                seq += 1
                key, value = f"live:{self._run_id}:{seq}", str(seq)
                self._write(cluster, key, value)
                self._stop_event.wait(self._interval_s)
        finally:
            self.result.stopped = time.monotonic()
            cluster.close()

    def _write(self, cluster: RedisCluster, key: str, value: str) -> None:
        try:
            confirmed = set_and_wait(cluster, key, value, WAIT_TIMEOUT_MS)
        except (redis.RedisError, OSError) as exc:
            self.result.errors.append((time.monotonic(), f"{type(exc).__name__}: {exc}"))
            # What redis-py does after MOVED or a dead node; if it fails too, the next write
            # tries again.
            # (RedisClusterException: no node answered the refresh this time.)
            with contextlib.suppress(redis.RedisError, RedisClusterException):
                cluster.nodes_manager.initialize()
            return
        self.result.applied_at.append(time.monotonic())
        if confirmed:
            self.result.acked.append((key, value))
        else:
            self.result.unacked += 1


def lost_acknowledged(writer: LiveWriter, result: LiveWriteResult) -> list[str]:
    """Acknowledged keys that are missing or hold another value now (a fresh client)."""
    cluster = writer.cluster()
    try:
        return acknowledged_missing(cluster, result)
    finally:
        cluster.close()


def acknowledged_missing(cluster: RedisCluster, result: LiveWriteResult) -> list[str]:
    """Acknowledged keys that `cluster` does not hold with the acknowledged value."""
    lost = []
    batch = 500
    for start in range(0, len(result.acked), batch):
        chunk = result.acked[start:start + batch]
        values = cluster.mget_nonatomic([key for key, _ in chunk])
        lost += [key for (key, value), got in zip(chunk, values, strict=True) if got != value]
    return lost
