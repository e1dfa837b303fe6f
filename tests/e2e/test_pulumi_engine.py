"""What only the real Pulumi engine shows: unknowns in a first preview, which Docker engine each
part of the deploy talks to, and what `destroy` does to a prod stack's protected data."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest
from redis.cluster import RedisCluster

from clusterops.client import from_stack_outputs
from tests.support.child_recorder import recorded_calls, recording_wrapper
from tests.support.deploy_fixtures import (
    local_image_config,
    purge_leftovers,
    require_docker_and_pulumi,
    stack_file_config,
)
from tests.support.pulumi_cli import PASSPHRASE, PulumiStack, new_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NODES = 6
# Per node: data volume, secrets volume, SecretFiles, NodeHandover, container. Plus the
# network, the exporter's secrets volume + SecretFiles + container, the bootstrap, the
# generated password (dev only), the component and the stack itself. (With pullImages=false,
# as here, no RemoteImage: the images are already on the engine.)
DEV_RESOURCES = NODES * 5 + 1 + 3 + 1 + 1 + 2


def fresh(tmp_path: Path, stack: str, **config: str) -> PulumiStack:
    require_docker_and_pulumi()
    merged = {**local_image_config(), **config}
    purge_leftovers({**stack_file_config(stack), **merged}, stack)
    return new_stack(tmp_path, stack, merged)


def docker_names(kind: str, label: str) -> list[str]:
    """This stack's docker objects with `label` (namePrefix `alphapulse`): other stacks on the
    same engine (other test runs, other prefixes) are not ours to count."""
    command = {"container": ["ps", "-a"], "volume": ["volume", "ls"]}[kind]
    fmt = "{{.Names}}" if kind == "container" else "{{.Name}}"
    names = subprocess.run(["docker", *command, "--filter", f"label={label}", "--format", fmt],
                           capture_output=True, text=True, check=True).stdout.split()
    return [name for name in names if name.startswith("alphapulse-")]


def test_first_preview_of_a_fresh_dev_stack_lists_every_resource(tmp_path: Path):
    """The generated password is unknown in this preview, so is every secret file's content:
    the preview must still succeed and plan every resource (`pulumi up` previews first)."""
    stack = fresh(tmp_path, "dev")
    plan = stack.preview()
    ops = [step["op"] for step in plan["steps"]]
    assert ops == ["create"] * DEV_RESOURCES, plan.get("diagnostics", plan)
    types = sorted(step["urn"].split("::")[-2].rsplit("$", 1)[-1] for step in plan["steps"])
    assert types.count("docker:index/container:Container") == NODES + 1
    assert types.count("pulumi-python:dynamic/alphapulse:SecretFiles") == NODES + 1
    assert types.count("random:index/randomPassword:RandomPassword") == 1
    # Nothing was created by previewing.
    assert docker_names("container", "com.alphapulse.cluster=alphapulse") == []


def test_docker_children_reach_the_named_engine_and_never_see_a_secret(tmp_path: Path):
    """Every `docker` the deploy starts (the program's engine checks, the secret-file writer in
    the dynamic provider) is recorded with its argv and environment.

    Engine: docker:host in the stack config decides it for everything. With an ambient
    DOCKER_HOST pointing nowhere, a deploy that wrote the secret files with the shell's docker
    settings would fail; this one must form the cluster.
    Secrets: Pulumi's language host hands the program the decrypted config (PULUMI_CONFIG), and
    the CLI's environment holds the passphrase; a child that inherits either carries the
    password in /proc/<pid>/environ."""
    password = f"e2e-{secrets.token_hex(16)}"
    stack = fresh(tmp_path, "dev")
    stack.set_config({"password": password}, secret=True)
    stack.set_config({"docker:host": "unix:///var/run/docker.sock"})
    stack.env["DOCKER_HOST"] = f"unix://{tmp_path}/no-engine-here.sock"
    recorder = tmp_path / "recorded"
    stack.env["PATH"] = f"{recording_wrapper(recorder, 'docker')}:{stack.env['PATH']}"
    try:
        outputs = stack.up()
        assert outputs["cluster_state"] == "ok"
        stack.run("preview", "--stack", stack.name, "--expect-no-changes")
    finally:
        stack.destroy(check=False)
        purge_leftovers({**stack_file_config("dev"), **local_image_config()}, "dev")

    calls = recorded_calls(recorder)
    # The program asks the engine what it supports; the provider writes 7 volumes' files.
    assert any(call.argv[1:2] == ["info"] for call in calls), [str(c) for c in calls]
    assert sum(call.argv[1:2] == ["run"] for call in calls) >= NODES + 1, [str(c) for c in calls]
    for call in calls:
        assert call.environ.get("DOCKER_HOST") == "unix:///var/run/docker.sock", str(call)
        leaked = sorted(name for name, value in call.environ.items()
                        if password in value or PASSPHRASE in value
                        or name.startswith("PULUMI_CONFIG"))
        assert not leaked, f"{call} carries secrets in {leaked}"
        assert not any(password in arg for arg in call.argv), str(call)


def cluster_client(outputs: dict) -> RedisCluster:
    # The outputs' own client: prod speaks only TLS, and the outputs carry its CA.
    return from_stack_outputs(outputs, "network", socket_timeout=5)


def test_prod_destroy_stops_at_protected_data_and_keeps_it(tmp_path: Path):
    """prod: a required secret password, data volumes protected and retained.

    What really happens (written down in README): `pulumi destroy` deletes everything it may
    (containers, network, secrets volumes: the cluster stops), then fails on each protected
    data volume; the data stays. Unprotecting the volumes (`pulumi state unprotect`) lets
    destroy finish, and retainOnDelete keeps the volumes on the Docker host: a new prod stack
    with the same password adopts them, data and cluster identity included."""
    password = secrets.token_urlsafe(24)
    stack = fresh(tmp_path / "first", "prod")
    try:
        check_prod_destroy(stack, password, tmp_path)
    finally:
        # Whatever failed above, leave no prod container, network or volume on the engine.
        purge_leftovers({**stack_file_config("prod"), **local_image_config()}, "prod")


def check_prod_destroy(stack: PulumiStack, password: str, tmp_path: Path) -> None:
    stack.set_config({"password": password}, secret=True)
    outputs = stack.up()
    assert outputs["cluster_state"] == "ok"
    assert "BEGIN CERTIFICATE" in outputs["tls_ca_cert"]  # prod: TLS on by default
    assert outputs["admin_username"] == "admin"  # ...and ACL users
    client = cluster_client(outputs)
    for i in range(200):
        client.set(f"prod:{i}", i)
    client.close()
    state = stack.state()["deployment"]
    data_volumes = [r for r in state["resources"]
                    if r["type"] == "docker:index/volume:Volume" and r["urn"].endswith("-data")]
    assert len(data_volumes) == NODES
    assert all(r.get("protect") and r.get("retainOnDelete") for r in data_volumes)
    # The password is in the state only encrypted.
    assert outputs["password"] not in json.dumps(stack.state())

    refused = stack.destroy(check=False)
    assert refused.returncode != 0
    assert "protected" in refused.stdout + refused.stderr, refused.stdout[-3000:]
    print("prod destroy with protected volumes:\n" + refused.stdout[-2000:])
    volumes_left = docker_names("volume", "com.alphapulse.node")
    assert len(volumes_left) == NODES, volumes_left
    # Everything unprotected is gone already: the cluster is down.
    assert docker_names("container", "com.alphapulse.cluster=alphapulse") == []

    for volume in data_volumes:
        stack.run("state", "unprotect", "--stack", stack.name, "--yes", volume["urn"])
    stack.destroy()
    assert docker_names("container", "com.alphapulse.cluster=alphapulse") == []
    kept = docker_names("volume", "com.alphapulse.node")
    assert sorted(kept) == sorted(
        f"alphapulse-redis-{role}-{i}-data" for role in ("master", "replica") for i in (1, 2, 3)
    ), kept
    assert docker_names("volume", "com.alphapulse.secrets") == []

    again = new_stack(tmp_path / "second", "prod", {**local_image_config()},
                      secret_config={"password": password})
    try:
        adopted = again.up()
        assert adopted["node_ids"] == outputs["node_ids"]
        client = cluster_client(adopted)
        assert [client.get(f"prod:{i}") for i in range(200)] == [
            str(i).encode() for i in range(200)]
        client.close()
    finally:
        for resource in again.state()["deployment"].get("resources") or []:
            if resource.get("protect"):
                again.run("state", "unprotect", "--stack", "prod", "--yes", resource["urn"])
        again.destroy(check=False)
