"""The node plan: slot split, names, ports and static IPs."""

import ipaddress
from dataclasses import replace

import pytest

from clusterops.core.model import HASH_SLOTS, NodeTarget, split_slots
from components.spec import build_spec
from components.topology import plan_cluster


@pytest.mark.parametrize("masters", range(3, 11))
def test_slot_ranges_cover_every_slot_exactly_once(masters):
    ranges = split_slots(masters)
    assert len(ranges) == masters
    covered = [slot for first, last in ranges for slot in range(first, last + 1)]
    assert covered == list(range(HASH_SLOTS))
    sizes = [last - first + 1 for first, last in ranges]
    assert max(sizes) - min(sizes) <= 1, sizes


def test_three_masters_get_the_guides_ranges():
    assert split_slots(3) == ((0, 5460), (5461, 10922), (10923, 16383))


def test_guide_layout_names_ports_and_followers():
    plan = plan_cluster(build_spec({}, "dev", False))
    assert [n.name for n in plan.nodes] == [
        "alphapulse-redis-master-1", "alphapulse-redis-master-2", "alphapulse-redis-master-3",
        "alphapulse-redis-replica-1", "alphapulse-redis-replica-2", "alphapulse-redis-replica-3",
    ]
    assert [n.host_port for n in plan.nodes] == list(range(7001, 7007))
    assert [n.host_bus_port for n in plan.nodes] == list(range(17001, 17007))
    assert [r.master for r in plan.replicas] == [m.name for m in plan.masters]
    assert all(n.port == 6379 and n.bus_port == 16379 for n in plan.nodes)


@pytest.mark.parametrize(("masters", "replicas"), [(3, 0), (3, 1), (3, 2), (5, 1), (10, 2)])
def test_replicas_never_share_a_container_or_ip_with_their_master(masters, replicas):
    spec = build_spec(
        {"masters": str(masters), "replicasPerMaster": str(replicas), "subnet": "10.1.0.0/24"},
        "dev", False,
    )
    plan = plan_cluster(spec)
    assert len(plan.nodes) == masters * (1 + replicas)
    assert len({n.name for n in plan.nodes}) == len(plan.nodes)
    assert len({n.ip for n in plan.nodes}) == len(plan.nodes)
    assert len({n.volume_name for n in plan.nodes}) == len(plan.nodes)
    by_name = {n.name: n for n in plan.nodes}
    for replica in plan.replicas:
        master = by_name[replica.master]
        assert master.is_master and master.ip != replica.ip and master.name != replica.name
    followers = [sum(r.master == m.name for r in plan.replicas) for m in plan.masters]
    assert followers == [replicas] * masters


def test_static_ips_are_inside_the_subnet_and_clear_of_service_addresses():
    spec = build_spec({"subnet": "192.168.77.0/24"}, "dev", False)
    plan = plan_cluster(spec)
    network = ipaddress.ip_network(spec.subnet)
    reserved = {plan.gateway_ip, plan.exporter_ip, plan.prometheus_ip}
    for node in plan.nodes:
        assert ipaddress.ip_address(node.ip) in network
        assert node.ip not in reserved
    assert plan.gateway_ip == "192.168.77.1"


def test_a_planned_node_converts_to_the_cluster_node_type_once():
    plan = plan_cluster(build_spec({}, "dev", False))
    replica = plan.node("alphapulse-redis-replica-2")
    target = replica.target("127.0.0.1", replica.host_port)
    assert target == NodeTarget(
        name="alphapulse-redis-replica-2", host="127.0.0.1", port=7005,
        cluster_host="172.28.0.15", cluster_port=6379, role="replica",
        master="alphapulse-redis-master-2", container_name="alphapulse-redis-replica-2",
        machine="docker-host",
    )
    master = plan.masters[0].target(plan.masters[0].ip, plan.masters[0].port)
    assert master.slots == ((0, 5460),) and master.bus_port == plan.masters[0].bus_port
    # Round trip through the bootstrap resource's stored JSON shape.
    assert NodeTarget.from_dict(master.to_dict()) == replace(master, container_name=None,
                                                             machine=None)


def _layout(masters: int, replicas: int) -> dict[str, tuple[str, int, str | None]]:
    spec = build_spec({"masters": str(masters), "replicasPerMaster": str(replicas)}, "dev", False)
    return {n.name: (n.ip, n.host_port, n.master) for n in plan_cluster(spec).nodes}


@pytest.mark.parametrize(("before", "after"), [((3, 1), (4, 1)), ((4, 1), (3, 1)),
                                               ((3, 1), (3, 2)), ((3, 1), (6, 1)),
                                               ((5, 2), (5, 1))])
def test_scaling_keeps_every_surviving_node_where_it_was(before, after):
    # A surviving node whose IP or host port moved would be a replaced container with a
    # nodes.conf its peers no longer match: scaling must only add or remove nodes.
    old, new = _layout(*before), _layout(*after)
    for name in set(old) & set(new):
        assert old[name][:2] == new[name][:2], name
    ips = [ip for ip, _port, _master in new.values()]
    assert len(set(ips)) == len(ips)


def test_three_master_layouts_are_unchanged_by_the_stable_scheme():
    # Every 3-master stack deployed before scaling existed keeps its addresses: node i of the
    # old masters-first order is at host offset 11 + i.
    for replicas in range(0, 6):
        spec = build_spec({"replicasPerMaster": str(replicas)}, "dev", False)
        plan = plan_cluster(spec)
        assert [n.host_port for n in plan.nodes] == list(range(7001, 7001 + len(plan.nodes)))
