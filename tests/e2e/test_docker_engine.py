"""DockerEngine creates what a Pulumi program declares, as declared, and removes all of it.

The main test declares resources with pulumi_docker's own classes and runs them under Pulumi's
mocks, so the engine gets exactly what the deploy harness gets (camelCase names, numbers as
floats, secrets wrapped); then `docker inspect` and live connections check the result.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pulumi
import pulumi_docker as docker_sdk
import pytest
import redis
from pulumi.runtime.rpc import _special_secret_sig, _special_sig_key

from components.redis_conf import HEALTHCHECK_COMMAND, PASSWORD_FILE_PATH, REDIS_CONF_PATH
from tests.e2e.conftest import docker
from tests.support.docker_engine import (
    CONTAINER,
    NETWORK,
    SESSION_LABEL,
    VOLUME,
    DockerEngine,
    DockerEngineError,
    SecretExposure,
    UnsupportedProperty,
)

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
CONF_PATH = REDIS_CONF_PATH
PASSWORD_PATH = PASSWORD_FILE_PATH
# The stack's own healthcheck: the password comes from a file on stdin, never from argv.
ASKPASS_HEALTHCHECK = HEALTHCHECK_COMMAND




def inspect(kind: str, name: str) -> dict[str, Any]:
    return json.loads(docker(kind, "inspect", name).stdout)[0]


def sha256(data: str) -> str:
    # Compare secrets by digest so a failing assertion never prints them.
    return hashlib.sha256(data.encode()).hexdigest()


def secret(value: Any) -> dict[str, Any]:
    """A value wrapped as Pulumi's mock monitor receives a secret."""
    return {_special_sig_key: _special_secret_sig, "value": value}


def left_by(session: str) -> dict[str, list[str]]:
    """Every docker object still carrying the engine's session label."""
    label = f"label={SESSION_LABEL}={session}"
    return {
        "containers": docker("ps", "-aq", "--filter", label).stdout.split(),
        "networks": docker("network", "ls", "-q", "--filter", label).stdout.split(),
        "volumes": docker("volume", "ls", "-q", "--filter", label).stdout.split(),
    }


class EngineMocks(pulumi.runtime.Mocks):
    """Pulumi mocks whose resources are created for real by the engine."""

    def __init__(self, engine: DockerEngine) -> None:
        self.engine = engine

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = self.engine.apply(args.typ, args.name, args.inputs)
        return state["id"], state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


def run_under_mocks(engine: DockerEngine, declare: Callable[[], pulumi.Output]) -> Any:
    """Run `declare` as a Pulumi program under mocks; returns what its output resolves to."""
    pulumi.runtime.set_mocks(EngineMocks(engine), preview=False)
    resolved: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output:
        return declare().apply(lambda value: resolved.setdefault("value", value))

    program()
    return resolved["value"]


@pytest.fixture
def engine(docker_engine_ready: None) -> Iterator[DockerEngine]:
    engine = DockerEngine()
    try:
        yield engine
    finally:
        engine.destroy_all()


