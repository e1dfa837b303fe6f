"""The outputs contract on a real deployment: the cluster stack deployed by the real `pulumi up`
(team overrides: apteam, 172.31.77.0/24, ports 7301+), then

- clusterops.client.from_stack_outputs from each client location reachable here: the Docker
  host through container IPs ("network") and through published ports ("docker-host"), and a
  container on Docker's default bridge, another network namespace that cannot route to the
  cluster's network, through published ports ("remote");
- examples/app-stack, a second project in the same file backend, reading the cluster through a
  StackReference and running its slot check on the cluster's network.

The cluster runs with ACL users (acl: true): every client here, the app's container included, is
the application user from the outputs (`username`), never the admin.

The published ports bind to the default bridge's gateway address, so "remote" clients on that
bridge reach them (the dev/prod e2e stacks bind 127.0.0.1:7001+ and are not touched).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from clusterops.client import OUTPUTS_SCHEMAS, OUTPUTS_VERSION, from_stack_outputs, schema_problems
from tests.support.app_image import ensure_app_image
from tests.support.deploy_fixtures import DeployedStack, deploy_stack
from tests.support.pulumi_cli import PROJECT_ROOT, PulumiStack
from tests.support.team_stacks import TEAM_OVERRIDES
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APP_PROJECT = "alphapulse-slot-check-app"
APP_EXIT_DEADLINE_S = 180


def bridge_gateway() -> str:
    """The address of Docker's default bridge on this host (docker0)."""
    network = json.loads(subprocess.run(["docker", "network", "inspect", "bridge"],
                                        capture_output=True, text=True, check=True).stdout)[0]
    config = network["IPAM"]["Config"][0]
    if config.get("Gateway"):
        return config["Gateway"]
    import ipaddress

    return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


@pytest.fixture(scope="module")
def gateway() -> str:
    return bridge_gateway()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, gateway: str) -> Iterator[DeployedStack]:
    yield from deploy_stack(tmp_path_factory.mktemp("apteam-cluster"), "dev",
                            **TEAM_OVERRIDES, bindAddress=gateway, acl="true")


def keys_per_slot(prefix: str) -> list[str]:
    keys: dict[int, str] = {}
    candidate = 0
    while len(keys) < REDIS_CLUSTER_HASH_SLOTS:
        key = f"{prefix}:{candidate}"
        keys.setdefault(key_slot(key.encode()), key)
        candidate += 1
    return [keys[slot] for slot in range(REDIS_CLUSTER_HASH_SLOTS)]


def every_slot_round_trip(client: redis.RedisCluster, prefix: str) -> int:
    """Write, read back and delete a key in each slot; returns how many slots answered right."""
    keys = keys_per_slot(prefix)
    writes = client.pipeline(transaction=False)
    for key in keys:
        writes.set(key, key)
    writes.execute()
    reads = client.pipeline(transaction=False)
    for key in keys:
        reads.get(key)
    good = sum(value == key.encode() for key, value in zip(keys, reads.execute(), strict=True))
    cleanup = client.pipeline(transaction=False)
    for key in keys:
        cleanup.delete(key)
    cleanup.execute()
    return good


def node_addresses(client: redis.RedisCluster) -> set[tuple[str, int]]:
    """Where the client sends commands: the primaries (replicas appear in CLUSTER SLOTS only
    once their sync is done, so right after formation they may not be listed yet)."""
    return {(node.host, int(node.port)) for node in client.get_primaries()}


def masters(outputs: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in outputs["nodes"] if n["role"] == "master"]


def test_deployed_outputs_match_the_schema_of_their_version(cluster: DeployedStack):
    assert cluster.outputs["outputs_version"] == OUTPUTS_VERSION
    assert (cluster.outputs["username"], cluster.outputs["admin_username"]) == ("app", "admin")
    assert schema_problems(cluster.outputs, OUTPUTS_SCHEMAS[OUTPUTS_VERSION]) == []


def test_network_location_talks_to_the_container_ips(cluster: DeployedStack):
    client = from_stack_outputs(cluster.outputs, "network")
    try:
        assert every_slot_round_trip(client, "net") == REDIS_CLUSTER_HASH_SLOTS
        ips = {(n["ip"], n["port"]) for n in masters(cluster.outputs)}
        assert node_addresses(client) == ips
    finally:
        client.close()


def test_docker_host_location_goes_through_published_ports_only(cluster: DeployedStack,
                                                                gateway: str):
    client = from_stack_outputs(cluster.outputs, "docker-host")
    try:
        assert every_slot_round_trip(client, "host") == REDIS_CLUSTER_HASH_SLOTS
        published = {(gateway, n["host_port"]) for n in masters(cluster.outputs)}
        assert node_addresses(client) == published
    finally:
        client.close()


