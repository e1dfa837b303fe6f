"""Several Docker hosts: the `hosts` setting, placement, and what one host's loss may break."""

import json
from collections import Counter

import pytest

from components.docker_cluster import bootstrap_nodes, node_outputs
from components.hosts import host_loss_problems, placement
from components.redis_conf import render_redis_conf
from components.spec import ConfigError, build_spec
from components.topology import plan_cluster


def hosts_json(count: int = 3, **override: str) -> str:
    entries = [{"name": f"h{i}", "dockerHost": f"unix:///run/h{i}.sock",
                "address": f"10.1.0.{10 + i}"} for i in range(1, count + 1)]
    entries[0].update(override)
    return json.dumps(entries)


def problems_for(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_spec(raw, "dev", password_set=False)
    return caught.value.problems


def test_three_hosts_spread_every_shard_and_announce_host_addresses():
    spec = build_spec({"hosts": hosts_json()}, "dev", password_set=False)
    assert spec.announce == "host-address" and spec.survives_host_loss
    assert spec.bind_address == "0.0.0.0"  # published for the other hosts, not loopback
    plan = plan_cluster(spec)
    host_of = {n.name: n.host for n in plan.nodes}
    assert Counter(n.host for n in plan.masters) == {"h1": 1, "h2": 1, "h3": 1}
    for replica in plan.replicas:
        assert replica.host != host_of[replica.master], replica
    master = plan.masters[1]
    assert (master.announce_ip, master.announce_port) == ("10.1.0.12", master.host_port)
    conf = render_redis_conf(spec, master)
    assert "cluster-announce-ip 10.1.0.12\n" in conf
    assert f"cluster-announce-port {master.host_port}\n" in conf
    assert f"cluster-announce-bus-port {master.host_bus_port}\n" in conf
    assert "replica-announce-ip 10.1.0.12\n" in conf
    # The deploy and the cluster both reach a node at its host's address and published port.
    boot = {n["name"]: n for n in bootstrap_nodes(spec, plan)}[master.name]
    assert (boot["admin_host"], boot["admin_port"]) == ("10.1.0.12", master.host_port)
    assert (boot["cluster_host"], boot["cluster_port"]) == ("10.1.0.12", master.host_port)
    out = {n["name"]: n for n in node_outputs(plan)}[master.name]
    assert (out["ip"], out["port"], out["host"]) == ("10.1.0.12", master.host_port, "h2")
    assert out["container_ip"] == master.ip


def test_a_single_host_stack_keeps_container_ips_and_its_layout():
    spec = build_spec({}, "dev", password_set=False)
    assert spec.announce == "container-ip" and not spec.survives_host_loss
    plan = plan_cluster(spec)
    assert {n.host for n in plan.nodes} == {"docker-host"}
    assert all((n.announce_ip, n.announce_port) == (n.ip, n.port) for n in plan.nodes)
    assert "replica-announce-ip" not in render_redis_conf(spec, plan.nodes[0])


@pytest.mark.parametrize(("masters", "replicas", "hosts"), [(3, 1, 3), (3, 2, 3), (5, 1, 3),
                                                              (4, 1, 4), (6, 1, 4), (3, 1, 5)])
def test_each_accepted_layout_really_survives_any_one_host(masters, replicas, hosts):
    names = [f"h{i}" for i in range(hosts)]
    assert host_loss_problems(masters, replicas, names) == []
    where = placement(masters, replicas, hosts)
    for lost in range(hosts):
        alive_masters = sum(1 for m in range(1, masters + 1) if where[("master", m)] != lost)
        assert alive_masters > masters / 2, "failover needs a majority of the masters"
        for m in range(1, masters + 1):
            shard = [where[("master", m)]] + [
                where[("replica", r)] for r in range(1, masters * replicas + 1)
                if (r - 1) % masters + 1 == m]
            assert any(h != lost for h in shard), f"shard {m} lost with host {lost}"


def test_layouts_one_host_loss_would_break_are_refused_with_the_reason():
    [two_hosts] = problems_for({"hosts": hosts_json(2)})
    assert two_hosts.startswith("alphapulse-redis-cluster:survivesHostLoss: 2 host(s)")
    assert "majority" in two_hosts and "survivesHostLoss to false" in two_hosts
    [crowded] = problems_for({"hosts": hosts_json(3), "masters": "4"})
    assert "host h1 would hold 2 of the 4 masters" in crowded
    [no_replica] = problems_for({"hosts": hosts_json(3), "replicasPerMaster": "0"})
    assert "replicasPerMaster is 0" in no_replica
    # A stack may say it goes down with a host (dev): then it is accepted.
    spec = build_spec({"hosts": hosts_json(2), "survivesHostLoss": "false"}, "dev", False)
    assert [h.name for h in spec.hosts] == ["h1", "h2"]


@pytest.mark.parametrize(("override", "expected"), [
    ({"address": "10.1.0.12"}, "same address '10.1.0.12'"),
    ({"name": "h2"}, "same name 'h2'"),
    ({"dockerHost": "unix:///run/h2.sock"}, "same dockerHost"),
    ({"dockerHost": "tcp://10.1.0.11:2375"}, "tcp:// is not supported"),
    ({"address": "127.0.0.1"}, "not an IPv4 address other hosts and clients can reach"),
    ({"name": "Host_1"}, "is not a host name"),
])
def test_a_bad_host_entry_names_the_entry_and_the_fix(override, expected):
    problems = problems_for({"hosts": hosts_json(3, **override)})
    assert any(expected in p and "Fix:" in p for p in problems), problems


def test_announce_and_bind_settings_that_cannot_work_across_hosts_are_refused():
    [mode] = problems_for({"hosts": hosts_json(3), "announce": "container-ip"})
    assert mode.startswith("alphapulse-redis-cluster:announce: container-ip cannot work")
    [bind] = problems_for({"hosts": hosts_json(3), "bindAddress": "127.0.0.1"})
    assert bind.startswith("alphapulse-redis-cluster:bindAddress:")
    [alone] = problems_for({"announce": "host-address"})
    assert "needs the address clients reach the host at" in alone
    [admin] = problems_for({"hosts": hosts_json(3), "adminAccess": "host-ports"})
    assert admin.startswith("alphapulse-redis-cluster:adminAccess: does not apply")
    assert problems_for({"hosts": "not json"})[0].startswith(
        "alphapulse-redis-cluster:hosts: is not a non-empty list")


def test_one_host_with_host_addresses_serves_clients_on_other_machines():
    one = json.dumps([{"name": "a", "dockerHost": "unix:///var/run/docker.sock",
                       "address": "192.0.2.10"}])
    spec = build_spec({"hosts": one}, "dev", password_set=False)
    assert spec.announce == "host-address" and not spec.survives_host_loss
    assert {(n.announce_ip, n.host) for n in plan_cluster(spec).nodes} == {("192.0.2.10", "a")}


def test_scaling_never_moves_a_node_to_another_host():
    before = {n.name: n.host for n in plan_cluster(build_spec(
        {"hosts": hosts_json(3), "masters": "3"}, "dev", False)).masters}
    after = {n.name: n.host for n in plan_cluster(build_spec(
        {"hosts": hosts_json(3), "masters": "5"}, "dev", False)).masters}
    assert all(after[name] == host for name, host in before.items())


def test_the_parsed_hosts_come_back_in_the_spec():
    spec = build_spec({"hosts": hosts_json(3), "bindAddress": "10.1.0.1"}, "dev", False)
    assert [(h.name, h.docker_host, h.address) for h in spec.hosts] == [
        (f"h{i}", f"unix:///run/h{i}.sock", f"10.1.0.{10 + i}") for i in (1, 2, 3)]
    assert spec.bind_address == "10.1.0.1"  # a set bindAddress is kept


def test_check_hosts_returns_what_it_decided_and_reports_every_problem():
    from components.config_reader import ConfigReader
    from components.hosts import HostSettings, check_hosts
    from components.layout import Shape

    reader = ConfigReader({"hosts": hosts_json(2, name="Bad_Name"), "adminAccess": "host-ports"})
    settings = check_hosts(reader, Shape(masters=3, replicas_per_master=1), "127.0.0.1")
    assert isinstance(settings, HostSettings)
    assert [h.name for h in settings.hosts] == ["Bad_Name", "h2"]
    assert (settings.announce, settings.bind_address) == ("host-address", "0.0.0.0")
    assert settings.survives_host_loss
    assert sorted(p.split(":")[1] for p in reader.problems) == [
        "adminAccess", "hosts", "survivesHostLoss"]
    one = check_hosts(ConfigReader({}), Shape(3, 1), "127.0.0.1")
    assert one == HostSettings(bind_address="127.0.0.1")
    assert one.host_names == ["docker-host"]
