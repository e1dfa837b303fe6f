"""The Docker engine a stack deploys to, and what that engine can do.

The pulumi-docker provider resolves its engine from `docker:host` in the stack config, else
DOCKER_HOST, else the local socket. Everything else the deploy runs against Docker (the
secret-file writer, the engine checks below) resolves it the same way and talks to that engine
only, never to whatever docker context the shell happens to have.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pulumi

from clusterops.core.child_env import child_env

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
DOCKER_INFO_TIMEOUT_S = 30


def stack_docker_host() -> str:
    return (
        pulumi.Config("docker").get("host")
        or os.environ.get("DOCKER_HOST")
        or DEFAULT_DOCKER_HOST
    )


def docker_cli_env(docker_host: str) -> dict[str, str]:
    """The environment that points the docker CLI at `docker_host` and carries no secret: this
    process's environment holds the decrypted stack config (clusterops.core.child_env says why)."""
    return child_env({"DOCKER_HOST": docker_host})


def supports_swap_limit(docker_host: str) -> bool:
    """Whether the engine can limit swap (`docker info` SwapLimit). Where it cannot, Docker
    ignores a memory-swap setting and reports -1, so declaring one would make every preview
    show a change. When the engine cannot be asked, assume it can: the deploy itself then
    reports the unreachable engine."""
    docker = shutil.which("docker")
    if docker is None:
        return True
    try:
        done = subprocess.run(
            [docker, "info", "--format", "{{json .SwapLimit}}"],
            env=docker_cli_env(docker_host), capture_output=True, text=True,
            timeout=DOCKER_INFO_TIMEOUT_S, check=False,
        )
    except subprocess.TimeoutExpired:
        return True
    if done.returncode != 0:
        return True
    return json.loads(done.stdout.strip() or "true") is not False


def engine_problem(docker_host: str) -> str | None:
    """Why the engine at `docker_host` cannot be used (None: it answers `docker info`)."""
    docker = shutil.which("docker")
    if docker is None:
        return "the docker CLI is not installed on the deploying machine"
    try:
        done = subprocess.run(
            [docker, "info", "--format", "{{.ID}}"], env=docker_cli_env(docker_host),
            capture_output=True, text=True, timeout=DOCKER_INFO_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"no answer within {DOCKER_INFO_TIMEOUT_S} s"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return lines[-1] if lines else f"docker info exited with {done.returncode}"
    return None
