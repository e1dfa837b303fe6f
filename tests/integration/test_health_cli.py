"""`python -m clusterops health` against real 3+3 redis-server clusters on loopback.

Clusters are formed by redis-cli itself (`--cluster create --cluster-replicas 1`), with the
password in REDISCLI_AUTH, never in argv. For the healthy cluster every node gets its own
loopback address (127.0.4.x) and binds its outgoing connections to it, so each node is a
distinct "host" exactly as each container has its own IP in the Docker deployment. The CLI
runs as a real subprocess reading a stack outputs file written by the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.pulumi_cli import PROJECT_ROOT
from tests.support.redis_nodes import RedisNode, RedisNodes
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

DISTINCT_HOSTS = [f"127.0.4.{i}" for i in range(1, 7)]
SAME_HOST = ["127.0.0.1"] * 6
MAXMEMORY = 64 * 1024 * 1024
SETTINGS = {"maxmemory": str(MAXMEMORY)}
FORM_DEADLINE_S = 30.0
FAILOVER_DEADLINE_S = 20.0
CLI_TIMEOUT_S = 60.0
ALL_CHECKS = {"reachable", "cluster_state", "slot_coverage", "node_count", "node_flags",
              "open_slots", "slot_map", "replication", "replica_placement", "memory",
              "persistence",
              "write_read"}


# ----------------------------------------------------------------------------- helpers


def role_of(node: RedisNode) -> str:
    with node.client() as client:
        return client.info("replication")["role"]


def flags_seen_by(viewer: RedisNode, subject: RedisNode) -> list[str]:
    with viewer.client() as client:
        lines = client.execute_command("CLUSTER", "NODES").splitlines()
    for line in lines:
        if line.split()[1].split("@")[0] == subject.address:
            return line.split()[2].split(",")
    return []


def cluster_settled(nodes: RedisNodes) -> tuple[bool, Any]:
    """Every node: state ok, all 6 known, 3 slot owners + 3 linked replicas in its view."""
    seen = {}
    for node in nodes:
        with node.client() as client:
            info = client.execute_command("CLUSTER", "INFO")
            lines = client.execute_command("CLUSTER", "NODES").splitlines()
            replication = client.info("replication")
        masters = [ln for ln in lines if " master " in f" {ln.split()[2].replace(',', ' ')} "
                   and len(ln.split()) > 8]
        replicas = [ln for ln in lines if "slave" in ln.split()[2] and ln.split()[3] != "-"]
        link_ok = replication["role"] == "master" or replication.get("master_link_status") == "up"
        seen[node.name] = (info.splitlines()[0].strip(), len(lines), len(masters),
                           len(replicas), link_ok)
    done = all(v == ("cluster_state:ok", 6, 3, 3, True) for v in seen.values())
    return done, seen


def form_cluster(nodes: RedisNodes, distinct_hosts: bool) -> None:
    if distinct_hosts:
        # Outgoing bus/replication connections must leave from the node's own address, or
        # peers would learn 127.0.0.1 for it (the kernel's default source on loopback).
        for node in nodes:
            with node.client() as client:
                client.config_set("bind-source-addr", node.host)
                client.config_set("cluster-announce-ip", node.host)
    env = {**os.environ, "REDISCLI_AUTH": nodes.password}
    command = ["redis-cli", "--cluster", "create", *[n.address for n in nodes],
               "--cluster-replicas", "1", "--cluster-yes"]
    done = subprocess.run(command, env=env, capture_output=True, text=True,
                          timeout=FORM_DEADLINE_S, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}"
    wait_until("the new cluster to settle", lambda: cluster_settled(nodes), FORM_DEADLINE_S)


def write_outputs(nodes: RedisNodes, path: Path, with_password: bool = True) -> dict[str, str]:
    """Stack outputs as the Pulumi program prints them; returns planned role per node name."""
    roles = {}
    entries = []
    by_address = {n.address: n for n in nodes}
    for node in nodes:
        with node.client() as client:
            info = client.info("replication")
        role = "master" if info["role"] == "master" else "replica"
        master = None
        if role == "replica":
            master = by_address[f"{info['master_host']}:{info['master_port']}"].name
        roles[node.name] = role
        entries.append({"name": node.name, "role": role, "master": master, "ip": node.host,
                        "port": node.port, "host_port": node.port,
                        "container_name": node.name})
    outputs: dict[str, Any] = {"cluster_name": "h4-health-test", "nodes": entries,
                               "maxmemory_bytes": MAXMEMORY}
    if with_password:
        outputs["password"] = nodes.password
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the secret
    with os.fdopen(fd, "w") as handle:
        json.dump(outputs, handle)
    return roles


def health(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base_env = {k: v for k, v in os.environ.items() if k != "REDIS_PASSWORD"}
    return subprocess.run(
        [sys.executable, "-m", "clusterops", "health", *args],
        cwd=PROJECT_ROOT, env={**base_env, **(env or {})}, capture_output=True, text=True,
        timeout=CLI_TIMEOUT_S, stdin=subprocess.DEVNULL, check=False,
    )


def health_json(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    done = health(*args, "--json", env=env)
    assert done.stderr == "", done.stderr
    return done.returncode, json.loads(done.stdout)


def results_of(document: dict[str, Any], check: str) -> dict[str, dict[str, str]]:
    return {r["node"]: r for r in document["results"] if r["check"] == check}


class Cluster:
    def __init__(self, nodes: RedisNodes, outputs: Path) -> None:
        self.nodes = nodes
        self.outputs = outputs
        self.roles = write_outputs(nodes, outputs)

    def named(self, role: str) -> list[RedisNode]:
        return [n for n in self.nodes if self.roles[n.name] == role]

    def replica_of(self, master: RedisNode) -> RedisNode:
        for node in self.named("replica"):
            with node.client() as client:
                info = client.info("replication")
            if (info["master_host"], int(info["master_port"])) == (master.host, master.port):
                return node
        raise AssertionError(f"no replica follows {master.name}")


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A 3+3 cluster on six distinct loopback hosts, shared by the non-destructive tests."""
    base = tmp_path_factory.mktemp("health-healthy")
    with RedisNodes(6, base_dir=base / "nodes", settings=SETTINGS, hosts=DISTINCT_HOSTS,
                    name_prefix="healthy") as nodes:
        form_cluster(nodes, distinct_hosts=True)
        yield Cluster(nodes, base / "outputs.json")


