"""examples/app-stack under Pulumi's mocks: what it declares from the cluster stack's outputs.

The StackReference returns the outputs the real cluster program produces under mocks (dev),
so the app is checked against the contract as it is, not against a hand-written copy.
tests/e2e/test_app_stack.py deploys both stacks for real.
"""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from typing import Any

import pulumi
import pytest
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from tests.support.program_runner import (
    PROJECT_ROOT,
    SECRET_SIG,
    SIG_KEY,
    RecordedResource,
    _RecordingMonitor,
    run_program,
    stack_config_file,
)

APP = PROJECT_ROOT / "examples" / "app-stack"
APP_PROJECT = "alphapulse-slot-check-app"
CLUSTER_STACK = "organization/alphapulse-redis-cluster/dev"
IMAGE = "registry.example/team/python-redis:3.11-5.0"


def cluster_outputs() -> dict[str, Any]:
    return run_program("dev", stack_config_file("dev")).outputs


class _StackReferenceMocks(pulumi.runtime.Mocks):
    """A StackReference is a *read* of the referenced stack: answer it with `outputs`."""

    def __init__(self, outputs: dict[str, Any]) -> None:
        self.outputs = outputs

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        if args.typ == "pulumi:pulumi:StackReference":
            assert args.resource_id == CLUSTER_STACK, args.resource_id
            return args.resource_id, {"name": CLUSTER_STACK, "outputs": self.outputs,
                                      "secretOutputNames": ["password"]}
        return "", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs):
        raise AssertionError(f"the app made an unexpected invoke: {args.token}")


def run_app(outputs: dict[str, Any]) -> list[RecordedResource]:
    monitor = _RecordingMonitor(lambda resource: dict(resource.inputs))
    monitor.mocks = _StackReferenceMocks(outputs)
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(monitor.mocks, project=APP_PROJECT, stack="dev", preview=False,
                             monitor=monitor)
    pulumi.runtime.set_all_config({f"{APP_PROJECT}:clusterStack": CLUSTER_STACK,
                                   f"{APP_PROJECT}:appImage": IMAGE}, [])
    _sync_await(run_pulumi_func(lambda: runpy.run_path(str(APP / "__main__.py"),
                                                       run_name="__main__")))
    return list(monitor.recorded)


@pytest.fixture(scope="module")
def outputs() -> dict[str, Any]:
    return cluster_outputs()


@pytest.fixture(scope="module")
def container(outputs: dict[str, Any]) -> RecordedResource:
    resources = run_app(outputs)
    containers = [r for r in resources if r.type == "docker:index/container:Container"]
    assert len(containers) == 1, [r.type for r in resources]
    return containers[0]


def uploads(container: RecordedResource) -> dict[str, Any]:
    return {u["file"]: u["content"] for u in container.plain["uploads"]}


def test_the_app_joins_the_clusters_network_with_the_configured_image(container, outputs):
    plain = container.plain
    assert plain["networksAdvanced"] == [{"name": outputs["network_name"]}]
    assert plain["image"] == IMAGE
    assert plain["name"] == f"{outputs['cluster_name']}-slot-check"
    assert plain["command"] == ["python3", "/app/slot_check.py", "/app/cluster.json"]
    assert plain["mustRun"] is False and plain["restart"] == "no"


def test_the_connection_file_is_a_secret_holding_only_what_the_helper_reads(container, outputs):
    # One secret upload makes the whole `uploads` input secret: the state encrypts it.
    sent = container.inputs["uploads"]
    assert isinstance(sent, dict) and sent.get(SIG_KEY) == SECRET_SIG, type(sent)
    connection = json.loads(uploads(container)["/app/cluster.json"])
    assert connection["password"] == outputs["password"]
    assert set(connection) == {"outputs_version", "seed_endpoints", "host_seed_endpoints",
                               "nodes", "client_settings", "password", "tls_ca_cert",
                               "username", "target"}


def test_the_password_is_nowhere_else_in_the_container(container, outputs):
    inputs = dict(container.plain)
    inputs["uploads"] = [u for u in inputs["uploads"] if u["file"] != "/app/cluster.json"]
    assert outputs["password"] not in json.dumps(inputs)


def test_the_app_ships_the_projects_client_helper(container):
    helper = uploads(container)["/app/alphapulse_client.py"]
    assert helper == (PROJECT_ROOT / "clusterops" / "client.py").read_text()


def test_another_outputs_version_is_refused_with_the_fix():
    # In a child process: a program that fails inside an apply leaves Pulumi's runtime state
    # (pending tasks) behind, which would fail the next mocked run in this process.
    script = ("from tests.unit.test_app_stack_mocks import cluster_outputs, run_app\n"
              "run_app({**cluster_outputs(), 'outputs_version': 5})\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert "outputs_version 5; this app understands 3, 4" in done.stderr, done.stderr[-2000:]


def test_a_kubernetes_cluster_is_refused_with_the_fix():
    # A child process, for the same reason as above.
    script = ("from tests.unit.test_app_stack_mocks import cluster_outputs, run_app\n"
              "run_app({**cluster_outputs(), 'target': 'kubernetes'})\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert "this app runs on the cluster's Docker network" in done.stderr, done.stderr[-2000:]
