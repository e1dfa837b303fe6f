"""The soak's clients: a set workload and a register workload over redis-py's cluster client.

Every write is SET then WAIT 1 down ONE connection (a non-transactional pipeline on the
connection to the slot's owner in the client's map), so WAIT counts replicas that have that
very write. Nothing is retried: an error is recorded as a failed operation (its window is what
the checker measures) and the client's slot map is refreshed, as redis-py does after MOVED or a
dead node. The next operation follows the new map.

- set: unique elements ``soak:<run>:s:<n>`` = n, written once each; all read back at the end;
- register: a few keys, each overwritten with rising versions by one writer, and read by a
  reader all along; a read older than an acknowledged version is stale (allowed, counted).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException

from clusterops.client import from_stack_outputs
from tests.support.live_writer import set_and_wait
from tests.support.soak.history import History, Op

# A client notices a dead or sleeping node only when its socket times out, so that timeout adds
# to every window the checker measures: half a second, as clients that want fast failover set
# it, and WAIT's own limit well inside it.
WAIT_TIMEOUT_MS = 200
CLIENT_TIMEOUT_S = 0.5
CLIENT_ERRORS = (redis.RedisError, RedisClusterException, OSError)


def cluster_client(outputs: Mapping[str, Any]) -> RedisCluster:
    """The application's client, as an application stack builds it from the outputs."""
    return from_stack_outputs(outputs, "network", decode_responses=True,
                              socket_timeout=CLIENT_TIMEOUT_S,
                              socket_connect_timeout=CLIENT_TIMEOUT_S)


def refresh_map(client: RedisCluster, failed_node: str | None) -> None:
    """What redis-py does after MOVED or a dead node, asking the node that failed last; when
    no node answers, the next try does."""
    with contextlib.suppress(*CLIENT_ERRORS):
        client.nodes_manager.initialize(last_failed_node_name=failed_node)


def node_name(client: RedisCluster, key: str) -> str | None:
    """The node the client's map sends ``key`` to (None: its slot is not in the map)."""
    try:
        return client.get_node_from_key(key).name
    except CLIENT_ERRORS:
        return None


def write_and_wait(client: RedisCluster, key: str, value: int) -> str:
    """SET + WAIT 1 on one connection: 'acked' or 'unacked'; raises on an error."""
    return "acked" if set_and_wait(client, key, value, WAIT_TIMEOUT_MS) else "unacked"


def read_int(client: RedisCluster, key: str) -> int:
    """GET from the slot's owner in the client's map (no redirect followed): -1 for no key."""
    node = client.get_node_from_key(key)
    value = client.get_redis_connection(node).get(key)
    return -1 if value is None else int(value)


class Worker(threading.Thread):
    """One client thread doing ``step`` every ``interval_s`` until stopped; a crash is kept and
    raised by ``stop`` (a dead client must not pass as a quiet cluster)."""

    def __init__(self, name: str, outputs: Mapping[str, Any], history: History,
                 interval_s: float) -> None:
        super().__init__(name=name, daemon=True)
        self.client = cluster_client(outputs)
        self.history = history
        self.interval_s = interval_s
        self.failure: BaseException | None = None
        self._halt = threading.Event()

    def step(self) -> None:
        raise NotImplementedError

    def record(self, workload: str, kind: str, key: str, value: int,
               action: Callable[[], str | int]) -> Any:
        started = time.monotonic()
        try:
            result = action()
        except CLIENT_ERRORS as exc:
            self.history.add(Op(workload, kind, key, value, key_slot(key.encode()), started,
                                time.monotonic(), "fail", f"{type(exc).__name__}: {exc}"[:200]))
            refresh_map(self.client, node_name(self.client, key))
            return None
        outcome = result if isinstance(result, str) else "ok"
        read_value = result if isinstance(result, int) else value
        self.history.add(Op(workload, kind, key, read_value, key_slot(key.encode()), started,
                            time.monotonic(), outcome))
        return result

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                self.step()
                self._halt.wait(self.interval_s)
        except BaseException as exc:  # surfaced by stop()
            self.failure = exc
        finally:
            self.client.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(30)
        if self.failure is not None:
            raise RuntimeError(f"soak client {self.name} died: {self.failure!r}") \
                from self.failure


class SetWriter(Worker):
    def __init__(self, outputs: Mapping[str, Any], history: History, run_id: str, lane: int,
                 interval_s: float) -> None:
        super().__init__(f"set-{lane}", outputs, history, interval_s)
        self.prefix = f"soak:{run_id}:s{lane}"
        self.written = 0

    def step(self) -> None:
        self.written += 1
        key = f"{self.prefix}:{self.written}"
        self.record("set", "write", key, self.written,
                    lambda: write_and_wait(self.client, key, self.written))

    def written_keys(self) -> list[str]:
        return [f"{self.prefix}:{n}" for n in range(1, self.written + 1)]


def register_keys(run_id: str, count: int) -> list[str]:
    return [f"soak:{run_id}:r:{{{index}}}" for index in range(count)]


class RegisterWriter(Worker):
    """Each register has this one writer, so its versions only rise."""

    def __init__(self, outputs: Mapping[str, Any], history: History, keys: list[str],
                 seed: int, interval_s: float) -> None:
        super().__init__("register-writer", outputs, history, interval_s)
        self.keys = keys
        self.versions = dict.fromkeys(keys, 0)
        self.rng = random.Random(seed)

    def step(self) -> None:
        key = self.rng.choice(self.keys)
        self.versions[key] += 1
        version = self.versions[key]
        self.record("register", "write", key, version,
                    lambda: write_and_wait(self.client, key, version))


class RegisterReader(Worker):
    def __init__(self, outputs: Mapping[str, Any], history: History, keys: list[str],
                 seed: int, interval_s: float) -> None:
        super().__init__("register-reader", outputs, history, interval_s)
        self.keys = keys
        self.rng = random.Random(seed + 1)

    def step(self) -> None:
        key = self.rng.choice(self.keys)
        self.record("register", "read", key, -1, lambda: read_int(self.client, key))