@pytest.fixture
def fresh(redis_nodes_factory, tmp_path: Path) -> Cluster:
    """A cluster of its own for tests that kill or freeze a node."""
    nodes = redis_nodes_factory(6, settings=SETTINGS, hosts=DISTINCT_HOSTS, name_prefix="fresh")
    form_cluster(nodes, distinct_hosts=True)
    return Cluster(nodes, tmp_path / "outputs.json")


# ----------------------------------------------------------------------------- healthy


def test_health_passes_on_a_healthy_cluster_table_and_json(healthy: Cluster) -> None:
    done = health("--stack-outputs", str(healthy.outputs))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("HEALTHY"), done.stdout
    rows = [line.split()[:3] for line in done.stdout.splitlines()]
    for node in healthy.nodes:
        assert ["reachable", node.name, "OK"] in rows, done.stdout

    code, document = health_json("--stack-outputs", str(healthy.outputs))
    assert code == 0 and document["ok"] is True, document["failures"]
    assert document["summary"]["fail"] == 0
    assert {r["check"] for r in document["results"]} == ALL_CHECKS
    assert set(results_of(document, "reachable")) == {n.name for n in healthy.nodes}
    masters = {n.name for n in healthy.named("master")}
    assert set(results_of(document, "write_read")) == masters
    assert set(results_of(document, "replica_placement")) == masters
    for node in healthy.nodes:
        memory = results_of(document, "memory")[node.name]
        assert memory["status"] == "ok" and "of 64.0 MiB" in memory["message"]
    # Nothing the probe wrote is left behind, and the password was never printed.
    for master in healthy.named("master"):
        with master.client() as client:
            assert list(client.scan_iter("clusterops:health:*")) == []
    assert healthy.nodes.password not in done.stdout + done.stderr
    assert healthy.nodes.password not in json.dumps(document)


def test_node_flags_with_password_from_environment(healthy: Cluster) -> None:
    flags = []
    for node in healthy.nodes:
        flags += ["--node", f"{node.name}={node.address}:{healthy.roles[node.name]}"]
    code, document = health_json(*flags, "--maxmemory", str(MAXMEMORY),
                                 env={"REDIS_PASSWORD": healthy.nodes.password})
    assert code == 0, document["failures"]
    assert document["source"] == "--node flags"


def test_wrong_password_is_reported_without_printing_any_password(
    healthy: Cluster, tmp_path: Path
) -> None:
    wrong = "not-the-right-one-5d1f"
    password_file = tmp_path / "password"
    password_file.write_text(wrong + "\n")

    done = health("--stack-outputs", str(healthy.outputs), "--password-file", str(password_file))

    assert done.returncode == 1
    for node in healthy.nodes:
        assert any(node.name in line and "password was refused" in line
                   for line in done.stdout.splitlines()), done.stdout
    assert wrong not in done.stdout + done.stderr
    assert healthy.nodes.password not in done.stdout + done.stderr


def test_missing_password_is_reported_as_noauth(healthy: Cluster, tmp_path: Path) -> None:
    outputs = tmp_path / "outputs-without-password.json"
    write_outputs(healthy.nodes, outputs, with_password=False)

    code, document = health_json("--stack-outputs", str(outputs))

    assert code == 1
    reachable = results_of(document, "reachable")
    for node in healthy.nodes:
        assert reachable[node.name]["status"] == "fail"
        assert "NOAUTH" in reachable[node.name]["message"]


