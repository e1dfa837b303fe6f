"""pytest fixtures for the end-to-end tier: the dev stack deployed on the real Docker engine."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.spec import build_spec
from components.topology import plan_cluster
from tests.support.deploy_harness import Deployment, remove_docker_objects
from tests.support.docker_engine import docker_available


@dataclass
class DeployedStack:
    deployment: Deployment
    outputs: dict[str, Any]
    outputs_file: Path

    @property
    def password(self) -> str:
        return self.outputs["password"]

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.outputs["nodes"] if n["name"] == name)


def require_docker() -> None:
    """Skip where no engine exists; in CI (CI=true) a missing engine is a failure."""
    reason = docker_available()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the e2e tier: {reason}")
    pytest.skip(reason)


def purge_leftovers(config: dict[str, str], stack: str) -> None:
    """Remove containers, network and volumes an interrupted earlier run left behind.

    Only names this stack's plan owns are touched.
    """
    raw = {k: v for k, v in config.items() if k != "password"}
    spec = build_spec(raw, stack, password_set=True)
    plan = plan_cluster(spec)
    containers = [n.name for n in plan.nodes] + [
        f"{spec.name_prefix}-redis-exporter", f"{spec.name_prefix}-prometheus"
    ]
    volumes = [n.volume_name for n in plan.nodes] + [f"{name}-secrets" for name in containers]
    remove_docker_objects(containers, spec.network_name, volumes)


def deploy_stack(tmp_dir: Path, **overrides: str) -> Iterator[DeployedStack]:
    """Deploy the dev stack for real; always tear it down afterwards."""
    require_docker()
    deployment = Deployment.for_stack("dev", **overrides)
    purge_leftovers(deployment.config, "dev")
    try:
        run = deployment.up()
        outputs_file = tmp_dir / "outputs.json"
        deployment.write_outputs(outputs_file)
        yield DeployedStack(deployment, json.loads(json.dumps(run.outputs)), outputs_file)
    finally:
        deployment.down()


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedStack]:
    yield from deploy_stack(tmp_path_factory.mktemp("deployed"))
