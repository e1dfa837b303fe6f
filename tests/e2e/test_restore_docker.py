"""Backup under load, destroy, a differently shaped stack, restore: on real Docker, through
the real `pulumi up`/`destroy` (the guide's recovery procedure, end to end)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from redis.cluster import ClusterNode, RedisCluster

from tests.integration.test_restore import fill, snapshot
from tests.support.deploy_fixtures import DeployedStack, deploy_stack
from tests.support.pulumi_cli import PROJECT_ROOT
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def client_for(stack: DeployedStack) -> RedisCluster:
    settings = stack.outputs["client_settings"]
    return RedisCluster(startup_nodes=[ClusterNode(**n) for n in settings["startup_nodes"]],
                        password=stack.password, socket_timeout=5)


def clusterops(stack: DeployedStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clusterops", *args, "--stack-outputs", str(stack.outputs_file)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, check=False)


class Writer(threading.Thread):
    """Writes keys of several types as fast as it can; remembers what was acknowledged."""

    def __init__(self, client: RedisCluster) -> None:
        super().__init__(daemon=True)
        self.client, self.stop_flag = client, threading.Event()
        self.acked: list[str] = []

    def run(self) -> None:
        n = 0
        while not self.stop_flag.is_set():
            key = f"load:{n}"
            if n % 3 == 0:
                self.client.hset(key, mapping={"n": n})
            elif n % 3 == 1:
                self.client.set(key, f"value-{n}", ex=86_400)
            else:
                self.client.rpush(key, n, n + 1)
            self.acked.append(key)
            n += 1


def test_backup_under_load_restores_into_a_four_master_cluster(tmp_path: Path):
    first = deploy_stack(tmp_path / "three", "dev")
    source = next(first)
    try:
        client = client_for(source)
        fill(client)  # every data type, some with TTLs (the integration tier's set)
        typed = snapshot(client)
        writer = Writer(client)
        writer.start()
        wait_until("2000 acknowledged writes before the backup",
                   lambda: (len(writer.acked) >= 2000, len(writer.acked)), 30)
        acked_before_backup = list(writer.acked)
        backup = clusterops(source, "backup", "--dest", str(tmp_path / "backups"), "--json")
        writer.stop_flag.set()
        writer.join(10)
        assert backup.returncode == 0, backup.stdout + backup.stderr
        folder = json.loads(backup.stdout)["folder"]
        assert len(acked_before_backup) >= 2000
    finally:
        first.close()  # pulumi destroy: dev's data volumes go too; only the backup is left

    second = deploy_stack(tmp_path / "four", "dev", masters="4")
    target = next(second)
    try:
        assert len([n for n in target.outputs["nodes"] if n["role"] == "master"]) == 4
        done = clusterops(target, "restore", "--from", folder, "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        print(f"restore after backup under load: {report['keys_moved']} keys in "
              f"{report['seconds']} s, verified {report['verified_keys']}")
        assert report["ok"] and report["keys_moved"] == report["keys_in_backup"]
        assert report["backup_digest"] == report["target_digest"]
        restored = client_for(target)
        pipe = restored.pipeline()
        for key in acked_before_backup:
            pipe.exists(key)
        missing = [k for k, there in zip(acked_before_backup, pipe.execute(), strict=True)
                   if not there]
        assert missing == [], f"{len(missing)} keys acknowledged before the backup are gone"
        assert restored.ttl("load:1") > 0  # expiries came back
        after = snapshot(restored)
        assert {k: v for k, v in after.items() if k != "keys"} == {
            k: v for k, v in typed.items() if k != "keys"}

        again = clusterops(target, "restore", "--from", folder)
        assert again.returncode == 2 and "already holds" in again.stderr

        damaged = tmp_path / "damaged"
        shutil.copytree(folder, damaged)
        rdb = next(damaged.glob("*.rdb"))
        data = bytearray(rdb.read_bytes())
        data[len(data) // 2] ^= 0xFF
        rdb.write_bytes(bytes(data))
        keys_before = snapshot(restored)["keys"]
        refused = clusterops(target, "restore", "--from", str(damaged), "--merge", "--replace")
        assert refused.returncode == 1 and "damaged" in refused.stderr, refused.stderr
        assert snapshot(restored)["keys"] == keys_before
    finally:
        second.close()
