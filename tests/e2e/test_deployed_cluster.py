"""The dev stack on a real Docker engine, checked independently of the code that built it."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import urllib.request

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from tests.support.deploy_fixtures import DeployedStack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
SLOTS = 16384


def keys_for_every_slot() -> list[str]:
    """One key per hash slot, found by search (key_slot is redis-py's CRC16 mod 16384)."""
    keys: dict[int, str] = {}
    candidate = 0
    while len(keys) < SLOTS:
        key = f"e2e:{candidate}"
        keys.setdefault(key_slot(key.encode()), key)
        candidate += 1
    return [keys[slot] for slot in range(SLOTS)]


def cluster_client(stack: DeployedStack) -> RedisCluster:
    """Configured only from the stack outputs, as an application stack would."""
    settings = stack.outputs["client_settings"]
    return RedisCluster(
        startup_nodes=[ClusterNode(**node) for node in settings["startup_nodes"]],
        password=stack.outputs["password"],
        require_full_coverage=settings["require_full_coverage"],
        socket_timeout=5,
    )


def node_client(stack: DeployedStack, node: dict, password: str | None = "stack") -> redis.Redis:
    # RESP2: without a password the server must answer each command itself (NOAUTH); RESP3's
    # HELLO would be refused before any command is sent.
    return redis.Redis(
        host=node["ip"], port=node["port"], socket_timeout=3, protocol=2,
        password=stack.password if password == "stack" else password,
    )


def health(stack: DeployedStack, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clusterops", "health", "--stack-outputs",
         str(stack.outputs_file), *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )


def wait_until_healthy(stack: DeployedStack, seconds: float) -> None:
    def healthy() -> tuple[bool, str]:
        result = health(stack, "--json")
        return result.returncode == 0, f"{result.stdout}\n{result.stderr}"

    wait_until("the cluster to be healthy", healthy, seconds, 0.5)


def test_redis_cli_cluster_check_passes(deployed: DeployedStack):
    seed = deployed.outputs["seed_endpoints"][0]
    result = subprocess.run(
        ["redis-cli", "--no-auth-warning", "--cluster", "check", seed],
        env={**os.environ, "REDISCLI_AUTH": deployed.password},
        capture_output=True, text=True, timeout=60, check=False,
    )
    out = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)  # redis-cli colours even into a pipe
    assert result.returncode == 0, out + result.stderr
    assert "[OK] All nodes agree about slots configuration." in out, out
    assert "[OK] All 16384 slots covered." in out, out
    lines = out.splitlines()
    assert sum(line.startswith("M: ") for line in lines) == 3, out
    assert sum(line.startswith("S: ") for line in lines) == 3, out
    assert "keys in 3 masters." in out, out
    for line in out.splitlines():
        if line.endswith("additional replica(s)"):
            assert "1 additional replica(s)" in line, out


def test_live_config_is_what_was_declared(deployed: DeployedStack):
    for node in deployed.outputs["nodes"]:
        live = node_client(deployed, node).config_get("*")
        assert live["appendonly"] == "yes", node["name"]
        assert live["appendfsync"] == "everysec", node["name"]
        assert int(live["maxmemory"]) == deployed.outputs["maxmemory_bytes"], node["name"]
        assert live["cluster-node-timeout"] == "1000", node["name"]
        assert live["save"] == "900 1 300 10 60 10000", node["name"]


def raw_reply(host: str, port: int, *command: str) -> bytes:
    """Send one RESP command on a fresh socket and return the first reply line, unparsed."""
    payload = f"*{len(command)}\r\n".encode() + b"".join(
        f"${len(part)}\r\n{part}\r\n".encode() for part in command
    )
    with socket.create_connection((host, port), timeout=3) as conn:
        conn.sendall(payload)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply


def test_every_command_without_the_password_is_refused(deployed: DeployedStack):
    for node in deployed.outputs["nodes"]:
        for command in (("PING",), ("GET", "x"), ("SET", "x", "1"), ("CLUSTER", "INFO"),
                        ("CONFIG", "GET", "requirepass")):
            reply = raw_reply(node["ip"], node["port"], *command)
            assert reply.startswith(b"-NOAUTH"), (node["name"], command, reply)


def test_password_is_not_in_docker_inspect_or_the_process_list(deployed: DeployedStack):
    names = [n["container_name"] for n in deployed.outputs["nodes"]]
    names.append(f"{deployed.outputs['cluster_name']}-redis-exporter")
    inspect = subprocess.run(["docker", "inspect", *names], capture_output=True, text=True,
                             check=True).stdout
    assert json.loads(inspect) and len(json.loads(inspect)) == len(names)
    assert deployed.password not in inspect
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True,
                               check=True).stdout
    assert "redis-server" in processes
    assert deployed.password not in processes


def test_a_client_from_the_outputs_writes_and_reads_every_slot(deployed: DeployedStack):
    client = cluster_client(deployed)
    keys = keys_for_every_slot()
    pipe = client.pipeline()
    for key in keys:
        pipe.set(key, key[::-1])
    assert all(pipe.execute())
    pipe = client.pipeline()
    for key in keys:
        pipe.get(key)
    values = pipe.execute()
    wrong = [k for k, v in zip(keys, values, strict=True) if v != k[::-1].encode()]
    assert not wrong, f"{len(wrong)} slots did not read back, e.g. {wrong[:3]}"


