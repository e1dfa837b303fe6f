"""`python -m clusterops restore` between real clusters of different shapes (redis-server
processes): every data type and TTL comes back, and a bad backup or a busy target is refused
before anything is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from redis.cluster import RedisCluster

from tests.support.process_control import form_cluster_with_redis_cli
from tests.support.pulumi_cli import PROJECT_ROOT
from tests.support.redis_nodes import RedisNodes
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
PLAIN_KEYS = 3000


def cluster(group: RedisNodes) -> RedisCluster:
    return RedisCluster(host=group[0].host, port=group[0].port, password=group.password)


def formed(group: RedisNodes) -> RedisNodes:
    """redis-cli --cluster create, then every node at cluster_state:ok (a new master refuses
    writes for its rejoin delay after getting its slots)."""
    form_cluster_with_redis_cli(group)
    wait_for("cluster_state:ok on every node", lambda: all(
        node.client(group.password).cluster("info")["cluster_state"] == "ok" for node in group))
    return group


def fill(client: RedisCluster) -> None:
    """Every data type, with and without TTLs, across all masters."""
    pipe = client.pipeline()
    for i in range(PLAIN_KEYS):
        pipe.set(f"plain:{i}", f"value-{i}")
    pipe.execute()
    client.set("string:ttl", "expires", ex=3600)
    client.hset("hash:{t}", mapping={"a": "1", "b": "2"})
    client.expire("hash:{t}", 7200)
    client.rpush("list:{t}", "x", "y", "z")
    client.sadd("set:{t}", "m1", "m2")
    client.zadd("zset:{t}", {"low": 1.5, "high": 99})
    client.xadd("stream:{t}", {"field": "value"}, id="1-1")
    client.pfadd("hll", "a", "b", "c")
    client.setbit("bitmap", 777, 1)
    client.geoadd("geo", (13.4, 52.5, "berlin"))
    client.set(b"binary:\x00\xff", b"\x00\x01\xfe")


def snapshot(client: RedisCluster) -> dict[str, Any]:
    """What a client sees (values, and whether each key expires), read independently of the
    restore's own verification."""
    seen: dict[str, Any] = {
        f"plain:{i}": v for i, v in enumerate(
            client.mget_nonatomic([f"plain:{i}" for i in range(PLAIN_KEYS)]))
    }
    seen.update({
        "string:ttl": (client.get("string:ttl"), client.ttl("string:ttl") > 0),
        "hash:{t}": (client.hgetall("hash:{t}"), client.ttl("hash:{t}") > 3600),
        "list:{t}": client.lrange("list:{t}", 0, -1),
        "set:{t}": client.smembers("set:{t}"),
        "zset:{t}": client.zrange("zset:{t}", 0, -1, withscores=True),
        "stream:{t}": client.xrange("stream:{t}"),
        "hll": client.pfcount("hll"),
        "bitmap": client.getbit("bitmap", 777),
        "geo": client.geopos("geo", "berlin"),
        "binary": client.get(b"binary:\x00\xff"),
        "keys": sum(client.get_redis_connection(node).dbsize()
                    for node in client.get_primaries()),
    })
    return seen


