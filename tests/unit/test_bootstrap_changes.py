"""Which topology changes the bootstrap provider reshapes, and which it refuses (pure)."""

from __future__ import annotations

from components.bootstrap import topology_change, unsupported_change
from components.docker_cluster import bootstrap_nodes
from components.spec import build_spec
from components.topology import plan_cluster


def nodes(masters: int, replicas: int = 1) -> list[dict]:
    spec = build_spec({"masters": str(masters), "replicasPerMaster": str(replicas)}, "dev", False)
    return bootstrap_nodes(spec, plan_cluster(spec))


def test_scaling_the_deployed_layout_is_a_topology_change_the_provider_can_make():
    for before, after in (((3, 1), (4, 1)), ((4, 1), (3, 1)), ((3, 1), (3, 2)),
                          ((3, 2), (4, 2)), ((5, 1), (3, 1))):
        old, new = nodes(*before), nodes(*after)
        assert topology_change(old, new) is not None
        assert unsupported_change(old, new) is None, (before, after)


def test_moving_or_re_roling_a_surviving_node_is_refused_by_name():
    old = nodes(3)
    moved = [{**n, "cluster_host": "10.0.0.99"} if n["name"].endswith("replica-2") else n
             for n in old]
    assert "alphapulse-redis-replica-2: cluster_host" in (unsupported_change(old, moved) or "")
    re_roled = [{**n, "role": "master"} if n["name"].endswith("replica-1") else n for n in old]
    assert "role 'replica' -> 'master'" in (unsupported_change(old, re_roled) or "")


def test_switching_tls_on_a_formed_cluster_is_refused_with_the_way_back():
    from components.bootstrap import tls_switch_problem

    nodes = [{"name": "n"}]
    tls = {"ca_bundle": "PEM", "token": "t"}
    to_tls = tls_switch_problem({"nodes": nodes}, {"nodes": nodes, "tls": tls})
    assert to_tls and "runs plaintext" in to_tls
    assert "pulumi config set alphapulse-redis-cluster:tls false" in to_tls
    to_plain = tls_switch_problem({"nodes": nodes, "tls": tls}, {"nodes": nodes})
    assert to_plain and "tls true" in to_plain
    assert tls_switch_problem({}, {"nodes": nodes, "tls": tls}) is None  # a new cluster
    assert tls_switch_problem({"nodes": nodes, "tls": tls}, {"nodes": nodes, "tls": tls}) is None
