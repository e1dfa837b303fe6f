"""Fixtures for integration tests against real redis-server processes on loopback."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from typing import TypeVar

import pytest
import redis

from clusterops.model import NodeTarget, split_slots
from clusterops.poll import Deadline, poll
from tests.support.redis_nodes import RedisNode, RedisNodes, redis_nodes_factory  # noqa: F401

T = TypeVar("T")


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


# What a probe may raise while the thing it waits for is on its way (a node restarting, an
# HTTP endpoint not up yet): remembered as "last seen", never a test error on its own.
TRANSIENT_ERRORS = (redis.RedisError, OSError, ValueError, KeyError)


def wait_until(
    what: str, probe: Callable[[], tuple[bool, T]], timeout_s: float = 15.0,
    interval_s: float = 0.05,
) -> T:
    """Poll ``probe`` (returns ``(done, what it saw)``) with clusterops' polling helper; fail
    the test with the last thing seen when the deadline passes."""

    def guarded() -> tuple[bool, object]:
        try:
            return probe()
        except TRANSIENT_ERRORS as exc:
            return False, f"{type(exc).__name__}: {exc}"

    done, seen = poll(guarded, Deadline.after(timeout_s), interval_s)
    if not done:
        pytest.fail(f"timed out after {timeout_s}s waiting for {what}; last seen: {seen!r}")
    return seen  # type: ignore[return-value]


def wait_for(
    what: str, probe: Callable[[], object], timeout_s: float = 15.0, interval_s: float = 0.05
) -> object:
    """Poll ``probe`` until it returns a truthy value (see :func:`wait_until`)."""

    def truthy() -> tuple[bool, object]:
        value = probe()
        return bool(value), value

    return wait_until(what, truthy, timeout_s, interval_s)


def wait_for_replica_links(nodes: RedisNodes, password: str | None = None) -> None:
    """Every replica reports master_link_status:up (initial sync done)."""

    def linked() -> bool:
        roles = [n.client(password).info("replication") for n in nodes]
        return all(r.get("master_link_status") == "up" for r in roles if r["role"] == "slave")

    wait_for("replica links up", linked)
