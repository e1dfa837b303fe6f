"""Memory pressure on a real container: a node filled to `maxmemory` under a write load while
BGSAVE and an AOF rewrite fork, three rounds, inside the container memory limit the stack
gives it by default (`memoryLimit` = 2 x maxmemory, components/node_settings.py).

Checked from Docker and the kernel, not from Redis alone: the container is not OOM-killed
(`docker inspect` OOMKilled, the cgroup's oom_kill count), every fork succeeds, and eviction
does what the default policy (allkeys-lru) says: used memory held at maxmemory, keys evicted,
no write refused.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis

from components.spec import build_spec
from tests.support.deploy_fixtures import require_docker
from tests.support.images import ensure_images
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
MAXMEMORY = "64mb"  # small, so the test fills it in seconds; the limit keeps the default ratio
NAME = "alphapulse-memory-pressure"


def cgroup_value(container_id: str, name: str) -> str:
    """A value of the container's cgroup v1 memory controller (or "" where there is none)."""
    path = Path("/sys/fs/cgroup/memory/docker") / container_id / name
    return path.read_text() if path.exists() else ""


def test_forks_of_a_full_node_stay_inside_the_default_memory_limit(tmp_path: Path):
    require_docker()
    spec = build_spec({"maxmemory": MAXMEMORY}, "dev", False)
    limit = spec.memory_limit_bytes
    assert limit == 2 * spec.maxmemory_bytes  # the default this test is about
    password = secrets.token_hex(16)
    subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)
    container_id = subprocess.run(
        ["docker", "run", "-d", "--name", NAME, f"--memory={limit}", f"--memory-swap={limit}",
         ensure_images()["redis"], "redis-server", "--requirepass", password,
         "--maxmemory", MAXMEMORY, "--maxmemory-policy", spec.maxmemory_policy,
         "--appendonly", "yes", "--appendfsync", spec.appendfsync, "--save", ""],
        capture_output=True, text=True, check=True).stdout.strip()
    try:
        ip = subprocess.run(["docker", "inspect", "-f",
                             "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", NAME],
                            capture_output=True, text=True, check=True).stdout.strip()
        node = redis.Redis(ip, 6379, password=password, socket_timeout=10)
        wait_until("the node to answer", lambda: (bool(node.ping()), ""), 15, 0.1)
        stop, refused, written = threading.Event(), [], [0]

        def write_load() -> None:
            client = redis.Redis(ip, 6379, password=password, socket_timeout=10)
            while not stop.is_set():
                pipe = client.pipeline(transaction=False)
                for _ in range(200):
                    pipe.set(f"k{written[0]}", b"x" * 1000)
                    written[0] += 1
                try:
                    pipe.execute()
                except redis.RedisError as exc:
                    refused.append(str(exc)[:200])
                    time.sleep(0.05)

        writer = threading.Thread(target=write_load, daemon=True)
        writer.start()
        try:
            wait_until("the node full (evicting)", lambda: (
                int(node.info("stats")["evicted_keys"]) > 10_000, node.info("memory")
                ["used_memory_human"]), 60, 0.2)
            cow = []

            def forks_done() -> tuple[bool, dict]:
                info = node.info("persistence")
                return (not info["rdb_bgsave_in_progress"]
                        and not info["aof_rewrite_in_progress"]
                        and not info["aof_rewrite_scheduled"], info)

            for _round in range(3):
                wait_until("no fork running", forks_done, 60, 0.1)
                node.bgsave(schedule=True)  # waits for an automatic AOF rewrite, if any
                try:
                    node.bgrewriteaof()  # queued behind the BGSAVE
                except redis.ResponseError as exc:  # an automatic one already runs: same fork
                    assert "already in progress" in str(exc), exc
                info = wait_until("BGSAVE and the AOF rewrite to finish", forks_done, 60, 0.1)
                assert info["rdb_last_bgsave_status"] == "ok", info
                assert info["aof_last_bgrewrite_status"] == "ok", info
                cow.append((info["rdb_last_cow_size"], info["aof_last_cow_size"]))
        finally:
            stop.set()
            writer.join(timeout=15)
        memory = node.info("memory")
        state = json.loads(subprocess.run(["docker", "inspect", NAME], capture_output=True,
                                          text=True, check=True).stdout)[0]["State"]
        assert state["Running"] and not state["OOMKilled"], state
        assert "oom_kill 0" in cgroup_value(container_id, "memory.oom_control") or not (
            cgroup_value(container_id, "memory.oom_control"))
        assert refused == [], refused[:3]  # allkeys-lru: full means evict, never refuse
        assert int(memory["used_memory"]) <= int(memory["maxmemory"]) * 1.05, memory
        peak = cgroup_value(container_id, "memory.max_usage_in_bytes").strip()
        print(f"\n{written[0]:,} writes of 1 KB into maxmemory {MAXMEMORY}, limit "
              f"{limit // 2**20} MiB; 3 rounds of BGSAVE + AOF rewrite under the load, "
              f"copy-on-write per fork (rdb, aof) {cow} bytes; cgroup peak {peak} bytes "
              f"(page cache included); evicted {node.info('stats')['evicted_keys']}; "
              "OOMKilled false")
    finally:
        subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)
