"""clusterops against six real redis-server processes: create, adopt, refuse, time out, rotate.

Assertions read the servers with plain redis-py (CLUSTER SLOTS, INFO, CLUSTER MYID) rather
than through clusterops' own parser, so a bug there cannot hide a bug here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import replace

import pytest
import redis
from redis.cluster import RedisCluster

from clusterops.core.errors import (
    AuthError,
    FormationTimeoutError,
    NodesUnreachableError,
    PlanError,
    UnsafeClusterStateError,
)
from clusterops.node.access import Access
from clusterops.provision.formation import form_cluster
from clusterops.provision.password_rotation import rotate_password
from clusterops.state.topology import read_live_topology
from clusterops.state.verify import verify_cluster
from tests.support.process_plans import plan_for, wait_for_replica_links
from tests.support.redis_nodes import RedisNodes, pick_free_port
from tests.support.waiting import wait_for

TIMEOUT_S = 20.0
KEY_ON_MASTER_1 = "{b}after-rotation"  # hash tag {b} -> slot 3300, in master-1's 0-5460
# Commands that change cluster membership, slots, config or data: counted via INFO commandstats
# to prove that adopting or refusing wrote nothing.
WRITE_COMMANDS = (
    "cluster|addslots", "cluster|addslotsrange", "cluster|delslots", "cluster|delslotsrange",
    "cluster|meet", "cluster|replicate", "cluster|set-config-epoch", "cluster|setslot",
    "cluster|reset", "cluster|forget", "cluster|failover", "config|set", "config|rewrite",
    "flushall", "flushdb", "set", "del",
)


def write_counts(nodes: RedisNodes) -> dict[str, dict[str, int]]:
    counts = {}
    for node in nodes:
        stats = node.client().info("commandstats")
        counts[node.name] = {
            cmd: stats.get(f"cmdstat_{cmd}", {}).get("calls", 0) for cmd in WRITE_COMMANDS
        }
    return counts


def slot_owners(node) -> dict[tuple[int, int], int]:
    """(first, last) -> port of the master, as CLUSTER SLOTS reports it."""
    raw = node.client().execute_command("CLUSTER", "SLOTS")
    return {(int(r[0]), int(r[1])): int(r[2][1]) for r in raw}


def config_epochs(nodes: RedisNodes) -> dict[str, str]:
    epochs = {}
    for node in nodes:
        for line in node.client().execute_command("CLUSTER", "NODES").splitlines():
            if "myself" in line.split()[2]:
                epochs[node.name] = line.split()[6]
    return epochs


def assert_pristine(nodes) -> None:
    """Each node still alone, slotless, epoch 0: nothing was done to it."""
    for node in nodes:
        info = node.client().execute_command("CLUSTER", "INFO")
        assert "cluster_known_nodes:1\r" in info, (node.name, info)
        assert "cluster_slots_assigned:0\r" in info, (node.name, info)
        assert "cluster_my_epoch:0\r" in info, (node.name, info)


def test_create_from_empty_forms_the_planned_cluster(six_nodes: RedisNodes) -> None:
    plan = plan_for(six_nodes)
    report = form_cluster(plan, Access(six_nodes.password), TIMEOUT_S)

    assert report.action == "created"
    assert report.state == "ok"
    assert verify_cluster(plan, Access(six_nodes.password)) == []
    by_name = {n.name: n for n in plan}
    ports = {t.name: t.port for t in plan}
    for node, target in zip(six_nodes, plan, strict=True):
        client = node.client()
        info = client.execute_command("CLUSTER", "INFO")
        assert "cluster_state:ok" in info and "cluster_slots_assigned:16384" in info
        assert "cluster_known_nodes:6" in info
        assert report.node_ids[target.name] == client.execute_command("CLUSTER", "MYID")
        # Every node's slot table: each planned master serves exactly its planned range.
        expected = {m.slots[0]: m.port for m in plan if m.is_master}
        assert slot_owners(node) == expected
        if target.role == "replica":
            replication = client.info("replication")
            assert replication["role"] == "slave"
            assert int(replication["master_port"]) == ports[by_name[target.name].master]
    assert report.slot_ranges == {m.name: [list(m.slots[0])] for m in plan if m.is_master}
    # A replica reports its master's epoch; the three masters must not share one.
    master_epochs = [config_epochs(six_nodes)[n.name] for n in list(six_nodes)[:3]]
    assert len(set(master_epochs)) == 3, master_epochs

    # A real cluster client can write to and read from every shard.
    cluster = RedisCluster(host=plan[0].host, port=plan[0].port,
                           password=six_nodes.password, decode_responses=True)
    try:
        for key in ("{a}x", "{b}x", "{c}x", "{d}x", "{e}x"):
            assert cluster.set(key, key) and cluster.get(key) == key
    finally:
        cluster.close()


def test_adopts_an_existing_identical_cluster_without_writing(six_nodes: RedisNodes) -> None:
    plan = plan_for(six_nodes)
    first = form_cluster(plan, Access(six_nodes.password), TIMEOUT_S)
    owner = RedisCluster(host="127.0.0.1", port=plan[0].port, password=six_nodes.password)
    owner.set("kept", "value")
    owner.close()
    epochs, before = config_epochs(six_nodes), write_counts(six_nodes)

    again = form_cluster(plan, Access(six_nodes.password), TIMEOUT_S)

    assert again.action == "adopted"
    assert again.commands == []
    assert write_counts(six_nodes) == before, "adopting must not send a single write"
    assert config_epochs(six_nodes) == epochs
    assert again.node_ids == first.node_ids
    assert again.slot_ranges == first.slot_ranges
    check = RedisCluster(host="127.0.0.1", port=plan[0].port, password=six_nodes.password,
                         decode_responses=True)
    assert check.get("kept") == "value"
    check.close()


def test_a_failover_swapped_pair_is_healthy_and_adopted(six_nodes: RedisNodes) -> None:
    plan = plan_for(six_nodes)
    form_cluster(plan, Access(six_nodes.password), TIMEOUT_S)
    wait_for_replica_links(six_nodes)
    replica = six_nodes[3]  # alphapulse-redis-replica-1 follows master-1
    replica.client().execute_command("CLUSTER", "FAILOVER")
    wait_for("replica-1 promoted", lambda: replica.client().info("replication")["role"] == "master")
    wait_for("old master-1 demoted",
             lambda: six_nodes[0].client().info("replication")["role"] == "slave")
    wait_for("cluster healthy after the swap",
             lambda: verify_cluster(plan, Access(six_nodes.password)) == [])
    before = write_counts(six_nodes)

    report = form_cluster(plan, Access(six_nodes.password), TIMEOUT_S)

    assert report.action == "adopted"
    assert write_counts(six_nodes) == before
    assert report.live_roles["alphapulse-redis-master-1"] == "replica"
    assert report.live_roles["alphapulse-redis-replica-1"] == "master"
    assert report.slot_ranges["alphapulse-redis-master-1"] == [[0, 5460]]
    live = read_live_topology(plan, Access(six_nodes.password))
    assert live.cluster_state == "ok" and live.problems == []
    assert live.live_master_of["alphapulse-redis-master-1"] == "alphapulse-redis-replica-1"


def test_verify_reports_an_open_slot_and_form_cluster_will_not_call_it_healthy(
    six_nodes: RedisNodes,
) -> None:
    plan = plan_for(six_nodes)
    report = form_cluster(plan, Access(six_nodes.password), TIMEOUT_S)
    master_1 = six_nodes[0].client()
    target_id = report.node_ids["alphapulse-redis-master-2"]
    master_1.execute_command("CLUSTER", "SETSLOT", 100, "MIGRATING", target_id)
    try:
        problems = verify_cluster(plan, Access(six_nodes.password))
        assert problems == [
            f"alphapulse-redis-master-1: slot 100 is open (migrating to {target_id})"
        ]
        with pytest.raises(FormationTimeoutError) as caught:
            form_cluster(plan, Access(six_nodes.password), 1.0)
        assert caught.value.stage == "verifying the cluster"
        assert "slot 100 is open" in str(caught.value)
    finally:
        master_1.execute_command("CLUSTER", "SETSLOT", 100, "STABLE")
    assert verify_cluster(plan, Access(six_nodes.password)) == []


def test_a_replica_whose_link_is_down_is_not_healthy(six_nodes: RedisNodes) -> None:
    """Attached is not enough: a replica that cannot sync leaves its shard without failover."""
    plan = plan_for(six_nodes)
    form_cluster(plan, Access(six_nodes.password), TIMEOUT_S)
    replica_1 = six_nodes[3].client()
    replica_1.config_set("masterauth", "not-the-password")
    replica_1.execute_command("CLIENT", "KILL", "TYPE", "master")
    try:
        wait_for(
            "replica-1's link to go down",
            lambda: replica_1.info("replication")["master_link_status"] == "down",
        )
        problems = verify_cluster(plan, Access(six_nodes.password))
        assert problems == [
            "alphapulse-redis-replica-1: replication link to alphapulse-redis-master-1 is down"
        ]
    finally:
        replica_1.config_set("masterauth", six_nodes.password)
    wait_for_replica_links(six_nodes)
    assert verify_cluster(plan, Access(six_nodes.password)) == []


def test_resumes_a_formation_that_stopped_half_way(six_nodes: RedisNodes) -> None:
    plan = plan_for(six_nodes)
    # As if an earlier run died after assigning slots on two masters.
    for node, target in list(zip(six_nodes, plan, strict=True))[:2]:
        node.client().execute_command("CLUSTER", "ADDSLOTSRANGE", *target.slots[0])

    report = form_cluster(plan, Access(six_nodes.password), TIMEOUT_S)

    assert report.action == "resumed"
    assert not any("alphapulse-redis-master-1: CLUSTER ADDSLOTSRANGE" in c for c in report.commands)
    assert "alphapulse-redis-master-3: CLUSTER ADDSLOTSRANGE 10923 16383" in report.commands
    assert verify_cluster(plan, Access(six_nodes.password)) == []


def test_refuses_a_node_holding_keys_and_leaves_everything_untouched(
    six_nodes: RedisNodes,
) -> None:
    plan = plan_for(six_nodes)
    holder = six_nodes[4]
    # A lone node that holds data but no slots (e.g. nodes.conf lost, AOF kept).
    client = holder.client()
    client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    # Alone with every slot, the node accepts writes once its own rejoin delay has passed.
    wait_for("lone node writable", lambda: client.set("precious", "do-not-lose"))
    client.execute_command("CLUSTER", "DELSLOTSRANGE", 0, 16383)
    before = write_counts(six_nodes)

    with pytest.raises(UnsafeClusterStateError) as caught:
        form_cluster(plan, Access(six_nodes.password), TIMEOUT_S)

    message = str(caught.value)
    assert plan[4].name in message and "1 key(s)" in message
    assert six_nodes.password not in message
    assert write_counts(six_nodes) == before
    assert_pristine(six_nodes)
    slot = client.execute_command("CLUSTER", "KEYSLOT", "precious")
    assert client.dbsize() == 1
    assert client.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 10) == ["precious"]
    # Serve the slots again (the test's own write) to read the value back.
    client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    wait_for("value readable", lambda: client.get("precious") == "do-not-lose")


def test_refuses_a_node_of_a_foreign_cluster_and_leaves_it_untouched(
    redis_nodes_factory,
) -> None:
    fresh = redis_nodes_factory(5)
    foreign = redis_nodes_factory(3, password=fresh.password, name_prefix="foreign")
    env = dict(os.environ, REDISCLI_AUTH=fresh.password)
    subprocess.run(
        ["redis-cli", "--cluster", "create", *[n.address for n in foreign],
         "--cluster-replicas", "0", "--cluster-yes"],
        env=env, check=True, capture_output=True, timeout=60,
    )
    wait_for("foreign cluster ok", lambda: all(
        "cluster_state:ok" in n.client().execute_command("CLUSTER", "INFO") for n in foreign))
    foreign_client = RedisCluster(host="127.0.0.1", port=foreign[0].port,
                                  password=fresh.password, decode_responses=True)
    foreign_client.set("theirs", "keep-me")
    intruder = foreign[1]
    nodes_before = intruder.client().execute_command("CLUSTER", "NODES")
    members = [fresh[0], intruder, *fresh.nodes[1:]]
    plan = plan_for(members)
    before = {n.name: n.client().info("commandstats") for n in members}

    with pytest.raises(UnsafeClusterStateError) as caught:
        form_cluster(plan, Access(fresh.password), TIMEOUT_S)

    message = str(caught.value)
    assert plan[1].name in message and "outside the plan" in message
    assert fresh.password not in message
    for node in members:
        stats = node.client().info("commandstats")
        for cmd in WRITE_COMMANDS:
            key = f"cmdstat_{cmd}"
            assert stats.get(key) == before[node.name].get(key), (node.name, cmd)
    assert_pristine(fresh)
    assert _strip_times(intruder.client().execute_command("CLUSTER", "NODES")) == _strip_times(
        nodes_before
    )
    assert foreign_client.get("theirs") == "keep-me"
    foreign_client.close()


def _strip_times(cluster_nodes: str) -> list[str]:
    """CLUSTER NODES without the ping/pong timestamps, which change every second."""
    lines = []
    for line in cluster_nodes.splitlines():
        parts = line.split()
        lines.append(" ".join(parts[:4] + parts[6:]))
    return sorted(lines)


def test_an_unreachable_node_fails_within_the_deadline_naming_it(
    redis_nodes_factory,
) -> None:
    nodes = redis_nodes_factory(5)
    dead_port = pick_free_port()  # nothing listens here
    plan = plan_for(list(nodes))
    ghost = replace(plan[-1], name="alphapulse-redis-replica-3", port=dead_port,
                    cluster_port=dead_port)
    plan = [*plan, ghost]
    timeout_s = 2.0

    started = time.monotonic()
    with pytest.raises(NodesUnreachableError) as caught:
        form_cluster(plan, Access(nodes.password), timeout_s)
    elapsed = time.monotonic() - started

    assert timeout_s <= elapsed < timeout_s + 1.5, elapsed
    message = str(caught.value)
    assert ghost.name in message and str(dead_port) in message
    assert list(caught.value.failures) == [ghost.name]
    assert nodes.password not in message
    assert_pristine(nodes)


def test_a_hung_node_fails_within_the_deadline_naming_it(six_nodes: RedisNodes) -> None:
    # SIGSTOP: the kernel still accepts connections, but nothing ever answers (a black hole).
    hung = six_nodes[2]
    hung.process.send_signal(signal.SIGSTOP)
    plan = plan_for(six_nodes)
    timeout_s = 2.0
    try:
        started = time.monotonic()
        with pytest.raises(NodesUnreachableError) as caught:
            form_cluster(plan, Access(six_nodes.password), timeout_s)
        elapsed = time.monotonic() - started
    finally:
        hung.process.send_signal(signal.SIGCONT)

    assert timeout_s <= elapsed < timeout_s + 1.5, elapsed
    assert list(caught.value.failures) == [plan[2].name]
    assert "(timeout)" in str(caught.value)  # says why: a hung node, not a refusal
    assert_pristine(six_nodes)


def test_a_node_that_never_joins_at_its_planned_address_times_out_naming_it(
    six_nodes: RedisNodes,
) -> None:
    plan = plan_for(six_nodes)
    wrong_port = pick_free_port()
    # master-3 is reachable for us, but the plan tells the others to MEET it where it isn't.
    plan[2] = replace(plan[2], cluster_port=wrong_port)

    with pytest.raises(FormationTimeoutError) as caught:
        form_cluster(plan, Access(six_nodes.password), 3.0)

    error = caught.value
    assert error.stage == "waiting for all nodes to know each other"
    assert any(item.startswith(plan[2].name) for item in error.lagging)
    assert f"planned 127.0.0.1:{wrong_port}" in str(error)
    assert "last state seen" in str(error) and six_nodes.password not in str(error)


def test_rejects_an_invalid_plan_before_contacting_anyone(six_nodes: RedisNodes) -> None:
    plan = plan_for(six_nodes)
    bad = [plan[0], plan[1], plan[3], plan[4], plan[5]]  # master-3 missing: 2 masters, gap
    with pytest.raises(PlanError) as caught:
        form_cluster(bad, Access(six_nodes.password), TIMEOUT_S)
    assert "at least 3" in str(caught.value) and "not assigned" in str(caught.value)
    assert_pristine(six_nodes)


def test_wrong_password_is_reported_without_revealing_either_password(
    six_nodes: RedisNodes,
) -> None:
    wrong = "not-the-password-123"
    started = time.monotonic()
    with pytest.raises(AuthError) as caught:
        form_cluster(plan_for(six_nodes), Access(wrong), TIMEOUT_S)
    assert time.monotonic() - started < 5, "an auth failure must not wait for the deadline"
    assert caught.value.exit_code == 2  # a usage error: the Job and the CLI say so alike
    message = str(caught.value)
    assert "authentication failed" in message
    assert wrong not in message and six_nodes.password not in message


def _repl_stats(nodes: RedisNodes, password: str) -> dict[str, tuple[int, int]]:
    """master -> (sync_full, sync_partial_ok): any reconnect of a replica moves one of them."""
    stats = {}
    for node in nodes:
        client = node.client(password)
        if client.info("replication")["role"] == "master":
            info = client.info("stats")
            stats[node.name] = (int(info["sync_full"]), int(info["sync_partial_ok"]))
    return stats


def test_password_rotation_keeps_replication_up(six_nodes: RedisNodes) -> None:
    plan = plan_for(six_nodes)
    old, new = six_nodes.password, "rotated-" + six_nodes.password[::-1]
    form_cluster(plan, Access(old), TIMEOUT_S)
    wait_for_replica_links(six_nodes)
    syncs_before = _repl_stats(six_nodes, old)
    offsets_before = {n.name: n.client().info("replication")["master_repl_offset"]
                      for n in six_nodes}

    report = rotate_password(plan, Access(old), new, timeout_s=10)

    assert sorted(report.rotated) == sorted(t.name for t in plan)
    assert sorted(report.rewritten) == sorted(t.name for t in plan)
    for node in six_nodes:
        with pytest.raises(redis.AuthenticationError):
            node.client(old).ping()
        client = node.client(new)
        assert client.config_get("masterauth")["masterauth"] == new
        replication = client.info("replication")
        if replication["role"] == "slave":
            assert replication["master_link_status"] == "up"
            assert "master_link_down_since_seconds" not in replication
    # No replica reconnected: neither a full nor even a partial resync happened.
    assert _repl_stats(six_nodes, new) == syncs_before
    # Replication keeps flowing: a write on master-1 reaches replica-1 and offsets move on.
    six_nodes[0].client(new).set(KEY_ON_MASTER_1, "1")
    reader = six_nodes[3].client(new, single_connection_client=True)
    reader.execute_command("READONLY")
    wait_for("write replicated to replica-1", lambda: reader.get(KEY_ON_MASTER_1) == "1")
    assert reader.info("replication")["master_repl_offset"] > offsets_before[six_nodes[3].name]
    reader.close()
    # The rewritten config keeps the new password across a restart.
    replica = six_nodes[3]
    replica.stop()
    replica.password = new
    replica.start()
    wait_for("restarted replica relinked", lambda: replica.client(new).info("replication").get(
        "master_link_status") == "up")
    # Running it again is harmless: every node already has the new password.
    again = rotate_password(plan, Access(old), new, timeout_s=10)
    assert sorted(again.already_rotated) == sorted(t.name for t in plan)


def test_rotation_on_a_node_without_config_file_still_applies(redis_nodes_factory) -> None:
    nodes = redis_nodes_factory(1, config_file=False)
    target = plan_for(list(nodes), masters=1)[0]
    report = rotate_password([target], Access(nodes.password), "fresh-password-1", timeout_s=5)
    assert report.without_config_file == [target.name] and report.rewritten == []
    assert nodes[0].client("fresh-password-1").ping()
