"""Valkey deployed by the real `pulumi up` on real Docker, TLS and ACL users on: `engine: valkey`
with a Valkey 8.0.1 image built from the vendored sources that has only the valkey-* names
(no redis-cli link), the way an operator would run the official valkey image.

What it proves: the nodes run valkey-server, their healthchecks (valkey-cli) pass, the cluster
serves every slot over TLS to the application user, health and the exporter work (the alert
rules' metric names), a master's failover loses no acknowledged write; switching the live
stack's engine is refused at preview; and a Valkey image under `engine: redis` is refused
before the cluster forms, naming both fixes.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterops.client import from_stack_outputs
from clusterops.core.model import HASH_SLOTS
from components.redis_conf import PASSWORD_FILE_PATH
from tests.e2e.test_tls_and_acl import (
    admin_client,
    assert_health_and_exporter_over_tls,
    drill_recovery,
)
from tests.support.deploy_fixtures import (
    DeployedStack,
    deploy_stack,
    local_image_config,
    purge_leftovers,
    require_docker_and_pulumi,
    stack_file_config,
)
from tests.support.every_slot import written_and_read_back
from tests.support.images import ensure_engine_image
from tests.support.pulumi_cli import PulumiCommandError, new_stack
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VALKEY_STACK = {"namePrefix": "apvalkey", "networkName": "apvalkey_redis-cluster",
                "subnet": "172.31.86.0/24", "basePort": "7601", "exporterPort": "9961",
                "prometheusPort": "9996", "engine": "valkey", "tls": "true", "acl": "true"}
MISMATCH_STACK = {"namePrefix": "apmismatch", "networkName": "apmismatch_redis-cluster",
                  "subnet": "172.31.87.0/24", "basePort": "7651", "exporterPort": "9966",
                  "prometheusPort": "9997"}


@pytest.fixture(scope="module")
def valkey_image() -> str:
    require_docker_and_pulumi()
    return ensure_engine_image("valkey-8.0")


@pytest.fixture(scope="module")
def valkey_stack(tmp_path_factory: pytest.TempPathFactory,
                 valkey_image: str) -> Iterator[DeployedStack]:
    yield from deploy_stack(tmp_path_factory.mktemp("valkey"), "dev", **VALKEY_STACK,
                            redisImage=valkey_image)


def container_health(names: list[str]) -> dict[str, str]:
    inspected = json.loads(subprocess.run(["docker", "inspect", *names], capture_output=True,
                                          text=True, check=True).stdout)
    return {c["Name"].lstrip("/"): c["State"].get("Health", {}).get("Status", "none")
            for c in inspected}


def test_the_nodes_run_valkey_and_their_valkey_cli_healthchecks_pass(
        valkey_stack: DeployedStack):
    outputs = valkey_stack.outputs
    assert outputs["cluster_state"] == "ok"
    for node in outputs["nodes"]:
        with admin_client(valkey_stack, node) as admin:
            server = admin.execute_command("INFO server").decode()
        assert "server_name:valkey" in server and "valkey_version:8.0.1" in server
    names = [n["container_name"] for n in outputs["nodes"]]
    wait_until("every node container healthy (valkey-cli ping)",
               lambda: (set(container_health(names).values()) == {"healthy"},
                        container_health(names)), 60, 1)
    assert valkey_stack.stack.changes() == []  # the second preview is quiet


def test_every_slot_health_and_the_exporter_work_on_valkey(valkey_stack: DeployedStack):
    client = from_stack_outputs(valkey_stack.outputs, "network")
    assert written_and_read_back(client, "valkey") == HASH_SLOTS
    assert_health_and_exporter_over_tls(valkey_stack)


def test_a_valkey_failover_keeps_acknowledged_writes_and_the_engine_stays(
        valkey_stack: DeployedStack):
    recovery_s = drill_recovery(valkey_stack)
    print(f"\nvalkey 8.0.1 on Docker (TLS + ACL users): failover of master-1 recovered in "
          f"{recovery_s:.2f} s, 0 acknowledged writes lost")
    assert recovery_s < 5.0
    handle = valkey_stack.stack
    handle.set_config({"engine": "redis"})
    try:
        refused = handle.run("preview", "--stack", handle.name, check=False)
        text = refused.stdout + refused.stderr
        assert refused.returncode != 0, text[-2000:]
        assert "this cluster runs valkey and the stack now asks for redis" in text, text[-3000:]
        assert "clusterops backup" in text
    finally:
        handle.set_config({"engine": "valkey"})


def test_a_valkey_image_under_engine_redis_is_refused_before_the_cluster_forms(
        tmp_path: Path):
    """A Valkey image with the redis-* links (as Valkey's `make install` makes them) starts
    under `engine: redis`; the server it runs says what it is, and nothing is formed."""
    image = ensure_engine_image("valkey-8.0-redis-links")
    config = {**local_image_config(), **MISMATCH_STACK, "redisImage": image}
    purge_leftovers({**stack_file_config("dev"), **config}, "dev")
    handle = new_stack(tmp_path, "dev", config)
    try:
        with pytest.raises(PulumiCommandError) as failed:
            handle.up()
        text = str(failed.value)
        assert "runs valkey 8.0.1, but the stack's engine is 'redis'" in text, text[-3000:]
        assert "`engine: valkey`" in text and "`redisImage`" in text
        # Nothing was formed: every node still knows only itself and serves no slot.
        for name in (f"apmismatch-redis-{role}-{i}" for role in ("master", "replica")
                     for i in (1, 2, 3)):
            info = subprocess.run(
                ["docker", "exec", name, "sh", "-c", "valkey-cli --no-auth-warning --askpass "
                 f"cluster info < {PASSWORD_FILE_PATH}"],
                capture_output=True, text=True, check=False).stdout
            assert "cluster_known_nodes:1" in info and "cluster_slots_assigned:0" in info, (
                name, info)
    finally:
        handle.destroy(check=False)
        handle.remove()
        purge_leftovers({**stack_file_config("dev"), **config}, "dev")
