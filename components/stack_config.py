"""Read the whole project config bag, so unknown (mistyped) keys can be reported.

pulumi.Config only answers for keys you already know; a typo such as `mastres` would be
silently ignored. The runtime keeps every key in one map (set by the engine, or by mocks).
"""

import os
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from components.spec import PROJECT


def raw_project_config() -> dict[str, Any]:
    """Every `alphapulse-redis-cluster:<key>` value, keyed by <key>."""
    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    prefix = PROJECT + ":"
    return {key[len(prefix):]: value for key, value in merged.items() if key.startswith(prefix)}


def docker_host() -> str:
    """The Docker engine the stack's pulumi-docker provider talks to, resolved as it resolves it:
    `docker:host` in the stack config, else DOCKER_HOST, else the local socket. Whatever else
    the deploy runs against Docker (the secret-file writer) must use this same engine."""
    return (
        pulumi.Config("docker").get("host")
        or os.environ.get("DOCKER_HOST")
        or "unix:///var/run/docker.sock"
    )
