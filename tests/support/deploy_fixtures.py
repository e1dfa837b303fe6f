"""pytest fixtures for the end-to-end tier: a stack deployed by the real `pulumi up` on the real
Docker engine, with images built here from Debian's binaries (no registry exists here)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.spec import build_spec
from components.topology import plan_cluster
from tests.support.images import docker_available, ensure_images
from tests.support.pulumi_cli import PulumiStack, new_stack, pulumi_missing


@dataclass
class DeployedStack:
    stack: PulumiStack
    outputs: dict[str, Any]
    outputs_file: Path

    @property
    def password(self) -> str:
        return self.outputs["password"]

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.outputs["nodes"] if n["name"] == name)

    def reload_outputs(self) -> None:
        """Read the outputs again after an `up` (and rewrite the outputs file)."""
        self.stack.write_outputs(self.outputs_file)
        self.outputs = json.loads(self.outputs_file.read_text())


def _skip_or_fail(reason: str | None) -> None:
    """Skip where a tool is missing; in CI (CI=true) a missing tool is a failure: CI installs
    and starts everything (scripts/setup-test-env.sh, scripts/install-pulumi.sh)."""
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the e2e tier: {reason}")
    pytest.skip(reason)


def require_docker() -> None:
    _skip_or_fail(docker_available())


def require_docker_and_pulumi() -> None:
    _skip_or_fail(docker_available() or pulumi_missing())


def local_image_config() -> dict[str, str]:
    """Point the stack at images built here from Debian's binaries (no registry exists)."""
    images = ensure_images()
    return {
        "redisImage": images["redis"],
        "exporterImage": images["exporter"],
        "prometheusImage": images["prometheus"],
        "pullImages": "false",
    }


def stack_file_config(stack_file: str) -> dict[str, str]:
    from tests.support.program_runner import stack_config_file

    return stack_config_file(stack_file)


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


def remove_docker_objects(
    containers: list[str], network: str, volumes: list[str] | None = None
) -> None:
    """Force-remove containers (with their anonymous volumes), a network and named volumes;
    whatever does not exist is skipped."""
    subprocess.run(["docker", "rm", "-f", "-v", *containers], capture_output=True, check=False)
    subprocess.run(["docker", "network", "rm", network], capture_output=True, check=False)
    if volumes:
        subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True,
                       check=False)


def deploy_stack(tmp_dir: Path, stack: str = "dev", **overrides: str) -> Iterator[DeployedStack]:
    """`pulumi up` of a fresh copy of the `stack` stack; always destroyed afterwards."""
    require_docker_and_pulumi()
    config = {**local_image_config(), **overrides}
    purge_leftovers({**stack_file_config(stack), **config}, stack)
    handle = new_stack(tmp_dir, stack, config)
    try:
        handle.up()
        outputs_file = tmp_dir / "outputs.json"
        handle.write_outputs(outputs_file)
        yield DeployedStack(handle, json.loads(outputs_file.read_text()), outputs_file)
    finally:
        handle.destroy(check=False)
        handle.remove()
        purge_leftovers({**stack_file_config(stack), **config}, stack)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedStack]:
    yield from deploy_stack(tmp_path_factory.mktemp("deployed"))
