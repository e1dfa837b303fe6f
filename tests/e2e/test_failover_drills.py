"""Failover, partition, restart and replacement drills on the deployed dev stack (real Docker)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from clusterops.cli.targets import targets_from_outputs
from clusterops.tasks.node_control import DockerNodeControl
from components.redis_conf import PASSWORD_FILE_PATH
from tests.support.deploy_fixtures import DeployedStack
from tests.support.waiting import wait_for, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PASSWORD_FILE = PASSWORD_FILE_PATH


def drill(stack: DeployedStack, *args: str) -> tuple[int, dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "clusterops", "drill", "--stack-outputs", str(stack.outputs_file),
         "--json", *args],
        capture_output=True, text=True, timeout=900, check=False,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"drill printed no JSON (rc {result.returncode}):\n{result.stdout}\n"
                    f"{result.stderr}")
    return result.returncode, report


def client(stack: DeployedStack, node: dict[str, Any]) -> redis.Redis:
    return redis.Redis(host=node["ip"], port=node["port"], password=stack.password,
                       socket_timeout=1, socket_connect_timeout=1)


def cluster_states(stack: DeployedStack) -> dict[str, str]:
    states = {}
    for node in stack.outputs["nodes"]:
        try:
            states[node["name"]] = client(stack, node).cluster("INFO")["cluster_state"]
        except redis.RedisError as err:
            states[node["name"]] = f"unreachable: {type(err).__name__}"
    return states


def wait_for_all_ok(stack: DeployedStack, seconds: float) -> float:
    """Seconds until every node reports cluster_state:ok (fails the test after ``seconds``)."""
    started = time.monotonic()

    def all_ok() -> tuple[bool, dict[str, str]]:
        states = cluster_states(stack)
        return all(state == "ok" for state in states.values()), states

    wait_until("cluster_state:ok on every node", all_ok, seconds, 0.1)
    return time.monotonic() - started


def assert_every_drill_passed(report: dict[str, Any], masters: int) -> None:
    assert report["error"] is None, report["error"]
    assert len(report["drills"]) == masters, report
    for entry in report["drills"]:
        assert entry["failures"] == [], entry
        assert entry["acked_lost"] == 0 and entry["acked_writes"] > 0, entry
        assert entry["rejoined"], entry
    print(json.dumps([{k: d[k] for k in ("master", "mode", "recovery_seconds", "acked_writes",
                                         "acked_lost", "unacked_lost")} for d in report["drills"]]))


@pytest.mark.parametrize("mode", ["kill", "stop"])
def test_each_master_fails_over_and_rejoins_without_losing_acked_writes(deployed, mode):
    wait_for_all_ok(deployed, 60)
    code, report = drill(deployed, "--master", "all", "--mode", mode)
    assert_every_drill_passed(report, masters=3)
    assert code == 0


def _exec_set(container: str, key: str) -> str:
    """SET from inside the container, the only side an isolated node can still hear.

    The password is fed from its file to --askpass: it never reaches an argv."""
    done = subprocess.run(
        ["docker", "exec", container, "sh", "-c",
         f"redis-cli --no-auth-warning --askpass SET {key} 1 < {PASSWORD_FILE}"],
        capture_output=True, text=True, timeout=10, check=False,
    )
    return (done.stdout + done.stderr).strip()


def _hash_tag_in_own_slots(stack: DeployedStack, node: dict[str, Any]) -> str:
    nodes = client(stack, node).cluster("NODES")
    (mine,) = [n for n in nodes.values() if "myself" in n["flags"]]
    first, last = (int(x) for x in mine["slots"][0])
    return next(f"p{i}" for i in range(100000) if first <= key_slot(f"{{p{i}}}".encode()) <= last)


def test_partitioned_master_is_replaced_and_stops_accepting_writes(deployed: DeployedStack):
    """The guide's test 2, measured: how long the cut-off master kept accepting writes and how
    many of those writes (never acknowledged by a replica) were lost after it healed."""
    wait_for_all_ok(deployed, 60)
    control = DockerNodeControl(targets_from_outputs(deployed.outputs))
    victim = next(n for n in deployed.outputs["nodes"] if _role(deployed, n) == "master")
    tag = _hash_tag_in_own_slots(deployed, victim)
    accepted: list[str] = []
    control.isolate(victim["name"])
    try:
        started = time.monotonic()
        while True:
            key = f"{{{tag}}}:isolated:{len(accepted)}"
            reply = _exec_set(victim["container_name"], key)
            if reply == "OK":
                accepted.append(key)
            elif reply.startswith("CLUSTERDOWN"):
                refused_after = time.monotonic() - started
                break
            assert time.monotonic() - started < 15, f"isolated master still answers: {reply}"
        counterpart = _shard_partner(deployed, victim)
        wait_for("the majority to promote the replica",
                 lambda: _role(deployed, counterpart) == "master", 15, 0.1)
    finally:
        control.heal(victim["name"])
    wait_for("the healed master to become a replica",
             lambda: _role(deployed, victim) == "slave", 60, 0.2)
    wait_for_all_ok(deployed, 60)
    cluster = cluster_client(deployed)
    lost = [key for key in accepted if cluster.get(key) is None]
    print(f"partition: isolated master refused writes {refused_after:.2f}s after the cut; "
          f"it had accepted {len(accepted)} unacknowledged writes, {len(lost)} lost on healing")
    assert accepted, "no write reached the isolated master before it refused: nothing measured"
    assert refused_after < 5, "the isolated master kept accepting writes too long"


def _shard_partner(stack: DeployedStack, node: dict[str, Any]) -> dict[str, Any]:
    """The other node of `node`'s planned shard (one replica per master in the dev stack)."""
    for other in stack.outputs["nodes"]:
        if other.get("master") == node["name"] or other["name"] == node.get("master"):
            return other
    raise AssertionError(f"no shard partner for {node['name']}")


