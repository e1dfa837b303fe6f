"""Fixtures of the e2e tier: a Docker engine that answers, the local images, names and subnets.

Without a Docker engine the e2e tests skip with the reason; under CI (env CI set) they fail
instead, because CI starts dockerd (scripts/setup-test-env.sh) and must not pass by skipping.
"""

from __future__ import annotations

import ipaddress
import json
import random
import secrets
import subprocess
from collections.abc import Callable

import pytest

from tests.support.deploy_fixtures import require_docker
from tests.support.images import ensure_images

# Test networks live here, away from the stack's default 172.28.0.0/24.
TEST_SUBNET_POOL = ipaddress.ip_network("172.29.0.0/16")


@pytest.fixture(scope="session")
def docker_engine_ready() -> None:
    """The docker CLI and engine answer (skip or, in CI, fail otherwise)."""
    require_docker()


@pytest.fixture(scope="session")
def local_images(docker_engine_ready: None) -> dict[str, str]:
    """{"redis"|"exporter"|"prometheus": image ref}, built from Debian's binaries when missing."""
    return ensure_images()


@pytest.fixture
def unique_name() -> str:
    """A prefix for docker object names no other test run uses."""
    return f"e2e-{secrets.token_hex(4)}"


def used_subnets() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    ids = subprocess.run(
        ["docker", "network", "ls", "--quiet"], capture_output=True, text=True, check=True
    ).stdout.split()
    if not ids:
        return []
    networks = json.loads(
        subprocess.run(
            ["docker", "network", "inspect", *ids], capture_output=True, text=True, check=False
        ).stdout
        or "[]"
    )
    return [
        ipaddress.ip_network(config["Subnet"])
        for network in networks
        for config in ((network.get("IPAM") or {}).get("Config") or [])
        if config.get("Subnet")
    ]


def pick_free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 172.29.0.0/16 that no docker network uses now (picked at random among them)."""
    used = used_subnets()
    free = [
        subnet
        for subnet in TEST_SUBNET_POOL.subnets(new_prefix=24)
        if not any(subnet.overlaps(other) for other in used if other.version == 4)
    ]
    if not free:
        pytest.fail(f"every /24 of {TEST_SUBNET_POOL} is used by a docker network")
    return random.choice(free)


@pytest.fixture(scope="session")
def free_subnet(docker_engine_ready: None) -> Callable[[], ipaddress.IPv4Network]:
    """Call it for a /24 in 172.29.0.0/16 that no docker network uses at that moment."""
    return pick_free_subnet


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; with check, fail the test with docker's own error."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result
