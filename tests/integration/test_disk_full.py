"""A node's data disk filling up under writes, on a real size-limited filesystem (an 8 MiB
tmpfs mounted for the test, as a small Docker volume would be): AOF everysec, as deployed.

What Redis does, checked from the servers and a client: writes to the full node are refused
cleanly (MISCONF), none that was acknowledged is lost, `clusterops health` names the node and
the cause, the exporter reports `redis_aof_last_write_status 0` (what the RedisAofWriteFailed
alert rule fires on); once space is freed the node serves writes again by itself, without a
restart, and a restart afterwards loads an AOF holding every acknowledged write.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from clusterops.node.access import Access
from clusterops.provision.formation import form_cluster
from components.exporter_conf import exporter_args, exporter_password_file, node_target_uri
from tests.integration.test_monitoring_live import (
    EXPORTER_BINARY,
    ManagedProcess,
    free_port,
    http_get,
    require_binary,
)
from tests.support.process_plans import plan_for, wait_for_replica_links
from tests.support.prom_metrics import parse_exposition, sample_value
from tests.support.pulumi_cli import PROJECT_ROOT
from tests.support.redis_nodes import RedisNodes
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # fills a disk on purpose: full suite only
AOF = {"appendonly": "yes", "appendfsync": "everysec"}
DISK_MIB = 8
BALLAST_MIB = 2  # freed to let the node write again


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs (root only: `mount`); unmounted afterwards."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MIB}m,mode=0700",
                              "tmpfs", str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs (root needed): {mounted.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def tag_in(slots: range) -> str:
    """A hash tag whose slot is in ``slots``: every key carrying it lands there."""
    return next(tag for tag in (f"fill{n}" for n in range(10**6))
                if key_slot(tag.encode()) in slots)


def scrape_aof_status(workdir: Path, node: dict, password: str) -> str:
    """redis_aof_last_write_status of ``node`` as Debian's redis_exporter reports it, started
    with our command line and password file (tests/integration/test_monitoring_live.py)."""
    password_file = workdir / "exporter-passwords.json"
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(exporter_password_file([node], password))
    port = free_port()
    exporter = ManagedProcess(
        [require_binary(EXPORTER_BINARY, "prometheus-redis-exporter"),
         *exporter_args(listen_port=port, password_file=str(password_file),
                        listen_host="127.0.0.1")], workdir / "exporter.log", workdir)
    try:
        query = urllib.parse.urlencode({"target": node_target_uri(node)})

        def scraped() -> tuple[bool, str]:
            exporter.assert_running()
            try:
                return True, http_get(f"http://127.0.0.1:{port}/scrape?{query}")
            except OSError as exc:
                return False, str(exc)

        text = wait_until("the exporter's scrape of master-1", scraped, 15, 0.2)
    finally:
        exporter.stop()
    return f"{sample_value(parse_exposition(text), 'redis_aof_last_write_status'):g}"


def test_a_full_disk_refuses_writes_cleanly_and_heals_once_space_is_freed(
        small_disk: Path, redis_nodes_factory: Callable[..., RedisNodes],
        tmp_path: Path) -> None:
    full = redis_nodes_factory(1, base_dir=small_disk, settings=AOF, name_prefix="full")
    others = redis_nodes_factory(5, password=full.password, settings=AOF)
    nodes = [full[0], *others]
    plan = plan_for(nodes)  # nodes[0] is master-1, on the small disk
    form_cluster(plan, Access(full.password), 30)
    wait_for_replica_links(others)
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * BALLAST_MIB * 1024 * 1024)

    master = full[0].client()
    master_slots = range(0, 5461)
    value = "v" * 4096
    tag = tag_in(master_slots)
    acked: list[str] = []
    refused: str | None = None
    for index in range(20_000):  # 80 MB of values: far beyond the disk
        key = f"{{{tag}}}{index}"
        try:
            master.set(key, value)
            acked.append(key)
        except redis.ResponseError as exc:
            refused = str(exc)
            break
    assert refused is not None, "the node never refused a write on a full disk"
    assert refused.startswith("MISCONF") and "No space left on device" in refused, refused
    assert master.info("persistence")["aof_last_write_status"] == "err"
    print(f"\n{len(acked)} writes of 4 KiB acknowledged before the {DISK_MIB} MiB disk was "
          f"full; then: {refused}")

    # Reads still work and every acknowledged write is there.
    assert master.mget(acked) == [value] * len(acked)
    node_output = {"name": plan[0].name, "role": "master", "ip": full[0].host,
                   "port": full[0].port}
    assert scrape_aof_status(tmp_path, node_output, full.password) == "0"

    # Health names the node and the cause; the exporter says what the alert rule reads.
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"password": full.password, "nodes": [
        {"name": t.name, "role": t.role, "master": t.master, "ip": n.host, "port": n.port}
        for t, n in zip(plan, nodes, strict=True)]}))
    health = subprocess.run([sys.executable, "-m", "clusterops", "health", "--stack-outputs",
                             str(outputs), "--json"], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert health.returncode == 1, health.stdout[-2000:] + health.stderr[-2000:]
    failing = json.loads(health.stdout)["failing_nodes"]
    assert "persistence" in failing.get(plan[0].name, []), failing

    # Space freed: the node writes its pending AOF and takes writes again, no restart.
    pid = full[0].pid
    ballast.unlink()

    def writes_again() -> tuple[bool, str]:
        try:
            master.set(f"{{{tag}}}after", "ok")
            return True, "ok"
        except redis.ResponseError as exc:
            return False, str(exc)

    wait_until("the node to take writes again after space was freed", writes_again, 30, 0.2)
    assert full[0].pid == pid and master.info("persistence")["aof_last_write_status"] == "ok"
    assert scrape_aof_status(tmp_path, node_output, full.password) == "1"

    # Every acknowledged write survives a restart: the AOF is whole.
    full[0].stop()
    full[0].start()
    reloaded = full[0].client()
    wait_until("master-1 loaded", lambda: (reloaded.info("persistence")["loading"] == 0, ""), 30)
    wait_until("cluster_state:ok everywhere after the restart", lambda: (all(
        n.client().cluster("info")["cluster_state"] == "ok" for n in nodes), ""), 30, 0.1)
    missing = [k for k, v in zip(acked, reloaded.mget(acked), strict=True) if v != value]
    assert missing == [], f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
    with RedisCluster(host=nodes[1].host, port=nodes[1].port, password=full.password,
                      decode_responses=True) as client:
        assert client.get(f"{{{tag}}}after") == "ok"