def _role(stack: DeployedStack, node: dict[str, Any]) -> str:
    try:
        return client(stack, node).info("replication")["role"]
    except redis.RedisError:
        return "unreachable"


def test_partition_drill_counts_lost_unacknowledged_writes(deployed: DeployedStack):
    wait_for_all_ok(deployed, 60)
    code, report = drill(deployed, "--master", "alphapulse-redis-master-2", "--mode", "partition")
    (entry,) = report["drills"]
    assert entry["acked_lost"] == 0, entry
    assert entry["rejoined"], entry
    print(f"partition: {entry['unacked_accepted']} writes accepted without replica ack, "
          f"{entry['unacked_lost']} of them lost")
    assert code == 0, entry["failures"]


def node_ids(stack: DeployedStack) -> dict[str, str]:
    return {n["name"]: client(stack, n).execute_command("CLUSTER", "MYID").decode()
            for n in stack.outputs["nodes"]}


def cluster_client(stack: DeployedStack) -> redis.RedisCluster:
    seed = stack.outputs["nodes"][0]
    return redis.RedisCluster(host=seed["ip"], port=seed["port"], password=stack.password)


def write_keys(stack: DeployedStack, prefix: str, count: int) -> None:
    cluster = cluster_client(stack)
    for i in range(count):
        cluster.set(f"{prefix}:{i}", i)


def missing_keys(stack: DeployedStack, prefix: str, count: int) -> list[int]:
    cluster = cluster_client(stack)  # a fresh client: the topology may have changed
    return [i for i in range(count) if cluster.get(f"{prefix}:{i}") != str(i).encode()]


# The stated bound for a full restart; measured about 2 s here (see README).
FULL_RESTART_BOUND_S = 60


def test_full_restart_in_another_order_keeps_data_and_identities(deployed: DeployedStack):
    wait_for_all_ok(deployed, 60)
    write_keys(deployed, "restart", 2000)
    ids_before = node_ids(deployed)
    assert ids_before == deployed.outputs["node_ids"]
    # AOF everysec: a graceful stop flushes it; the restart must find every key.
    names = [n["container_name"] for n in deployed.outputs["nodes"]]
    subprocess.run(["docker", "stop", "-t", "30", *names], check=True, capture_output=True)
    order = names[::-1]
    random.Random(7).shuffle(order)
    for name in order:
        subprocess.run(["docker", "start", name], check=True, capture_output=True)
    seconds = wait_for_all_ok(deployed, FULL_RESTART_BOUND_S)
    print(f"full restart: cluster_state ok on all nodes {seconds:.2f}s after the last start")
    assert node_ids(deployed) == ids_before
    missing = missing_keys(deployed, "restart", 2000)
    assert not missing, f"{len(missing)} keys lost, e.g. {missing[:5]}"


