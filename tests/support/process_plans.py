"""Planned nodes for a group of local redis-server processes, and waiting for their replicas:
the helpers the process-tier tests and the benches share."""

from __future__ import annotations

from collections.abc import Sequence

from clusterops.core.model import NodeTarget, split_slots
from tests.support.redis_nodes import RedisNode, RedisNodes
from tests.support.waiting import wait_for


def plan_for(nodes: Sequence[RedisNode], masters: int = 3) -> list[NodeTarget]:
    """First ``masters`` nodes are masters, the rest replicas round-robin (names as deployed)."""
    ranges = split_slots(masters)
    plan = []
    for index, node in enumerate(nodes):
        common = {
            "host": node.host,
            "port": node.port,
            "cluster_host": node.host,
            "cluster_port": node.port,
        }
        if index < masters:
            plan.append(
                NodeTarget(f"alphapulse-redis-master-{index + 1}", role="master",
                           slots=(ranges[index],), **common)
            )
        else:
            ordinal = index - masters + 1
            master = f"alphapulse-redis-master-{(ordinal - 1) % masters + 1}"
            plan.append(
                NodeTarget(f"alphapulse-redis-replica-{ordinal}", role="replica", master=master,
                           **common)
            )
    return plan


def wait_for_replica_links(nodes: RedisNodes, password: str | None = None) -> None:
    """Every replica reports master_link_status:up (initial sync done)."""

    def linked() -> bool:
        roles = [n.client(password).info("replication") for n in nodes]
        return all(r.get("master_link_status") == "up" for r in roles if r["role"] == "slave")

    wait_for("replica links up", linked)
