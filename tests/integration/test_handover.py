"""clusterops.provision.handover on real redis-server processes: a node made safe to take down."""

from __future__ import annotations

import pytest

from clusterops.node.access import Access
from clusterops.provision.formation import form_cluster
from clusterops.provision.handover import HandoverError, hand_over
from tests.support.process_plans import plan_for, wait_for_replica_links
from tests.support.redis_nodes import RedisNodes


def shard_of(plan, master_name):
    return [t for t in plan if t.name == master_name or t.master == master_name]


def test_a_master_hands_its_slots_to_its_linked_replica_and_keeps_every_key(
        six_nodes: RedisNodes) -> None:
    plan = plan_for(six_nodes)
    form_cluster(plan, Access(six_nodes.password), 30)
    wait_for_replica_links(six_nodes)
    master = plan[0]
    shard = shard_of(plan, master.name)
    conn = six_nodes[0].client()
    keys = [k for k in (f"k{i}" for i in range(2000))
            if int(conn.execute_command("CLUSTER", "KEYSLOT", k)) <= 5460][:200]
    for key in keys:
        conn.set(key, key)
    assert int(conn.execute_command("WAIT", 1, 1000)) == 1

    report = hand_over(master, shard, Access(six_nodes.password), 20)

    assert report.was_master and report.new_master == "alphapulse-redis-replica-1"
    assert six_nodes[0].client().info("replication")["role"] == "slave"
    successor = six_nodes[3].client()
    assert successor.info("replication")["role"] == "master"
    assert [successor.get(k) for k in keys] == keys
    # A replica needs nothing: it serves no slots.
    again = hand_over(plan[4], shard_of(plan, "alphapulse-redis-master-2"),
                      Access(six_nodes.password), 10)
    assert not again.was_master and again.new_master is None


def test_a_master_whose_replica_is_down_is_not_taken_down(six_nodes: RedisNodes) -> None:
    plan = plan_for(six_nodes)
    form_cluster(plan, Access(six_nodes.password), 30)
    wait_for_replica_links(six_nodes)
    six_nodes[4].stop()  # replica-2, of master-2
    with pytest.raises(HandoverError, match="alphapulse-redis-replica-2: unreachable"):
        hand_over(plan[1], shard_of(plan, "alphapulse-redis-master-2"),
                  Access(six_nodes.password), 2)
    assert six_nodes[1].client().info("replication")["role"] == "master"