def test_exporter_reports_every_node_up_and_the_cluster_ok(deployed: DeployedStack):
    base = deployed.outputs["exporter_url"]
    for node in deployed.outputs["nodes"]:
        url = f"{base}/scrape?target=redis://{node['ip']}:{node['port']}"
        with urllib.request.urlopen(url, timeout=30) as response:
            text = response.read().decode()
        lines = set(text.splitlines())
        assert "redis_up 1" in lines, (node["name"], [x for x in lines if "redis_up" in x])
        assert "redis_cluster_state 1" in lines, node["name"]


def test_health_command_passes_on_the_healthy_cluster(deployed: DeployedStack):
    result = health(deployed)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(health(deployed, "--json").stdout)
    assert report, "empty health report"


def test_a_second_run_changes_nothing_and_keeps_every_key(deployed: DeployedStack):
    client = cluster_client(deployed)
    client.set("before-rerun", "kept")
    assert deployed.stack.changes() == []
    deployed.stack.run("preview", "--stack", deployed.stack.name, "--expect-no-changes")
    # A real re-run: `pulumi up` with nothing to do touches no node and loses no key.
    ids_before = container_ids(deployed)
    deployed.stack.up()
    assert container_ids(deployed) == ids_before
    assert client.get("before-rerun") == b"kept"
    # Keys from the every-slot test are still there too.
    assert client.get(keys_for_every_slot()[16383]) is not None


def container_ids(stack: DeployedStack) -> dict[str, str]:
    names = [n["container_name"] for n in stack.outputs["nodes"]]
    inspected = json.loads(subprocess.run(["docker", "inspect", *names], capture_output=True,
                                          text=True, check=True).stdout)
    return {c["Name"].lstrip("/"): c["Id"] for c in inspected}


def full_syncs(stack: DeployedStack, password: str) -> int:
    return sum(int(node_client(stack, n, password=password).info("stats")["sync_full"])
               for n in stack.outputs["nodes"])


def test_password_rotation_through_a_deploy_restarts_no_node(deployed: DeployedStack):
    """`pulumi up` with a new password: the secret files are rewritten in their volumes, the
    provider switches the live password (CONFIG SET), no node container is replaced and no
    replica resyncs; only the stateless exporter is recreated to read its new file."""
    old = deployed.password
    cluster_client(deployed).set("before-rotation", "kept")
    ids_before, syncs_before = container_ids(deployed), full_syncs(deployed, old)
    new = secrets.token_urlsafe(24)
    deployed.stack.set_config({"password": new}, secret=True)
    planned = deployed.stack.changes()
    assert [name for op, name in planned if op == "replace"] == ["redis-cluster-redis-exporter"]
    updated = [name for op, name in planned if op == "update"]
    assert sum(name.endswith("-secret-files") for name in updated) == 7, planned
    assert "redis-cluster-bootstrap" in updated, planned
    # The generated password gives way to the configured one.
    assert ("delete", "redis-password") in planned, planned
    deployed.stack.up()
    deployed.reload_outputs()
    assert deployed.password == new
    assert container_ids(deployed) == ids_before
    assert full_syncs(deployed, new) == syncs_before
    wait_until_healthy(deployed, seconds=60)
    assert cluster_client(deployed).get("before-rotation") == b"kept"
    for node in deployed.outputs["nodes"]:
        with pytest.raises(redis.AuthenticationError):
            node_client(deployed, node, password=old).ping()
    # A node restarted later reads the new password from its files.
    replica = deployed.node("alphapulse-redis-replica-3")
    subprocess.run(["docker", "restart", "-t", "5", replica["container_name"]], check=True,
                   capture_output=True)
    wait_until_healthy(deployed, seconds=60)
    assert node_client(deployed, replica).ping()
    assert deployed.stack.changes() == []


def test_health_fails_naming_the_node_that_is_stopped(deployed: DeployedStack):
    victim = deployed.node("alphapulse-redis-replica-2")
    subprocess.run(["docker", "stop", "-t", "1", victim["container_name"]], check=True,
                   capture_output=True)
    try:
        result = health(deployed)
        assert result.returncode != 0, result.stdout
        assert victim["name"] in result.stdout + result.stderr
    finally:
        subprocess.run(["docker", "start", victim["container_name"]], check=True,
                       capture_output=True)
    wait_until_healthy(deployed, seconds=60)


def test_destroy_leaves_no_container_network_or_volume(deployed: DeployedStack):
    """`pulumi destroy` of dev (protectData false): everything goes, data volumes included."""
    deployed.stack.destroy()
    prefix = deployed.outputs["cluster_name"]
    left = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label=com.alphapulse.cluster={prefix}",
         "--format", "{{.Names}}"], capture_output=True, text=True, check=True,
    ).stdout.split()
    assert left == []
    networks = subprocess.run(["docker", "network", "ls", "--format", "{{.Name}}"],
                              capture_output=True, text=True, check=True).stdout.split()
    assert deployed.outputs["network_name"] not in networks
    # No volume holding the password survives either.
    secret_volumes = subprocess.run(
        ["docker", "volume", "ls", "-q", "--filter", "label=com.alphapulse.secrets"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert secret_volumes == []
    data_volumes = subprocess.run(
        ["docker", "volume", "ls", "-q", "--filter", "label=com.alphapulse.node"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert data_volumes == []
    assert deployed.stack.state()["deployment"].get("resources") in (None, [])
