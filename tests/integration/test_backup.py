"""`python -m clusterops backup` against a real 3+3 cluster: every slot, files that load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from tests.support.process_control import form_cluster_with_redis_cli
from tests.support.pulumi_cli import PROJECT_ROOT
from tests.support.redis_nodes import RedisNodes, pick_free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
KEYS = 3000


def load_rdb(path: Path) -> dict[str, bytes]:
    """Start a throwaway standalone redis-server on the file; return what it loaded."""
    port = pick_free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(path.parent),
         "--dbfilename", path.name, "--appendonly", "no", "--save", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port, socket_timeout=2)
        wait_until(f"redis-server to load {path}",
                   lambda: (client.info("persistence")["loading"] == 0, "loading"), 15)
        return {key.decode(): client.get(key) for key in client.scan_iter(count=1000)}
    finally:
        server.terminate()
        server.wait(10)


def test_backup_covers_every_slot_and_each_file_loads(
    redis_nodes_factory, tmp_path: Path
) -> None:
    group: RedisNodes = redis_nodes_factory(6)
    form_cluster_with_redis_cli(group)
    cluster = RedisCluster(host=group[0].host, port=group[0].port, password=group.password)
    for i in range(KEYS):
        cluster.set(f"backup:{i}", f"value-{i}")

    args = [arg for node in group for arg in ("--node", f"{node.name}={node.address}")]
    done = subprocess.run(
        [sys.executable, "-m", "clusterops", "backup", *args, "--dest", str(tmp_path), "--json"],
        env={**os.environ, "REDIS_PASSWORD": group.password}, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert group.password not in done.stdout + done.stderr
    report = json.loads(done.stdout)
    folder = Path(report["folder"])
    assert report["slots_covered"] == 16384
    assert len(report["nodes"]) == 3 and not any(n["error"] for n in report["nodes"])
    assert group.password not in (folder / "manifest.json").read_text()

    restored: dict[str, bytes] = {}
    for entry in report["nodes"]:
        loaded = load_rdb(folder / entry["file"])
        assert len(loaded) == entry["keys_before"], entry["node"]
        restored.update(loaded)
    assert restored == {f"backup:{i}": f"value-{i}".encode() for i in range(KEYS)}


def test_backup_fails_when_a_shard_has_no_reachable_master(
    redis_nodes_factory, tmp_path: Path
) -> None:
    group: RedisNodes = redis_nodes_factory(3)
    form_cluster_with_redis_cli(group, replicas=0)
    victim = group[2]
    victim.stop()
    args = [arg for node in group for arg in ("--node", f"{node.name}={node.address}")]
    done = subprocess.run(
        [sys.executable, "-m", "clusterops", "backup", *args, "--dest", str(tmp_path)],
        env={**os.environ, "REDIS_PASSWORD": group.password}, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "of 16384 slots" in done.stdout and "16384 of 16384" not in done.stdout