def run_clusterops(*args: str, group: RedisNodes,
                   env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    nodes = [arg for node in group for arg in ("--node", f"{node.name}={node.address}")]
    return subprocess.run(
        [sys.executable, "-m", "clusterops", *args, *nodes],
        env={**os.environ, "REDIS_PASSWORD": group.password, **(env or {})}, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=300, check=False,
    )


@pytest.fixture
def backed_up(redis_nodes_factory, tmp_path: Path) -> tuple[RedisNodes, Path, dict[str, Any]]:
    source: RedisNodes = formed(redis_nodes_factory(6))
    client = cluster(source)
    fill(client)
    done = run_clusterops("backup", "--dest", str(tmp_path / "backups"), "--json", group=source)
    assert done.returncode == 0, done.stdout + done.stderr
    return source, Path(json.loads(done.stdout)["folder"]), snapshot(client)


def test_restore_into_a_four_master_cluster_brings_back_every_key_and_ttl(
        backed_up, redis_nodes_factory) -> None:
    _source, folder, expected = backed_up
    target: RedisNodes = redis_nodes_factory(8)
    form_cluster_with_redis_cli(target)  # 4 masters + 4 replicas: another shape

    done = run_clusterops("restore", "--from", str(folder), "--json", group=target)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["keys_moved"] == report["keys_in_backup"] == expected["keys"]
    assert report["backup_digest"] == report["target_digest"]
    assert "restore:" in done.stderr  # progress was shown
    assert target.password not in done.stdout + done.stderr
    assert snapshot(cluster(target)) == expected

    again = run_clusterops("restore", "--from", str(folder), group=target)
    assert again.returncode == 2, again.stdout + again.stderr
    assert "already holds" in again.stderr


def test_merge_keeps_the_target_value_unless_replace(backed_up, redis_nodes_factory) -> None:
    _source, folder, expected = backed_up
    target: RedisNodes = redis_nodes_factory(6)
    form_cluster_with_redis_cli(target)
    client = cluster(target)
    client.set("plain:7", "the target's own value")
    client.set("only-in-target", "stays")

    kept = run_clusterops("restore", "--from", str(folder), "--merge", "--json", group=target)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert json.loads(kept.stdout)["conflicts_kept"] == 1
    assert client.get("plain:7") == b"the target's own value"
    assert client.get("only-in-target") == b"stays"

    replaced = run_clusterops("restore", "--from", str(folder), "--merge", "--replace",
                              "--json", group=target)
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    assert json.loads(replaced.stdout)["conflicts_replaced"] == expected["keys"]
    assert client.get("plain:7") == expected["plain:7"]
    assert client.get("only-in-target") == b"stays"


def test_a_damaged_or_incomplete_backup_is_refused_before_any_write(
        backed_up, redis_nodes_factory) -> None:
    _source, folder, _expected = backed_up
    target: RedisNodes = redis_nodes_factory(6)
    form_cluster_with_redis_cli(target)
    manifest = json.loads((folder / "manifest.json").read_text())

    damaged = folder / manifest["nodes"][1]["file"]
    original = damaged.read_bytes()
    damaged.write_bytes(original[:100] + bytes([original[100] ^ 0xFF]) + original[101:])
    done = run_clusterops("restore", "--from", str(folder), group=target)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "damaged" in done.stderr and "nothing was written" in done.stderr
    assert cluster(target).dbsize() == 0
    damaged.write_bytes(original)

    partial = dict(manifest, nodes=manifest["nodes"][:2])
    (folder / "manifest.json").write_text(json.dumps(partial))
    done = run_clusterops("restore", "--from", str(folder), group=target)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "slots are in no file" in done.stderr
    assert cluster(target).dbsize() == 0


def test_the_tls_path_copies_every_type_and_ttl_through_the_client(redis_nodes_factory):
    """Into a TLS cluster the keys go DUMP + PTTL -> RESTORE through clusterops (no MIGRATE):
    the same payloads and expiries arrive, and --replace overwrites."""
    from clusterops.tasks.restore import copy_through_client

    source, destination = (redis_nodes_factory(1, settings={"cluster-enabled": "no"})[0]
                           .client(decode_responses=False) for _ in range(2))
    source.set(b"s", b"v", px=600_000)
    source.hset(b"h", mapping={b"a": b"1", b"b": b"2"})
    source.rpush(b"l", b"x", b"y")
    source.zadd(b"z", {b"m": 1.5})
    destination.set(b"l", b"old")
    keys = [b"s", b"h", b"l", b"z"]
    copy_through_client(source, destination, keys, replace=True)
    assert [destination.dump(k) for k in keys] == [source.dump(k) for k in keys]
    assert 0 < destination.pttl(b"s") <= 600_000 and destination.pttl(b"h") == -1