def test_declared_resources_exist_as_declared_and_destroy_removes_them(
    engine: DockerEngine,
    local_images: dict[str, str],
    free_subnet: Callable[[], ipaddress.IPv4Network],
    unique_name: str,
):
    subnet = free_subnet()
    gateway, ip_a, ip_b = (str(subnet.network_address + n) for n in (1, 11, 12))
    password_value = f"pw-{unique_name}-{sha256(unique_name)[:16]}"
    image = local_images["redis"]

    def declare() -> pulumi.Output:
        password = pulumi.Output.secret(password_value)
        network = docker_sdk.Network(
            "net",
            name=f"{unique_name}-net",
            ipam_configs=[docker_sdk.NetworkIpamConfigArgs(subnet=str(subnet), gateway=gateway)],
            labels=[docker_sdk.NetworkLabelArgs(label="com.alphapulse.test", value="net")],
        )
        volume = docker_sdk.Volume(
            "data",
            name=f"{unique_name}-data",
            labels=[docker_sdk.VolumeLabelArgs(label="com.alphapulse.test", value="data")],
        )
        node_a = docker_sdk.Container(
            "node-a",
            name=f"{unique_name}-a",
            hostname="node-a",
            image=image,
            command=["redis-server", CONF_PATH],
            uploads=[
                docker_sdk.ContainerUploadArgs(
                    file=CONF_PATH,
                    content=password.apply(lambda p: f"port 6379\nrequirepass {p}\n"),
                ),
                docker_sdk.ContainerUploadArgs(
                    file=PASSWORD_PATH, content=password, permissions="0600"
                ),
            ],
            volumes=[
                docker_sdk.ContainerVolumeArgs(volume_name=volume.name, container_path="/data")
            ],
            networks_advanced=[
                docker_sdk.ContainerNetworksAdvancedArgs(
                    name=network.name, ipv4_address=ip_a, aliases=["node-a"]
                )
            ],
            ports=[docker_sdk.ContainerPortArgs(internal=6379, ip="127.0.0.1")],
            healthcheck=docker_sdk.ContainerHealthcheckArgs(
                tests=["CMD-SHELL", ASKPASS_HEALTHCHECK],
                interval="250ms",
                timeout="2s",
                retries=40,
                start_period="0s",
            ),
            restart="on-failure",
            max_retry_count=3,
            memory=64,
            memory_swap=64,
            log_driver="json-file",
            log_opts={"max-size": "1m"},
            labels=[docker_sdk.ContainerLabelArgs(label="com.alphapulse.test", value="a")],
            destroy_grace_seconds=5,
            wait=True,
            wait_timeout=30,
        )
        node_b = docker_sdk.Container(
            "node-b",
            name=f"{unique_name}-b",
            image=image,
            command=["redis-server", "--protected-mode", "no"],
            networks_advanced=[
                docker_sdk.ContainerNetworksAdvancedArgs(
                    name=network.name, ipv4_address=ip_b, aliases=["node-b"]
                )
            ],
            healthcheck=docker_sdk.ContainerHealthcheckArgs(
                tests=["CMD-SHELL", "redis-cli ping | grep -q PONG"], interval="250ms", retries=40
            ),
            restart="unless-stopped",
            memory=48,
            read_only=True,
            tmpfs={"/tmp": "rw,size=16m"},
            init=True,
            ulimits=[docker_sdk.ContainerUlimitArgs(name="nofile", soft=4096, hard=4096)],
            sysctls={"net.core.somaxconn": "1024"},
            capabilities=docker_sdk.ContainerCapabilitiesArgs(drops=["NET_RAW"]),
            stop_timeout=5,
            wait=True,
            wait_timeout=30,
        )
        return pulumi.Output.all(
            a_id=node_a.id, a_networks=node_a.network_datas, a_ports=node_a.ports, b_id=node_b.id
        )

    outputs = run_under_mocks(engine, declare)
    a, b = f"{unique_name}-a", f"{unique_name}-b"

    # What the engine returned is what Docker made.
    assert outputs["a_networks"][0]["ip_address"] == ip_a
    published = outputs["a_ports"][0]["external"]
    assert outputs["a_ports"][0]["ip"] == "127.0.0.1" and published > 0

    net = inspect("network", f"{unique_name}-net")
    assert net["IPAM"]["Config"] == [{"Subnet": str(subnet), "Gateway": gateway}]
    assert net["Labels"]["com.alphapulse.test"] == "net"
    assert inspect("volume", f"{unique_name}-data")["Labels"]["com.alphapulse.test"] == "data"

    node_a, node_b = inspect("container", a), inspect("container", b)
    assert node_a["NetworkSettings"]["Networks"][f"{unique_name}-net"]["IPAddress"] == ip_a
    assert node_b["NetworkSettings"]["Networks"][f"{unique_name}-net"]["IPAddress"] == ip_b
    assert "node-a" in node_a["NetworkSettings"]["Networks"][f"{unique_name}-net"]["Aliases"]
    data_mount = next(m for m in node_a["Mounts"] if m["Destination"] == "/data")
    assert (data_mount["Type"], data_mount["Name"]) == ("volume", f"{unique_name}-data")
    host_a, host_b = node_a["HostConfig"], node_b["HostConfig"]
    assert (host_a["Memory"], host_a["MemorySwap"]) == (64 * MIB, 64 * MIB)
    assert host_a["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert host_a["PortBindings"] == {"6379/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert host_a["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
    assert node_a["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", ASKPASS_HEALTHCHECK],
        "Interval": 250_000_000,
        "Timeout": 2_000_000_000,
        "Retries": 40,
    }
    assert node_a["Config"]["Hostname"] == "node-a"
    assert node_a["Config"]["Labels"]["com.alphapulse.test"] == "a"
    assert node_a["State"]["Health"]["Status"] == "healthy"
    assert node_b["State"]["Health"]["Status"] == "healthy"
    assert host_b["Memory"] == 48 * MIB
    assert host_b["RestartPolicy"] == {"Name": "unless-stopped", "MaximumRetryCount": 0}
    assert host_b["ReadonlyRootfs"] is True and host_b["Init"] is True
    assert host_b["Tmpfs"] == {"/tmp": "rw,size=16m"}
    assert host_b["Ulimits"] == [{"Name": "nofile", "Soft": 4096, "Hard": 4096}]
    assert host_b["Sysctls"] == {"net.core.somaxconn": "1024"}
    # The docker CLI writes CAP_NET_RAW where the provider sends NET_RAW: the same capability.
    assert [cap.removeprefix("CAP_") for cap in host_b["CapDrop"]] == ["NET_RAW"]
    status = docker("exec", b, "cat", "/proc/1/status").stdout
    bounding = int(next(x for x in status.splitlines() if x.startswith("CapBnd:")).split()[1], 16)
    assert not bounding & (1 << 13), "CAP_NET_RAW (bit 13) is still in node-b's bounding set"
    assert node_b["Config"]["StopTimeout"] == 5

    # The uploads are in place with pulumi-docker's modes; the secret is only inside the files.
    modes = docker("exec", a, "stat", "-c", "%a %u %n", CONF_PATH, PASSWORD_PATH).stdout.split("\n")
    assert modes[:2] == [f"644 0 {CONF_PATH}", f"600 0 {PASSWORD_PATH}"]
    stored = docker("exec", a, "cat", PASSWORD_PATH).stdout
    assert sha256(stored) == sha256(password_value)
    everything = docker(
        "inspect", a, b, f"{unique_name}-net", f"{unique_name}-data", check=False
    ).stdout
    assert password_value not in everything, "the password is readable in `docker inspect`"
    assert password_value not in subprocess.run(
        ["ps", "-eo", "args"], capture_output=True, text=True, check=True
    ).stdout

    # It works: the host reaches A at its static IP and through the published port; A reaches B
    # by its alias on the user network.
    assert redis.Redis(host=ip_a, port=6379, password=password_value).ping()
    assert redis.Redis(host="127.0.0.1", port=published, password=password_value).ping()
    assert docker("exec", a, "redis-cli", "-h", "node-b", "ping").stdout.strip() == "PONG"

    print(
        "\nstart-to-healthy (healthcheck interval 250 ms): "
        + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in engine.timings.items())
    )

    anonymous = [m["Name"] for m in node_b["Mounts"] if m["Type"] == "volume"]
    assert anonymous, "node-b's image declares VOLUME /data, so it has an anonymous volume"
    engine.destroy_all()
    assert left_by(engine.session) == {"containers": [], "networks": [], "volumes": []}
    for volume in anonymous:
        assert docker("volume", "inspect", volume, check=False).returncode != 0, volume
    engine.destroy_all()  # idempotent: nothing left to remove, no error


