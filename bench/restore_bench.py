"""Restore rate for N keys of ~100 bytes: `clusterops restore` vs `redis-cli --cluster import`.

The backup is made directly, fast: a standalone redis-server fills itself with
``DEBUG POPULATE N bench:key 100`` (N keys, 100-byte values), saves its RDB, and a manifest
says that file holds all 16384 slots (the shape of a backup of a one-master cluster; keys land
on whichever target master owns their slot). Each trial restores it into a fresh, empty
3-master + 3-replica cluster of redis-server processes on loopback:

- ours: ``run_restore`` (what ``python -m clusterops restore`` runs), timed without its
  verification pass (reported separately);
- reference, same run: ``redis-cli --cluster import <target> --cluster-from <source>
  --cluster-copy`` from the same loaded server into another fresh cluster.

Usage: python bench/restore_bench.py [--keys 1000000] [--repetitions 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import redis  # noqa: E402

from clusterops.core.poll import Deadline, poll  # noqa: E402
from clusterops.tasks import restore  # noqa: E402
from tests.support.process_control import (  # noqa: E402
    form_cluster_with_redis_cli,
    targets_for,
)
from tests.support.redis_nodes import RedisNodes, pick_free_port  # noqa: E402


def make_backup(folder: Path, keys: int) -> None:
    port = pick_free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--dbfilename", "bench.rdb", "--appendonly", "no", "--save", "",
         "--enable-debug-command", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)

        def answers() -> tuple[bool, str]:
            try:
                return bool(client.ping()), "PONG"
            except redis.ConnectionError as exc:
                return False, str(exc)

        done, seen = poll(answers, Deadline.after(30), 0.05)
        if not done:
            raise SystemExit(f"the source redis-server did not answer within 30 s: {seen}")
        client.execute_command("DEBUG", "POPULATE", keys, "bench:key", 100)
        client.save()
    finally:
        server.terminate()
        server.wait(30)
    rdb = folder / "bench.rdb"
    manifest = {"created": "bench", "slots_covered": 16384, "nodes": [{
        "node": "bench", "file": rdb.name, "slots": [[0, 16383]], "keys_before": keys,
        "sha256": hashlib.sha256(rdb.read_bytes()).hexdigest(), "error": ""}]}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def fresh_cluster(base: Path) -> RedisNodes:
    group = RedisNodes(6, base_dir=base)
    group.start()
    form_cluster_with_redis_cli(group)
    return group


def time_ours(folder: Path, base: Path) -> tuple[float, float, int]:
    group = fresh_cluster(base)
    try:
        started = time.monotonic()
        report = restore.run_restore(folder, targets_for(group))
        total = time.monotonic() - started
        if not report.ok:
            raise SystemExit(f"restore failed verification: {report.problems}")
        return report.seconds, total - report.seconds, report.keys_moved
    finally:
        group.close()


def time_redis_cli(folder: Path, base: Path) -> tuple[float, int]:
    group = fresh_cluster(base)
    try:
        with restore.loaded_rdb(folder / "bench.rdb", tcp_port=pick_free_port()) as source:
            port = int(source.config_get("port")["port"])
            # Wait for the new cluster as our restore does, outside the clock.
            restore.Target(targets_for(group)).wait_ready(30)
            started = time.monotonic()
            done = subprocess.run(
                ["redis-cli", "--cluster", "import", group[0].address,
                 "--cluster-from", f"127.0.0.1:{port}", "--cluster-copy"],
                env={**os.environ, "REDISCLI_AUTH": group.password},
                capture_output=True, text=True, check=False)
            seconds = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"redis-cli --cluster import failed: {done.stdout[-800:]}")
        moved = sum(int(n.client().dbsize()) for n in group if n.client().info(
            "replication")["role"] == "master")
        return seconds, moved
    finally:
        group.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--repetitions", type=int, default=1)
    args = parser.parse_args()
    ours, verify, theirs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "backup"
        folder.mkdir()
        make_backup(folder, args.keys)
        size = (folder / "bench.rdb").stat().st_size
        print(f"backup: {args.keys} keys, 100-byte values, RDB {size / 2**20:.1f} MiB")
        for rep in range(args.repetitions):
            moved_s, verify_s, moved = time_ours(folder, Path(tmp) / f"ours{rep}")
            ref_s, ref_moved = time_redis_cli(folder, Path(tmp) / f"cli{rep}")
            ours.append(moved / moved_s)
            verify.append(verify_s)
            theirs.append(ref_moved / ref_s)
            print(f"repetition {rep + 1}: clusterops restore {moved} keys in {moved_s:.1f} s "
                  f"({moved / moved_s:,.0f} keys/s; load, checks and verification "
                  f"{verify_s:.1f} s more); redis-cli --cluster import {ref_moved} keys in "
                  f"{ref_s:.1f} s ({ref_moved / ref_s:,.0f} keys/s)", flush=True)
    print(f"\nclusterops restore: {statistics.median(ours):,.0f} keys/s median; "
          f"redis-cli --cluster import (reference): {statistics.median(theirs):,.0f} keys/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
