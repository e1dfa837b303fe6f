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