def test_an_unknown_property_raises_naming_resource_and_property(
    engine: DockerEngine, local_images: dict[str, str], unique_name: str
):
    base = {"name": unique_name, "image": local_images["redis"]}
    with pytest.raises(UnsupportedProperty) as top_level:
        engine.apply(CONTAINER, "node-x", {**base, "gpus": "all"})
    assert "'node-x'" in str(top_level.value) and "'gpus'" in str(top_level.value)

    nested = {**base, "uploads": [{"file": "/x", "source": "/etc/hostname"}]}
    with pytest.raises(UnsupportedProperty) as in_a_list:
        engine.apply(CONTAINER, "node-x", nested)
    assert "'uploads[0].source'" in str(in_a_list.value)

    with pytest.raises(UnsupportedProperty, match="'ingress'"):
        engine.apply(NETWORK, "net-x", {"name": unique_name, "ingress": True})
    with pytest.raises(UnsupportedProperty, match="exec form"):
        engine.apply(CONTAINER, "node-x", {**base, "healthcheck": {"tests": ["CMD", "true"]}})
    with pytest.raises(DockerEngineError, match="resource type not supported"):
        engine.apply("docker:index/remoteImage:RemoteImage", "img", {"name": "redis:7"})

    # Rejected before anything was created.
    assert engine.created() == []
    assert left_by(engine.session) == {"containers": [], "networks": [], "volumes": []}


def test_a_secret_outside_uploads_is_refused_without_showing_it(
    engine: DockerEngine, local_images: dict[str, str], unique_name: str
):
    value = f"secret-{unique_name}"
    inputs = {"name": unique_name, "image": local_images["redis"], "envs": secret([f"P={value}"])}
    with pytest.raises(SecretExposure, match="'envs'") as refused:
        engine.apply(CONTAINER, "node-x", inputs)
    assert value not in str(refused.value)
    with pytest.raises(SecretExposure, match="'command'"):
        engine.apply(CONTAINER, "node-x", {**inputs, "envs": [], "command": secret(["x", value])})
    assert left_by(engine.session)["containers"] == []


def test_wait_fails_with_the_health_log_when_never_healthy(
    engine: DockerEngine, local_images: dict[str, str], unique_name: str
):
    inputs = {
        "name": unique_name,
        "image": local_images["redis"],
        "healthcheck": {
            "tests": ["CMD-SHELL", "echo probe-says-no; exit 1"],
            "interval": "100ms",
            "retries": 1.0,
        },
        "wait": True,
        "waitTimeout": 2.0,
    }
    with pytest.raises(DockerEngineError) as failed:
        engine.apply(CONTAINER, "never-healthy", inputs)
    message = str(failed.value)
    assert "not healthy within 2 s" in message and "probe-says-no" in message, message
    # Kept for inspection until destroy_all, like a failed create in Pulumi's state.
    assert engine.created() == [("container", unique_name)]
    engine.destroy_all()
    assert docker("inspect", unique_name, check=False).returncode != 0


def test_destroy_all_can_keep_volumes(engine: DockerEngine, unique_name: str):
    engine.apply(VOLUME, "data", {"name": f"{unique_name}-data"})
    engine.apply(NETWORK, "net", {"name": f"{unique_name}-net", "internal": True})
    assert inspect("network", f"{unique_name}-net")["Internal"] is True
    try:
        engine.destroy_all(keep_volumes=True)
        assert left_by(engine.session) == {
            "containers": [],
            "networks": [],
            "volumes": [f"{unique_name}-data"],
        }
        assert engine.created() == []
    finally:
        docker("volume", "rm", f"{unique_name}-data", check=False)
