"""How the program adapts its containers to the Docker engine it deploys to (Pulumi mocks)."""

from __future__ import annotations

import pytest

import components.docker_host
from tests.support.program_runner import (
    SECRET_FILES_TYPE,
    ProgramRun,
    run_program,
    stack_config_file,
)

CONTAINER = "docker:index/container:Container"


def run_dev(monkeypatch: pytest.MonkeyPatch, swap_limit: bool, **config: str) -> ProgramRun:
    # __main__ asks the engine (docker info) whether it can limit swap; answer for it here.
    monkeypatch.setattr(components.docker_host, "supports_swap_limit", lambda _host: swap_limit)
    return run_program("dev", {**stack_config_file("dev"), **config})


def test_every_container_disables_swap_where_the_engine_can(monkeypatch):
    run = run_dev(monkeypatch, swap_limit=True)
    containers = run.of_type(CONTAINER)
    assert len(containers) == 7
    for container in containers:
        assert container.plain["memorySwap"] == container.plain["memory"], container.urn
        assert "memorySwap" not in container.ignore_changes, container.urn


def test_without_swap_accounting_memory_swap_is_neither_set_nor_diffed(monkeypatch):
    """Docker reports memorySwap -1 there whatever was asked: declaring it would make every
    preview show a change that no `up` can apply."""
    run = run_dev(monkeypatch, swap_limit=False)
    for container in run.of_type(CONTAINER):
        assert "memorySwap" not in container.plain, container.urn
        assert "memorySwap" in container.ignore_changes, container.urn


def test_node_containers_are_replaced_when_their_healthcheck_changes(monkeypatch):
    run = run_dev(monkeypatch, swap_limit=True)
    nodes = [c for c in run.of_type(CONTAINER) if "healthcheck" in c.plain]
    assert len(nodes) == 6
    assert all(c.replace_on_changes == ["healthcheck"] for c in nodes)


def test_secret_files_are_written_on_the_engine_of_docker_host(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://not-this-one:2375")
    run = run_dev(monkeypatch, swap_limit=True, **{"docker:host": "ssh://deploy@redis-host"})
    writers = run.of_type(SECRET_FILES_TYPE)
    assert len(writers) == 7
    assert {w.plain["docker_host"] for w in writers} == {"ssh://deploy@redis-host"}
