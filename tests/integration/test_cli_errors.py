"""The CLI's error and exit-code policy against real servers (README, *Exit codes*).

0 healthy / done; 1 a check failed or data is at risk; 2 usage, target or authentication
error. Every error is one line on stderr from the CLI, never a traceback, never a password.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.pulumi_cli import PROJECT_ROOT
from tests.support.redis_nodes import RedisNodes

pytestmark = pytest.mark.integration
CLI_TIMEOUT_S = 120.0
WRONG_PASSWORD = "not-the-right-one-7c2e"


def clusterops(*args: str, password: str) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if k != "REDIS_PASSWORD"},
           "REDIS_PASSWORD": password}
    return subprocess.run(
        [sys.executable, "-m", "clusterops", *args], cwd=PROJECT_ROOT, env=env,
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, stdin=subprocess.DEVNULL,
        check=False,
    )


def node_flags(nodes: RedisNodes) -> list[str]:
    return [arg for node in nodes for arg in ("--node", f"{node.name}={node.address}")]


def assert_clean_error(done: subprocess.CompletedProcess[str], command: str, *secrets: str):
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    prefix = f"python -m clusterops {command}: error: "
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith(prefix), output
    for secret in secrets:
        assert secret not in output


def test_backup_with_a_wrong_password_is_an_auth_error_not_a_missing_master(
    redis_nodes_factory, tmp_path: Path
) -> None:
    nodes: RedisNodes = redis_nodes_factory(3)
    dest = tmp_path / "backups"
    done = clusterops("backup", *node_flags(nodes), "--dest", str(dest), password=WRONG_PASSWORD)
    assert done.returncode == 2, done.stdout + done.stderr
    assert_clean_error(done, "backup", WRONG_PASSWORD, nodes.password)
    assert "password was refused" in done.stderr, done.stderr
    assert "no reachable master" not in done.stderr, done.stderr
    assert not dest.exists()  # refused before any snapshot was started


def test_drill_on_a_cluster_that_is_not_ready_exits_1(redis_nodes_factory) -> None:
    # Three cluster-enabled nodes that never met: cluster_state is fail on each of them.
    nodes: RedisNodes = redis_nodes_factory(3)
    control = shlex.join([sys.executable, "-c", "raise SystemExit(0)"])
    done = clusterops("drill", *node_flags(nodes), "--master", nodes[0].name,
                      "--control-command", control, "--ready-timeout", "0.5",
                      password=nodes.password)
    assert done.returncode == 1, done.stdout + done.stderr
    assert_clean_error(done, "drill", nodes.password)
    assert "cluster not ready" in done.stderr and "cluster_state:fail" in done.stderr


def test_drill_with_a_wrong_password_exits_2_at_once(redis_nodes_factory) -> None:
    nodes: RedisNodes = redis_nodes_factory(3)
    control = shlex.join([sys.executable, "-c", "raise SystemExit(0)"])
    started = time.monotonic()
    done = clusterops("drill", *node_flags(nodes), "--master", nodes[0].name,
                      "--control-command", control, "--json", password=WRONG_PASSWORD)
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr
    assert_clean_error(done, "drill", WRONG_PASSWORD, nodes.password)
    assert "password was refused" in done.stderr, done.stderr
    # Waiting cannot fix a password: no polling until the 60 s readiness deadline.
    assert elapsed < 30, f"took {elapsed:.1f}s"
    assert '"error": "' in done.stdout and '"ok": false' in done.stdout, done.stdout


def test_health_survives_startup_nodes_that_disagree_on_the_slot_map(
    redis_nodes_factory,
) -> None:
    # Two lone nodes that both claim slots 0-100, neither covering every slot (so redis-py asks
    # both, in either order): its cluster client refuses to start with RedisClusterException
    # (not a RedisError). health must report that, not crash.
    nodes: RedisNodes = redis_nodes_factory(2)
    for node, last_slot in zip(nodes, (100, 200), strict=True):
        with node.client() as client:
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, last_slot)
    done = clusterops("health", *node_flags(nodes), "--json", password=nodes.password)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stderr == "", done.stderr
    assert "could not agree" in done.stdout, done.stdout
    assert '"check": "write_read"' in done.stdout
