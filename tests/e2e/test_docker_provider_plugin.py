"""The plugin scripts/build-docker-provider.sh builds works as the Pulumi engine uses it.

The test starts the binary the way the engine does (it prints its gRPC port on stdout) and speaks
the provider protocol with the stubs shipped in the pulumi package: GetPluginInfo, Configure, then
Check/Create/Delete of a Volume and a Network with the property names the pulumi_docker SDK sends,
checking each step against `docker inspect`. Every docker object it makes has a generated name and
is removed again, through the provider or, if that failed, with the docker CLI.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import selectors
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from tests.e2e.conftest import docker
from tests.support.grpc_plugins import from_struct, stop_process, to_struct
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

PLUGIN_VERSION = "5.2.0"  # pulumi-docker in requirements.txt: the SDK asks for exactly this
DOCKER_HOST = "unix:///var/run/docker.sock"
TOOLS_DIR = Path(
    os.environ.get("PULUMI_TOOLS_DIR", str(Path.home() / ".cache" / "alphapulse-pulumi"))
)
PLUGIN_BIN = TOOLS_DIR / "providers" / "pulumi-resource-docker"
STARTUP_TIMEOUT_S = 30.0
RPC_TIMEOUT_S = 120.0  # Create/Delete talk to dockerd; generous, but bounded
GONE_TIMEOUT_S = 30.0
STACK, PROJECT = "smoke", "alphapulse-provider-smoke"


def urn(type_token: str, name: str) -> str:
    return f"urn:pulumi:{STACK}::{PROJECT}::{type_token}::{name}"


@dataclass
class Plugin:
    process: subprocess.Popen[bytes]
    stub: provider_pb2_grpc.ResourceProviderStub
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-4000:]


def read_port(process: subprocess.Popen[bytes], deadline: float) -> int:
    """The first stdout line is the port, as the engine reads it; fail by the deadline."""
    assert process.stdout is not None
    line = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"plugin printed no port within {STARTUP_TIMEOUT_S}s")
            if not selector.select(timeout=remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 1)
            if not chunk:
                raise AssertionError(f"plugin exited before printing its port: {process.wait()}")
            line += chunk
    return int(line.strip())


@pytest.fixture
def plugin(docker_engine_ready: None, tmp_path: Path) -> Iterator[Plugin]:
    if not PLUGIN_BIN.is_file():
        pytest.skip(f"{PLUGIN_BIN} is absent: build it with scripts/build-docker-provider.sh")
    stderr_path = tmp_path / "plugin.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [str(PLUGIN_BIN)], stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL
        )
    try:
        port = read_port(process, time.monotonic() + STARTUP_TIMEOUT_S)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=STARTUP_TIMEOUT_S)
        yield Plugin(process, provider_pb2_grpc.ResourceProviderStub(channel), stderr_path)
        channel.close()
    finally:
        stop_process(process)


def exists(kind: str, name: str) -> bool:
    return docker(kind, "inspect", name, check=False).returncode == 0


def inspect(kind: str, name: str) -> dict[str, Any]:
    return json.loads(docker(kind, "inspect", name).stdout)[0]


def wait_gone(kind: str, name: str) -> None:
    wait_for(f"docker {kind} {name} to be gone after Delete", lambda: not exists(kind, name),
             GONE_TIMEOUT_S, 0.2)


def configure(plugin: Plugin) -> None:
    # The engine sends both forms: variables (package:config:key) and args (schema names).
    response = plugin.stub.Configure(
        provider_pb2.ConfigureRequest(
            variables={"docker:config:host": DOCKER_HOST},
            args=to_struct({"host": DOCKER_HOST}),
            acceptSecrets=True,
            acceptResources=True,
        ),
        timeout=RPC_TIMEOUT_S,
    )
    # The bridge answers with its capabilities; an error status would have raised already.
    assert response.supportsPreview


def check(plugin: Plugin, type_token: str, name: str, news: dict[str, Any]) -> dict[str, Any]:
    response = plugin.stub.Check(
        provider_pb2.CheckRequest(
            urn=urn(type_token, name),
            olds=struct_pb2.Struct(),
            news=to_struct(news),
            randomSeed=secrets.token_bytes(32),
            name=name,
            type=type_token,
        ),
        timeout=RPC_TIMEOUT_S,
    )
    failures = [(f.property, f.reason) for f in response.failures]
    assert not failures, f"Check({type_token}) failed: {failures}"
    return from_struct(response.inputs)


def create(
    plugin: Plugin, type_token: str, name: str, inputs: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    response = plugin.stub.Create(
        provider_pb2.CreateRequest(
            urn=urn(type_token, name),
            properties=to_struct(inputs),
            timeout=RPC_TIMEOUT_S,
            name=name,
            type=type_token,
        ),
        timeout=RPC_TIMEOUT_S,
    )
    assert response.id, f"Create({type_token}) returned no id"
    return response.id, from_struct(response.properties)


def delete(
    plugin: Plugin,
    type_token: str,
    name: str,
    resource_id: str,
    inputs: dict[str, Any],
    outputs: dict[str, Any],
) -> None:
    plugin.stub.Delete(
        provider_pb2.DeleteRequest(
            id=resource_id,
            urn=urn(type_token, name),
            properties=to_struct(outputs),
            old_inputs=to_struct(inputs),
            timeout=RPC_TIMEOUT_S,
            name=name,
            type=type_token,
        ),
        timeout=RPC_TIMEOUT_S,
    )


def test_plugin_reports_the_sdk_version(plugin: Plugin) -> None:
    info = plugin.stub.GetPluginInfo(empty_pb2.Empty(), timeout=RPC_TIMEOUT_S)
    assert info.version == PLUGIN_VERSION


def test_check_autonames_a_volume_without_a_name(plugin: Plugin) -> None:
    """Like pulumi-docker, a missing name becomes <resource name>-<random suffix>."""
    configure(plugin)
    inputs = check(plugin, "docker:index/volume:Volume", "ap-smoke-autoname", {})
    assert inputs.get("name", "").startswith("ap-smoke-autoname-"), inputs


def test_check_knows_the_sdk_names_our_program_sends(plugin: Plugin) -> None:
    """The renamed fields (command, networksAdvanced, RemoteImage's name) are known.

    The bridge fails Check on a key it cannot map, and hands back its own name for one it can
    (e.g. "commands" without our rename), so a lost rename fails here rather than in a deploy.
    Check talks to no docker engine, so nothing is created.
    """
    configure(plugin)
    container = check(
        plugin,
        "docker:index/container:Container",
        "node",
        {
            "image": "redis:7",
            "name": "ap-smoke-check-only",
            "command": ["redis-server", "/etc/redis/redis.conf"],
            "networksAdvanced": [{"name": "ap-smoke-net", "ipv4Address": "172.29.0.10"}],
            "healthcheck": {"tests": ["CMD", "true"], "interval": "5s", "retries": 3},
            "labels": [{"label": "com.alphapulse.smoke", "value": "1"}],
            "uploads": [{"file": "/tmp/x", "content": "x", "executable": False}],
        },
    )
    keys = sorted(container)
    assert container.get("command") == ["redis-server", "/etc/redis/redis.conf"], keys
    networks = container.get("networksAdvanced") or [{}]
    assert networks[0].get("ipv4Address") == "172.29.0.10", keys
    image = check(
        plugin,
        "docker:index/remoteImage:RemoteImage",
        "img",
        {"name": "redis:7", "keepLocally": True},
    )
    assert image.get("name") == "redis:7", sorted(image)


def test_create_and_delete_volume_and_network(
    plugin: Plugin, free_subnet: Callable[[], ipaddress.IPv4Network]
) -> None:
    suffix = secrets.token_hex(4)
    volume_name = f"ap-provider-smoke-{suffix}"
    network_name = f"ap-provider-smoke-{suffix}"
    subnet = free_subnet()
    gateway = str(next(subnet.hosts()))
    label = {"label": "com.alphapulse.smoke", "value": suffix}
    cleanup: list[tuple[str, str]] = []
    try:
        assert plugin.stub.GetPluginInfo(empty_pb2.Empty()).version == PLUGIN_VERSION
        configure(plugin)

        # Property names as the pulumi_docker SDK sends them (camelCase, labels as a list).
        volume_type = "docker:index/volume:Volume"
        volume_inputs = check(plugin, volume_type, "data", {"name": volume_name, "labels": [label]})
        cleanup.append(("volume", volume_name))
        volume_id, volume_outputs = create(plugin, volume_type, "data", volume_inputs)
        assert volume_outputs["name"] == volume_name
        volume = inspect("volume", volume_name)
        assert volume["Labels"] == {"com.alphapulse.smoke": suffix}

        network_type = "docker:index/network:Network"
        network_inputs = check(
            plugin,
            network_type,
            "net",
            {
                "name": network_name,
                "driver": "bridge",
                "ipamConfigs": [{"subnet": str(subnet), "gateway": gateway}],
                "labels": [label],
            },
        )
        cleanup.append(("network", network_name))
        network_id, network_outputs = create(plugin, network_type, "net", network_inputs)
        network = inspect("network", network_name)
        assert network["Id"] == network_id
        assert network["Labels"] == {"com.alphapulse.smoke": suffix}
        assert network["IPAM"]["Config"][0]["Subnet"] == str(subnet)
        assert network_outputs["ipamConfigs"][0]["gateway"] == gateway

        delete(plugin, network_type, "net", network_id, network_inputs, network_outputs)
        wait_gone("network", network_name)
        delete(plugin, volume_type, "data", volume_id, volume_inputs, volume_outputs)
        wait_gone("volume", volume_name)
    except grpc.RpcError as error:
        raise AssertionError(
            f"provider RPC failed: {error}\nplugin stderr:\n{plugin.stderr()}"
        ) from error
    finally:
        # Only what this test named; a no-op when the provider already removed it.
        for kind, name in reversed(cleanup):
            if exists(kind, name):
                docker(kind, "rm", name, check=False)