REMOTE_SCRIPT = r"""
import json, sys
sys.path[:0] = ["/opt/redis-py", "/opt/helper"]
from redis.crc import key_slot
from client import from_stack_outputs
outputs = json.load(open("/opt/outputs.json"))
try:
    from_stack_outputs(outputs, "network", socket_connect_timeout=1).ping()
    print("network: reachable")
except Exception as exc:
    print("network: unreachable", type(exc).__name__)
client = from_stack_outputs(outputs, "remote", host_address=sys.argv[1])
keys = {}
n = 0
while len(keys) < 16384:
    keys.setdefault(key_slot(f"remote:{n}".encode()), f"remote:{n}")
    n += 1
pipe = client.pipeline(transaction=False)
for key in keys.values():
    pipe.set(key, key)
pipe.execute()
pipe = client.pipeline(transaction=False)
for key in keys.values():
    pipe.get(key)
good = sum(v == k.encode() for k, v in zip(keys.values(), pipe.execute()))
pipe = client.pipeline(transaction=False)
for key in keys.values():
    pipe.delete(key)
pipe.execute()
print("remote:", good, sorted({n.host for n in client.get_primaries()}))
"""


def test_remote_location_from_another_network_namespace(cluster: DeployedStack, gateway: str):
    """A client on Docker's default bridge: the cluster's container IPs are not routed there,
    only the published ports on the gateway address are."""
    image = ensure_app_image()
    redis_py = Path(redis.__file__).parent  # redis-py >= 5 for address_remap
    helper = PROJECT_ROOT / "clusterops" / "client.py"
    done = subprocess.run(
        ["docker", "run", "--rm", "--network", "bridge", "--user", "0",
         "-v", f"{redis_py}:/opt/redis-py/redis:ro",
         "-v", f"{helper}:/opt/helper/client.py:ro",
         "-v", f"{cluster.outputs_file}:/opt/outputs.json:ro",
         image, "python3", "-c", REMOTE_SCRIPT, gateway],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "network: unreachable" in done.stdout, done.stdout
    assert f"remote: {REDIS_CLUSTER_HASH_SLOTS} ['{gateway}']" in done.stdout, done.stdout
    print(done.stdout)


# -- the application stack ----------------------------------------------------------------------
def app_stack(root: Path, backend: Path) -> PulumiStack:
    """A copy of examples/app-stack (with clusterops/client.py at its relative place) as stack
    `apteam-app` in the cluster's own file backend."""
    workdir = root / "examples" / "app-stack"
    shutil.copytree(PROJECT_ROOT / "examples" / "app-stack", workdir,
                    ignore=shutil.ignore_patterns("__pycache__", "venv"))
    (root / "clusterops").mkdir()
    shutil.copy2(PROJECT_ROOT / "clusterops" / "client.py", root / "clusterops" / "client.py")
    (workdir / "venv").symlink_to(PROJECT_ROOT / "venv")  # same pins as the cluster project
    stack = PulumiStack("apteam-app", workdir, backend)
    stack.run("stack", "init", stack.name, "--secrets-provider", "passphrase")
    return stack


def wait_for_exit(container: str) -> dict[str, Any]:
    def exited() -> tuple[bool, dict[str, Any]]:
        done = subprocess.run(["docker", "inspect", "--format", "{{json .State}}", container],
                              capture_output=True, text=True, check=False)
        state = json.loads(done.stdout) if done.returncode == 0 else {"missing": done.stderr}
        return state.get("Status") == "exited", state

    return wait_until(f"{container} to exit", exited, APP_EXIT_DEADLINE_S, 0.5)


def test_app_stack_checks_every_slot_through_a_stack_reference(
        cluster: DeployedStack, tmp_path: Path):
    image = ensure_app_image()
    stack = app_stack(tmp_path, cluster.stack.backend)
    try:
        stack.set_config({
            f"{APP_PROJECT}:clusterStack": "organization/alphapulse-redis-cluster/dev",
            f"{APP_PROJECT}:appImage": image,
        })
        stack.run("up", "--stack", stack.name, "--yes")
        outputs = json.loads(stack.run("stack", "output", "--stack", stack.name,
                                       "--json").stdout)
        container = outputs["container_name"]
        assert container == "apteam-slot-check"
        assert outputs["network_name"] == cluster.outputs["network_name"]
        state = wait_for_exit(container)
        logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True,
                              check=True)
        report = (logs.stdout + logs.stderr).strip()
        print(report)  # the app's own report line, shown with pytest -rP
        assert state["ExitCode"] == 0, report
        assert "slot-check: ok: 16384/16384 slots written and read back on 3 masters" in report
        inspect = subprocess.run(["docker", "inspect", container], capture_output=True,
                                 text=True, check=True).stdout
        assert cluster.password not in inspect  # not in env, command or labels
        assert cluster.outputs["admin_password"] not in json.dumps(stack.state()) + inspect
        state_text = json.dumps(stack.state())
        assert cluster.password not in state_text  # the upload is encrypted in the state
    finally:
        stack.destroy(check=False)
        stack.remove()
    gone = subprocess.run(["docker", "inspect", "apteam-slot-check"], capture_output=True,
                          check=False)
    assert gone.returncode != 0, "pulumi destroy left the app container behind"
