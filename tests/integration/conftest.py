"""Fixtures for integration tests against real redis-server processes on loopback."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest

from tests.support.redis_nodes import RedisNode, RedisNodes, redis_nodes_factory  # noqa: F401


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


@pytest.fixture
def six_nodes(redis_nodes_factory: Callable[..., RedisNodes]) -> RedisNodes:  # noqa: F811
    """Six fresh, empty, cluster-enabled nodes with a password."""
    return redis_nodes_factory(6)
