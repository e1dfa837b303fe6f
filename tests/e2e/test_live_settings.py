"""Settings and upgrades on a deployed stack, through the real engine and the real Docker engine.

- A live setting (maxmemory): the preview shows which settings change and that no container
  is replaced; `pulumi up` applies it with CONFIG SET on every node under a live writer (SET +
  WAIT 1 across all slots): same containers, new value live everywhere, kept by a restart, no
  acknowledged write lost, and the writer's error window printed.
- A change a node only reads at start (the image) still replaces the node containers, keeping
  data and identities (the volumes).

The stack uses its own names, subnet and ports, so it never collides with the default dev
stack other runs deploy on the same Docker engine.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from components.redis_conf import REDIS_CONF_PATH
from tests.support.deploy_fixtures import DeployedStack, deploy_stack
from tests.support.live_writer import LiveWriter, lost_acknowledged
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
# Away from CI's dev stack (172.28.0.0/24, 7001.., 9121) and other engineers' stacks.
OVERRIDES = {"namePrefix": "apcfg", "subnet": "172.31.81.0/24", "basePort": "7401",
             "exporterPort": "9421", "prometheusPort": "9490"}
MIB = 1024**2
CONTAINER = "docker:index/container:Container"


RETAGGED: list[str] = []  # image tags made by these tests, removed after the stack is gone


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedStack]:
    try:
        yield from deploy_stack(tmp_path_factory.mktemp("live-settings"), "dev", **OVERRIDES)
    finally:
        for tag in RETAGGED:
            subprocess.run(["docker", "rmi", tag], capture_output=True, check=False)


def new_image_tag(stack: DeployedStack) -> tuple[str, str]:
    """(the stack's image, the same image under a new name): a new image as far as
    pulumi-docker can tell (the name is the container's `image` input), nothing to build."""
    image = stack.stack.run("config", "get", "--stack", stack.stack.name,
                            "alphapulse-redis-cluster:redisImage").stdout.strip()
    retagged = f"{image.rsplit(':', 1)[0]}:retag-{secrets.token_hex(3)}"
    subprocess.run(["docker", "tag", image, retagged], check=True)
    RETAGGED.append(retagged)
    return image, retagged


def client(stack: DeployedStack, node: dict[str, Any]) -> redis.Redis:
    return redis.Redis(host=node["ip"], port=node["port"], password=stack.password,
                       socket_timeout=1, socket_connect_timeout=1, decode_responses=True)


SETTLE_S = 60.0  # waits for nodes and links after a change


def all_ok(stack: DeployedStack) -> None:
    def probe() -> tuple[bool, dict[str, str]]:
        states = {n["name"]: client(stack, n).cluster("INFO")["cluster_state"]
                  for n in stack.outputs["nodes"]}
        return all(s == "ok" for s in states.values()), states

    wait_until("cluster_state:ok on every node", probe, SETTLE_S, 0.1)


def replicas_linked(stack: DeployedStack) -> None:
    def probe() -> tuple[bool, dict[str, str]]:
        links = {n["name"]: client(stack, n).info("replication").get("master_link_status", "")
                 for n in stack.outputs["nodes"]}
        links = {k: v for k, v in links.items() if v}
        return len(links) == 3 and all(v == "up" for v in links.values()), links

    wait_until("every replica's master link up", probe, SETTLE_S, 0.1)


def container_ids(stack: DeployedStack) -> dict[str, str]:
    names = [n["container_name"] for n in stack.outputs["nodes"]]
    inspected = json.loads(subprocess.run(["docker", "inspect", *names], capture_output=True,
                                          text=True, check=True).stdout)
    return {c["Name"].lstrip("/"): c["Id"] for c in inspected}


def node_ids(stack: DeployedStack) -> dict[str, str]:
    return {n["name"]: client(stack, n).execute_command("CLUSTER", "MYID")
            for n in stack.outputs["nodes"]}


def preview_steps(stack: DeployedStack) -> list[dict[str, Any]]:
    return [s for s in stack.stack.preview().get("steps", []) if s["op"] != "same"]


def short(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def writer_for(stack: DeployedStack) -> LiveWriter:
    seeds = [(n["ip"], n["port"]) for n in stack.outputs["nodes"] if n["role"] == "master"]
    return LiveWriter(seeds, stack.password, secrets.token_hex(4))


def test_maxmemory_changes_live_under_traffic_without_replacing_a_container(
        stack: DeployedStack) -> None:
    all_ok(stack)
    replicas_linked(stack)
    ids_before, containers_before = node_ids(stack), container_ids(stack)
    full_syncs = {n["name"]: client(stack, n).info("stats")["sync_full"]
                  for n in stack.outputs["nodes"]}
    stack.stack.set_config({"maxmemory": "300mb"})

    # The preview: which settings change, and no container replaced.
    steps = preview_steps(stack)
    assert not [s for s in steps if s["op"] in ("replace", "create-replacement",
                                                "delete-replaced", "create", "delete")], steps
    (bootstrap,) = [s for s in steps if short(s["urn"]) == "redis-cluster-bootstrap"]
    assert bootstrap["op"] == "update"
    old, new = bootstrap["oldState"]["outputs"]["settings"], bootstrap["newState"]["inputs"][
        "settings"]
    assert {k: (old[k], new[k]) for k in new if old[k] != new[k]} == {
        "maxmemory": ("512mb", "300mb")}
    # Node containers: an in-place update of the memory limit (2 x maxmemory by default).
    containers = [s for s in steps if s["newState"]["type"] == CONTAINER]
    assert containers and {s["op"] for s in containers} == {"update"}, containers
    text = stack.stack.run("preview", "--stack", stack.stack.name, "--diff").stdout
    print(text[-3000:])
    assert "maxmemory" in text and "300mb" in text

    writer = writer_for(stack)
    writer.start()
    try:
        time.sleep(2)  # traffic before the change, so the window is measured from steady state
        started = time.monotonic()
        stack.stack.up()
        up_seconds = time.monotonic() - started
        time.sleep(2)
    finally:
        result = writer.stop()
    print(f"maxmemory 512mb -> 300mb by `pulumi up` in {up_seconds:.1f} s under the writer: "
          f"{result.summary()}")
    lost = lost_acknowledged(writer, result)
    assert len(result.acked) > 100, result.summary()
    assert lost == [], f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"
    assert result.errors == [], result.summary()

    assert container_ids(stack) == containers_before, "a node container was replaced"
    assert node_ids(stack) == ids_before
    for node in stack.outputs["nodes"]:
        assert client(stack, node).config_get("maxmemory") == {
            "maxmemory": str(300 * MIB)}, node["name"]
        assert client(stack, node).info("stats")["sync_full"] == full_syncs[node["name"]]
    assert preview_steps(stack) == []

    # Persisted: the files volume holds the new value, and a restarted node starts with it.
    victim = next(n for n in stack.outputs["nodes"] if n["role"] == "replica")
    conf = subprocess.run(["docker", "exec", victim["container_name"], "cat", REDIS_CONF_PATH],
                          capture_output=True, text=True, check=True).stdout
    assert "\nmaxmemory 300mb\n" in conf
    subprocess.run(["docker", "restart", victim["container_name"]], capture_output=True,
                   check=True)
    wait_until("the restarted node to answer", lambda: (
        (v := client(stack, victim).config_get("maxmemory")) == {"maxmemory": str(300 * MIB)},
        v), SETTLE_S, 0.1)
    all_ok(stack)


def created_at(stack: DeployedStack) -> dict[str, str]:
    names = [n["container_name"] for n in stack.outputs["nodes"]]
    inspected = json.loads(subprocess.run(["docker", "inspect", *names], capture_output=True,
                                          text=True, check=True).stdout)
    return {c["Name"].lstrip("/"): c["Created"] for c in inspected}


def test_a_new_image_rolls_one_node_per_shard_under_traffic(stack: DeployedStack) -> None:
    """An image upgrade: every node container is replaced (a new image is a container input),
    but shard by shard in order: the replica first, then a CLUSTER FAILOVER hands the
    master's slots to it, then the old master goes. Data, identities and live settings stay
    (volumes, files); the writer loses no acknowledged write."""
    all_ok(stack)
    replicas_linked(stack)
    cluster = redis.RedisCluster(host=stack.outputs["nodes"][0]["ip"], port=6379,
                                 password=stack.password, decode_responses=True)
    for i in range(500):
        cluster.set(f"replace:{i}", str(i))
    ids_before, containers_before = node_ids(stack), container_ids(stack)
    settings_before = {n["name"]: client(stack, n).config_get("maxmemory")
                       for n in stack.outputs["nodes"]}
    roles_before = {n["name"]: client(stack, n).info("replication")["role"]
                    for n in stack.outputs["nodes"]}
    _image, retagged = new_image_tag(stack)
    stack.stack.set_config({"redisImage": retagged})
    planned = stack.stack.changes()
    replaced = sorted(name for op, name in planned if op == "replace")
    node_prefix = f"{stack.outputs['cluster_name']}-redis-"
    names = ["redis-cluster-" + n["name"].removeprefix(node_prefix)
             for n in stack.outputs["nodes"]]
    # The exporter too: its password file is written with the redis image, and a rewrite
    # is a new generation of the files, which recreates the exporter (stateless).
    assert replaced == sorted(["redis-cluster-redis-exporter", *names]), planned
    assert sorted(name for op, name in planned if name.endswith("-handover")) == sorted(
        f"{n}-handover" for n in names), planned
    assert not any(name.endswith("-data") for _op, name in planned), planned

    writer = writer_for(stack)
    writer.start()
    try:
        time.sleep(2)
        started = time.monotonic()
        stack.stack.up()
        up_seconds = time.monotonic() - started
        all_ok(stack)
        time.sleep(2)
    finally:
        result = writer.stop()
    print(f"image upgrade (6 nodes, rolling per shard) by `pulumi up` in {up_seconds:.1f} s "
          f"under the writer: {result.summary()}")
    for when, why in result.errors[:20]:
        print(f"  {when - result.started:7.3f} s  {why}")
    lost = lost_acknowledged(writer, result)
    assert len(result.acked) > 100, result.summary()
    assert lost == [], f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"

    assert not set(containers_before.values()) & set(container_ids(stack).values())
    assert node_ids(stack) == ids_before
    # Each shard in order: the master's new container was created after its replica's.
    created = created_at(stack)
    for node in stack.outputs["nodes"]:
        if node["role"] == "replica":
            assert created[node["master"]] > created[node["name"]], created
    # The planned masters handed their slots over: they are replicas now.
    roles = {n["name"]: client(stack, n).info("replication")["role"]
             for n in stack.outputs["nodes"]}
    assert roles == {k: ("slave" if v == "master" else "master")
                     for k, v in roles_before.items()}, roles
    fresh = redis.RedisCluster(host=stack.outputs["nodes"][0]["ip"], port=6379,
                               password=stack.password, decode_responses=True)
    missing = [i for i in range(500) if fresh.get(f"replace:{i}") != str(i)]
    assert not missing, f"{len(missing)} keys lost after replacement, e.g. {missing[:5]}"
    assert {n["name"]: client(stack, n).config_get("maxmemory")
            for n in stack.outputs["nodes"]} == settings_before
    assert stack.stack.changes() == []


def test_a_new_image_with_a_new_password_is_refused_at_preview(stack: DeployedStack) -> None:
    """Both at once cannot roll (a replaced node would not share its shard's password): the
    preview fails naming the reason, and nothing changes."""
    image, retagged = new_image_tag(stack)
    ids_before = container_ids(stack)
    try:
        stack.stack.set_config({"redisImage": retagged})
        stack.stack.set_config({"password": secrets.token_urlsafe(24)}, secret=True)
        refused = stack.stack.run("preview", "--stack", stack.stack.name, check=False)
        assert refused.returncode != 0
        assert "changes the password at once" in refused.stdout + refused.stderr, refused.stdout
    finally:
        stack.stack.set_config({"redisImage": image})
        stack.stack.remove_config("password")
    assert container_ids(stack) == ids_before
    assert stack.stack.changes() == []
