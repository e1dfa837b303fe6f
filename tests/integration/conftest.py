"""Fixtures for integration tests against real redis-server processes on loopback."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence

import pytest

from clusterops.core.model import NodeTarget, split_slots
from tests.support.redis_nodes import RedisNode, RedisNodes, redis_nodes_factory  # noqa: F401
from tests.support.waiting import wait_for


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test in this directory talks to real servers: mark them so `-m integration` selects
    # them, and skip with a clear reason where the Debian redis-server package is missing.
    missing = [tool for tool in ("redis-server", "redis-cli") if shutil.which(tool) is None]
    for item in items:
        if "tests/integration/" not in str(item.fspath).replace("\\", "/"):
            continue
        item.add_marker(pytest.mark.integration)
        if missing:
            item.add_marker(pytest.mark.skip(reason=f"not installed: {', '.join(missing)}"))


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


@pytest.fixture
def six_nodes(redis_nodes_factory: Callable[..., RedisNodes]) -> RedisNodes:  # noqa: F811
    """Six fresh, empty, cluster-enabled nodes with a password."""
    return redis_nodes_factory(6)


def wait_for_replica_links(nodes: RedisNodes, password: str | None = None) -> None:
    """Every replica reports master_link_status:up (initial sync done)."""

    def linked() -> bool:
        roles = [n.client(password).info("replication") for n in nodes]
        return all(r.get("master_link_status") == "up" for r in roles if r["role"] == "slave")

    wait_for("replica links up", linked)