def test_open_slot_is_named_and_clears_when_stable(healthy: Cluster) -> None:
    owner = healthy.named("master")[0]
    other = healthy.named("master")[1]
    with other.client() as other_client:
        other_id = other_client.execute_command("CLUSTER", "MYID")
    with owner.client() as client:
        myself = [line for line in client.execute_command("CLUSTER", "NODES").splitlines()
                  if "myself" in line][0]
        first_slot = int(myself.split()[8].split("-")[0])  # one of owner's own slots
        # Half of a real resharding step: the slot is open, no key moves, STABLE undoes it.
        client.execute_command("CLUSTER", "SETSLOT", first_slot, "MIGRATING", other_id)
        try:
            code, document = health_json("--stack-outputs", str(healthy.outputs))
        finally:
            client.execute_command("CLUSTER", "SETSLOT", first_slot, "STABLE")

    assert code == 1
    assert document["failing_nodes"] == {owner.name: ["open_slots"]}
    message = results_of(document, "open_slots")[owner.name]["message"]
    assert f"slot {first_slot} migrating to {other.name}" in message

    code, document = health_json("--stack-outputs", str(healthy.outputs))
    assert code == 0, document["failures"]


# ----------------------------------------------------------------------------- failures


def test_killed_master_fails_naming_it_before_and_after_failover(fresh: Cluster) -> None:
    victim = fresh.named("master")[0]
    heir = fresh.replica_of(victim)
    victim.kill()

    code, document = health_json("--stack-outputs", str(fresh.outputs))
    assert code == 1
    assert "reachable" in document["failing_nodes"][victim.name]
    assert "Connection refused" in results_of(document, "reachable")[victim.name]["message"]

    def promoted() -> tuple[bool, Any]:
        role = role_of(heir)
        return role == "master", role

    def flagged_everywhere() -> tuple[bool, Any]:
        views = {n.name: flags_seen_by(n, victim) for n in fresh.nodes if n is not victim}
        return all("fail" in flags for flags in views.values()), views

    wait_until(f"{heir.name} to be promoted", promoted, FAILOVER_DEADLINE_S)
    wait_until(f"every live node to flag {victim.name} fail", flagged_everywhere,
             FAILOVER_DEADLINE_S)

    done = health("--stack-outputs", str(fresh.outputs))
    assert done.returncode == 1
    summary = done.stdout.splitlines()[-1]
    assert summary.startswith("UNHEALTHY") and victim.name in summary, summary
    code, document = health_json("--stack-outputs", str(fresh.outputs))
    assert code == 1
    assert {"reachable", "node_flags"} <= set(document["failing_nodes"][victim.name])
    # The promoted replica serves the slots but has nobody to fail over to.
    assert set(document["failing_nodes"][heir.name]) == {"replication", "replica_placement"}
    assert results_of(document, "write_read")[heir.name]["status"] == "ok"
    assert all(r["status"] == "ok" for r in results_of(document, "cluster_state").values())


def test_killed_replica_fails_naming_it_and_its_master(fresh: Cluster) -> None:
    master = fresh.named("master")[1]
    victim = fresh.replica_of(master)
    victim.kill()

    def replica_gone() -> tuple[bool, Any]:
        with master.client() as client:
            connected = client.info("replication")["connected_slaves"]
        return connected == 0, f"connected_slaves={connected}"

    wait_until(f"{master.name} to notice its replica is gone", replica_gone, FAILOVER_DEADLINE_S)

    code, document = health_json("--stack-outputs", str(fresh.outputs))

    assert code == 1
    assert document["failing_nodes"][victim.name][0] == "reachable"
    replication = results_of(document, "replication")[master.name]
    assert replication["status"] == "fail" and "0 of 1" in replication["message"]
    assert victim.name in replication["message"]
    # The other shards are untouched.
    assert all(r["status"] == "ok" for r in results_of(document, "write_read").values())


def test_frozen_node_is_reported_after_a_short_timeout(fresh: Cluster) -> None:
    victim = fresh.named("replica")[0]
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGSTOP)
    try:
        code, document = health_json("--stack-outputs", str(fresh.outputs), "--timeout", "0.5")
    finally:
        os.kill(victim.pid, signal.SIGCONT)

    assert code == 1
    message = results_of(document, "reachable")[victim.name]["message"]
    assert "no answer within 0.5s" in message
    assert all(r["status"] == "ok" for name, r in results_of(document, "reachable").items()
               if name != victim.name)


def test_replicas_on_their_masters_host_are_flagged(redis_nodes_factory, tmp_path: Path) -> None:
    """Six processes on one address: every shard would die with that one host."""
    nodes = redis_nodes_factory(6, settings=SETTINGS, hosts=SAME_HOST, name_prefix="samehost")
    form_cluster(nodes, distinct_hosts=False)
    cluster = Cluster(nodes, tmp_path / "outputs.json")

    code, document = health_json("--stack-outputs", str(cluster.outputs))

    assert code == 1
    masters = {n.name for n in cluster.named("master")}
    assert document["failing_nodes"] == {name: ["replica_placement"] for name in masters}
    for name in masters:
        message = results_of(document, "replica_placement")[name]["message"]
        assert "own host 127.0.0.1" in message
