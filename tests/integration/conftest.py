"""Fixtures for integration tests against real redis-server processes on loopback."""

import shutil

import pytest

from tests.support.redis_nodes import redis_nodes_factory  # noqa: F401  (pytest fixture)


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
