"""The bootstrap provider inside the real ``python -m pulumi.dynamic`` process, over gRPC.

This is exactly where ``pulumi up`` runs it: a separate process started in the project
directory (no PYTHONPATH help), the provider pickled by Pulumi's own serializer and shipped as
the ``__provider`` property of every request. Pickling or import problems, secret handling and
the diff behaviour are therefore caught here the way the engine would hit them.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dill
import grpc
import pytest
import redis
from google.protobuf import struct_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from clusterops.core.model import NodeTarget
from components.bootstrap import ClusterBootstrapProvider
from tests.support.grpc_plugins import from_struct, stop_process, to_struct
from tests.support.process_plans import plan_for, wait_for_replica_links
from tests.support.redis_nodes import RedisNodes
from tests.support.waiting import wait_until

PROJECT_ROOT = Path(__file__).resolve().parents[2]
URN = ("urn:pulumi:test::alphapulse-redis-cluster::"
       "pulumi-python:dynamic/alphapulse:ClusterBootstrap::bootstrap")
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
PROVIDER_START_DEADLINE_S = 30.0

SERIALIZE_SNIPPET = """
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime._serialization import _serialize
from clusterops.core.model import NodeTarget
from components.bootstrap import ClusterBootstrapProvider
from components.secret_files import SecretFilesProvider
# The same call dynamic.Resource.__init__ makes.
serialized, _contains_secrets = _serialize(True, serialize_provider, {provider}())
print(serialized)
"""


def clean_env() -> dict[str, str]:
    """The environment without PYTHONPATH: imports must work from the project dir alone."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def serialize_provider_in_fresh_process(provider: str = "ClusterBootstrapProvider") -> str:
    """Pickle the provider the way a Pulumi program does, in a program-like process."""
    result = subprocess.run(
        [sys.executable, "-c", SERIALIZE_SNIPPET.format(provider=provider)],
        cwd=PROJECT_ROOT, env=clean_env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def serialized_provider() -> str:
    return serialize_provider_in_fresh_process()


@pytest.fixture(scope="module")
def provider_stub() -> Iterator[provider_pb2_grpc.ResourceProviderStub]:
    """Start ``python -m pulumi.dynamic`` as Pulumi does and connect to the port it prints."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.dynamic"],
        cwd=PROJECT_ROOT, env=clean_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()  # the first line is the port
        if not line.isdigit():
            process.kill()
            pytest.fail(f"provider did not announce a port: {line!r} "
                        f"{process.stderr.read().decode() if process.stderr else ''}")
        channel = grpc.insecure_channel(f"127.0.0.1:{line}")
        grpc.channel_ready_future(channel).result(timeout=PROVIDER_START_DEADLINE_S)
        stub = provider_pb2_grpc.ResourceProviderStub(channel)
        # The engine configures every provider first; like it, we offer to send secrets.
        response = stub.Configure(provider_pb2.ConfigureRequest(
            args=struct_pb2.Struct(), acceptSecrets=True, acceptResources=True))
        # A dynamic provider declines secrets, so the engine sends it plain values.
        assert response.acceptSecrets is False
        yield stub
        channel.close()
    finally:
        stop_process(process)


def secret(value: Any) -> dict[str, Any]:
    return {SECRET_SIG_KEY: SECRET_SIG, "value": value}


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def without_secrets(value: Any) -> Any:
    """The value with every secret envelope replaced by a marker."""
    if is_secret(value):
        return "[secret]"
    if isinstance(value, dict):
        return {k: without_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_secrets(v) for v in value]
    return value


def inputs_for(nodes: RedisNodes, provider: str, password: str | None = None,
               version: str = "1") -> dict[str, Any]:
    """Resource inputs as the engine sends them to a dynamic provider (secrets stripped)."""
    return {
        "nodes": [t.to_dict() for t in plan_for(nodes)],
        "password": password if password is not None else nodes.password,
        "provider_version": version,
        "timeout_seconds": 30,
        "__provider": provider,
    }


def check(stub, news: dict[str, Any], olds: dict[str, Any] | None = None):
    return stub.Check(provider_pb2.CheckRequest(
        urn=URN, olds=to_struct(olds or {}), news=to_struct(news)))


def test_provider_serialization_is_stable_and_carries_no_secret(serialized_provider: str) -> None:
    # Two program runs must produce the same __provider string, or every preview shows a diff.
    assert serialize_provider_in_fresh_process() == serialized_provider
    # The class is pickled by reference (importable module), so the pickle is small.
    raw = base64.b64decode(serialized_provider)
    assert b"components.bootstrap" in raw and len(raw) < 2000, len(raw)


def test_check_rejects_bad_inputs_naming_the_property(provider_stub, serialized_provider,
                                                      six_nodes: RedisNodes) -> None:
    good = inputs_for(six_nodes, serialized_provider)
    ok = check(provider_stub, good)
    assert list(ok.failures) == []
    # The password comes back as a secret even though it went in plain.
    assert is_secret(from_struct(ok.inputs)["password"])

    nodes = good["nodes"]
    two_masters = [n for n in nodes if n["name"] != "alphapulse-redis-master-3"]
    unknown_master = [dict(n) for n in nodes]
    unknown_master[3]["master"] = "alphapulse-redis-master-9"
    duplicate = [dict(n) for n in nodes]
    duplicate[4]["cluster_host"], duplicate[4]["cluster_port"] = (
        nodes[0]["cluster_host"], nodes[0]["cluster_port"])
    cases = {
        "fewer than 3 masters": ({**good, "nodes": two_masters}, "nodes", "at least 3"),
        "unknown master": ({**good, "nodes": unknown_master}, "nodes",
                           "follows 'alphapulse-redis-master-9'"),
        "duplicate address": ({**good, "nodes": duplicate}, "nodes", "is used by"),
        "missing password": ({k: v for k, v in good.items() if k != "password"}, "password",
                             "password is required"),
        "empty password": ({**good, "password": ""}, "password", "password is required"),
    }
    for case, (news, prop, reason) in cases.items():
        failures = list(check(provider_stub, news).failures)
        assert any(f.property == prop and reason in f.reason for f in failures), (case, failures)
    # A password that arrives as a secret (an engine that sends secrets) is accepted as well.
    assert list(check(provider_stub, {**good, "password": secret(good["password"])}).failures) == []


def test_create_diff_update_through_the_provider_process(
    provider_stub, serialized_provider: str, six_nodes: RedisNodes
) -> None:
    password = six_nodes.password
    inputs = from_struct(check(provider_stub, inputs_for(six_nodes, serialized_provider)).inputs)

    # The engine strips secrets for a dynamic provider: Create gets the password in plain...
    created = provider_stub.Create(provider_pb2.CreateRequest(
        urn=URN, properties=to_struct({**inputs, "password": password}), timeout=60))

    outs = from_struct(created.properties)
    assert created.id.startswith("redis-cluster-")
    assert outs["cluster_state"] == "ok"
    assert set(outs["node_ids"]) == {n["name"] for n in inputs["nodes"]}
    for node in six_nodes:
        assert node.client().execute_command("CLUSTER", "MYID") in outs["node_ids"].values()
    assert outs["slot_ranges"] == {
        "alphapulse-redis-master-1": [[0, 5460]],
        "alphapulse-redis-master-2": [[5461, 10922]],
        "alphapulse-redis-master-3": [[10923, 16383]],
    }
    # ...and returns it only as a secret: nowhere else in the response, not even in the pickle.
    assert outs["password"] == secret(password)
    visible = json.dumps(without_secrets(outs)) + created.id
    assert password not in visible
    assert password.encode() not in base64.b64decode(outs["__provider"]["value"]
                                                     if is_secret(outs["__provider"])
                                                     else outs["__provider"])
    # Outputs repeat every input: delete and diff only ever see outputs.
    assert [NodeTarget.from_dict(n) for n in outs["nodes"]] == plan_for(six_nodes)
    assert outs["provider_version"] == "1" and outs["timeout_seconds"] == 30

    def diff(news: dict[str, Any]):
        return provider_stub.Diff(provider_pb2.DiffRequest(
            id=created.id, urn=URN, olds=to_struct(outs), news=to_struct(news)))

    same = {**inputs, "password": password}  # what the engine sends: secrets stripped
    assert diff(same).changes == provider_pb2.DiffResponse.DIFF_NONE
    # A different pickle of the same provider (e.g. new dill) with the same provider_version.
    other_pickle = base64.b64encode(dill.dumps(ClusterBootstrapProvider(), protocol=2)).decode()
    assert other_pickle != serialized_provider
    assert diff({**same, "__provider": other_pickle}).changes == (
        provider_pb2.DiffResponse.DIFF_NONE)
    assert diff({**same, "provider_version": "2"}).changes == provider_pb2.DiffResponse.DIFF_SOME
    rotated = {**same, "password": password + "-rotated"}
    password_diff = diff(rotated)
    assert password_diff.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert list(password_diff.replaces) == []  # in place, never a replacement

    # Moving a node is refused with a clear message before anything is touched.
    moved = [dict(n) for n in inputs["nodes"]]
    moved[0]["cluster_port"] += 1
    with pytest.raises(grpc.RpcError) as refused:
        diff({**same, "nodes": moved})
    assert "not supported by this provider" in refused.value.details()
    assert password not in refused.value.details()

    # Password change: an in-place update that keeps replication up.
    wait_for_replica_links(six_nodes)
    updated = provider_stub.Update(provider_pb2.UpdateRequest(
        id=created.id, urn=URN, olds=to_struct(outs), news=to_struct(rotated), timeout=60))
    new_outs = from_struct(updated.properties)
    assert new_outs["password"] == secret(rotated["password"])
    assert password not in json.dumps(without_secrets(new_outs))
    for key in ("nodes", "node_ids", "slot_ranges", "cluster_state", "provider_version"):
        assert new_outs[key] == outs[key], key  # update returns every output
    for node in six_nodes:
        with pytest.raises(redis.AuthenticationError):
            node.client().ping()
        replication = node.client(rotated["password"]).info("replication")
        if replication["role"] == "slave":
            assert replication["master_link_status"] == "up"

    # Re-run with the new inputs: no change.
    again = provider_stub.Diff(provider_pb2.DiffRequest(
        id=created.id, urn=URN, olds=to_struct(new_outs), news=to_struct(rotated)))
    assert again.changes == provider_pb2.DiffResponse.DIFF_NONE

    # Update with a topology change is refused and leaves the cluster as it was.
    with pytest.raises(grpc.RpcError) as refused_update:
        provider_stub.Update(provider_pb2.UpdateRequest(
            id=created.id, urn=URN, olds=to_struct(new_outs),
            news=to_struct({**rotated, "nodes": moved}), timeout=60))
    assert "not supported by this provider" in refused_update.value.details()
    assert new_outs["node_ids"] == from_struct(provider_stub.Read(provider_pb2.ReadRequest(
        id=created.id, urn=URN, properties=to_struct(new_outs))).properties)["node_ids"]

    # Read reports the live topology; delete only forgets.
    read = provider_stub.Read(provider_pb2.ReadRequest(
        id=created.id, urn=URN, properties=to_struct(new_outs)))
    read_outs = from_struct(read.properties)
    assert read_outs["cluster_state"] == "ok" and read_outs["cluster_problems"] == []
    assert read_outs["node_ids"] == outs["node_ids"]
    assert is_secret(read_outs["password"])
    provider_stub.Delete(provider_pb2.DeleteRequest(
        id=created.id, urn=URN, properties=to_struct(new_outs)))
    # Delete is synchronous: the cluster must be exactly as before.
    info = six_nodes[0].client(rotated["password"]).execute_command("CLUSTER", "INFO")
    assert "cluster_state:ok" in info and "cluster_known_nodes:6" in info


def test_create_failure_is_reported_without_the_password(
    provider_stub, serialized_provider: str, redis_nodes_factory
) -> None:
    nodes = redis_nodes_factory(6)
    holder = nodes[2].client()
    holder.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    # Alone with all slots the node turns writable after its rejoin delay.
    wait_until("the lone node to accept a write", lambda: (holder.set("precious", "1"), "ok"), 10)
    holder.execute_command("CLUSTER", "DELSLOTSRANGE", 0, 16383)
    inputs = from_struct(check(provider_stub, inputs_for(nodes, serialized_provider)).inputs)

    with pytest.raises(grpc.RpcError) as failed:
        provider_stub.Create(provider_pb2.CreateRequest(urn=URN, properties=to_struct(inputs)))

    details = failed.value.details()
    assert "refusing to form or adopt the cluster" in details
    assert "alphapulse-redis-master-3" in details and "key(s)" in details
    assert nodes.password not in details
    assert holder.dbsize() == 1


def test_secret_files_provider_loads_and_checks_in_the_provider_process(provider_stub) -> None:
    """The other dynamic provider of the stack unpickles in the real process too."""
    serialized = serialize_provider_in_fresh_process("SecretFilesProvider")
    news = {"__provider": serialized, "volume": "v", "image": "redis:7", "owner": "999:999",
            "provider_version": "1", "files": {"password": "pw-in-the-provider-process"}}
    ok = check(provider_stub, news)
    assert list(ok.failures) == []
    assert is_secret(from_struct(ok.inputs)["files"])
    bad = check(provider_stub, {**news, "files": {"../x": "y"}})
    assert [f.property for f in bad.failures] == ["files"]