def inspect_nodes(stack: DeployedStack) -> dict[str, dict[str, Any]]:
    names = [n["container_name"] for n in stack.outputs["nodes"]]
    inspected = json.loads(subprocess.run(["docker", "inspect", *names], capture_output=True,
                                          text=True, check=True).stdout)
    return {c["Name"].lstrip("/"): c for c in inspected}


def test_memory_limit_change_updates_every_node_in_place(deployed: DeployedStack):
    """pulumi-docker updates memory limits on the running containers: no restart, no
    replacement (the preview says `update`, and the container IDs stay)."""
    wait_for_all_ok(deployed, 60)
    before = {name: c["Id"] for name, c in inspect_nodes(deployed).items()}
    deployed.stack.set_config({"memoryLimit": "1100mb"})
    planned = deployed.stack.changes()
    node_steps = [(op, name) for op, name in planned if "-master-" in name or "-replica-" in name]
    assert {op for op, _ in node_steps} == {"update"} and len(node_steps) == 6, planned
    deployed.stack.up()
    after = inspect_nodes(deployed)
    assert {name: c["Id"] for name, c in after.items()} == before
    assert {c["HostConfig"]["Memory"] for c in after.values()} == {1100 * 1024 * 1024}
    assert deployed.stack.changes() == []


# A redis.conf setting (maxmemory) no longer replaces containers: it is applied live
# (tests/e2e/test_live_settings.py, which also shows an image change replacing every node and
# keeping data and identities).


def test_no_failover_under_sustained_saturating_load(deployed: DeployedStack):
    """redis-benchmark against every master for 60 s: no role change, no epoch bump."""
    wait_for_all_ok(deployed, 60)
    seconds = float(os.environ.get("ALPHAPULSE_LOAD_SECONDS", "60"))
    nodes = deployed.outputs["nodes"]
    before = {n["name"]: _role(deployed, n) for n in nodes}
    epoch_before = client(deployed, nodes[0]).cluster("INFO")["cluster_current_epoch"]
    # A throwaway ACL user, so the cluster password never reaches redis-benchmark's argv.
    bench_password = os.urandom(16).hex()
    for node in nodes:
        client(deployed, node).acl_setuser("loadtest", enabled=True,
                                           passwords=[f"+{bench_password}"],
                                           commands=["+@all"], keys=["*"])
    try:
        # --cluster spreads the load over every master's slots.
        benches = [
            subprocess.Popen(
                ["redis-benchmark", "--cluster", "-h", nodes[0]["ip"], "-p", "6379",
                 "--user", "loadtest", "-a", bench_password, "-c", "50", "-P", "16",
                 "-n", "100000000", "-r", "1000000", "-d", "64", "-t", "set,get", "-q"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        ]
        deadline = time.monotonic() + seconds
        samples = 0
        while time.monotonic() < deadline:
            assert all(b.poll() is None for b in benches), "redis-benchmark exited early"
            roles = {n["name"]: _role(deployed, n) for n in nodes}
            changed = {k: (before[k], v) for k, v in roles.items()
                       if v != before[k] and v != "unreachable"}
            assert not changed, f"role changed under load after {samples} samples: {changed}"
            samples += 1
            time.sleep(1)
    finally:
        for bench in benches:
            bench.terminate()
            bench.wait(10)
        for node in nodes:
            client(deployed, node).acl_deluser("loadtest")
    epoch_after = client(deployed, nodes[0]).cluster("INFO")["cluster_current_epoch"]
    assert epoch_after == epoch_before, "a failover happened (currentEpoch moved) under load"
    assert {n["name"]: _role(deployed, n) for n in nodes} == before
