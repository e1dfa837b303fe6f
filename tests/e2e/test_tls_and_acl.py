"""TLS on every link and ACL users, deployed by the real `pulumi up` on real Docker (tls: true,
acl: true in one stack, so everything is proven with both on at once).

What it proves: plaintext is refused; a client without the cluster's CA cannot connect; the
outputs' client (clusterops/client.py, the application user) reaches every slot over TLS;
the application user is refused admin and dangerous commands, the default user is off, and no
password is in `docker inspect`; health, the exporter (rediss:// targets with the CA, the
read-only exporter user, nothing refused in ACL LOG) and a failover drill work with replication
and the bus on TLS (recovery measured beside a plaintext stack in the same run); re-issued
certificates are loaded, a switch to the operator's own CA is made live, and every user's
password is rotated, without replacing a node or losing a key; switching a live plaintext
stack to TLS or to ACL users is refused at preview.
"""

from __future__ import annotations

import json
import secrets
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from clusterops.client import from_stack_outputs
from clusterops.core.model import HASH_SLOTS
from tests.support.deploy_fixtures import DeployedStack, deploy_stack
from tests.support.every_slot import written_and_read_back
from tests.support.live_writer import LiveWriter, lost_acknowledged
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TLS_STACK = {"namePrefix": "aptls", "networkName": "aptls_redis-cluster",
             "subnet": "172.31.84.0/24", "basePort": "7901", "exporterPort": "9921",
             "prometheusPort": "9990", "tls": "true", "acl": "true",
             "deployPrometheus": "true"}
# Refused to the application user (as the issue lists them: config, flush, cluster reset, KEYS).
REFUSED_TO_APP = [("CONFIG", "SET", "maxmemory", "0"), ("FLUSHALL",), ("CLUSTER", "RESET"),
                  ("KEYS", "*"), ("ACL", "LIST")]
PLAIN_STACK = {"namePrefix": "applain", "networkName": "applain_redis-cluster",
               "subnet": "172.31.85.0/24", "basePort": "7951", "exporterPort": "9951",
               "prometheusPort": "9995"}


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedStack]:
    yield from deploy_stack(tmp_path_factory.mktemp("tls"), "dev", **TLS_STACK)


def served_certificate(node: dict[str, Any], ca: str) -> bytes:
    """The DER certificate the node presents (verified against the CA and its address)."""
    context = ssl.create_default_context(cadata=ca)
    with socket.create_connection((node["ip"], node["port"]), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=node["ip"]) as tls:
        return tls.getpeercert(binary_form=True) or b""


def container_ids(stack: DeployedStack) -> dict[str, str]:
    names = [n["container_name"] for n in stack.outputs["nodes"]]
    inspected = json.loads(subprocess.run(["docker", "inspect", *names], capture_output=True,
                                          text=True, check=True).stdout)
    return {c["Name"].lstrip("/"): c["Id"] for c in inspected}


def test_plaintext_and_clients_without_the_ca_are_refused(tls_stack: DeployedStack):
    assert tls_stack.outputs["cluster_state"] == "ok"
    assert tls_stack.stack.changes() == []  # a TLS stack's second preview is quiet too
    node = tls_stack.outputs["nodes"][0]
    user = tls_stack.outputs["username"]
    plain = redis.Redis(node["ip"], node["port"], username=user, password=tls_stack.password,
                        socket_timeout=3, socket_connect_timeout=3)
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    no_ca = redis.Redis(node["ip"], node["port"], username=user, password=tls_stack.password,
                        ssl=True,
                        ssl_cert_reqs="required", socket_timeout=3, socket_connect_timeout=3)
    with pytest.raises(redis.ConnectionError, match="(?i)certificate verify failed"):
        no_ca.ping()
    with_ca = admin_client(tls_stack, node)
    assert with_ca.ping() is True
    # Replication and the cluster bus run over TLS too (their own settings say so).
    settings = with_ca.config_get("tls-*")
    assert settings["tls-replication"] == "yes" and settings["tls-cluster"] == "yes"
    assert with_ca.config_get("port")["port"] == "0"


def admin_client(stack: DeployedStack, node: dict[str, Any], **options: Any) -> redis.Redis:
    return redis.Redis(node["ip"], node["port"], username=stack.outputs["admin_username"],
                       password=stack.outputs["admin_password"], ssl=True,
                       ssl_ca_data=stack.outputs["tls_ca_cert"], ssl_cert_reqs="required",
                       ssl_check_hostname=True, socket_timeout=5, **options)


def app_client(stack: DeployedStack, node: dict[str, Any], password: str | None = None
               ) -> redis.Redis:
    return redis.Redis(node["ip"], node["port"], username=stack.outputs["username"],
                       password=password or stack.password, ssl=True,
                       ssl_ca_data=stack.outputs["tls_ca_cert"], ssl_cert_reqs="required",
                       socket_timeout=5)


def test_the_app_user_has_data_commands_only_and_no_password_is_in_docker_inspect(
        tls_stack: DeployedStack):
    outputs = tls_stack.outputs
    assert (outputs["username"], outputs["admin_username"]) == ("app", "admin")
    node = outputs["nodes"][0]
    app = app_client(tls_stack, node)
    for command in REFUSED_TO_APP:
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.execute_command(*command)
    # The default user is off: the application's password alone opens nothing.
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(node["ip"], node["port"], password=tls_stack.password, ssl=True,
                    ssl_ca_data=outputs["tls_ca_cert"], socket_timeout=5, protocol=2).ping()
    names = [n["container_name"] for n in outputs["nodes"]] + [
        f"{outputs['cluster_name']}-redis-exporter"]
    inspected = subprocess.run(["docker", "inspect", *names], capture_output=True, text=True,
                               check=True).stdout
    for secret in (tls_stack.password, outputs["admin_password"]):
        assert secret not in inspected


def test_the_outputs_client_reaches_every_slot_over_tls(tls_stack: DeployedStack):
    client = from_stack_outputs(tls_stack.outputs, "network")
    assert written_and_read_back(client, "tls") == HASH_SLOTS


def test_health_and_the_exporter_work_over_tls(tls_stack: DeployedStack):
    assert_health_and_exporter_over_tls(tls_stack)


def assert_health_and_exporter_over_tls(stack: DeployedStack) -> None:
    """`clusterops health` passes; the exporter scrapes every node over TLS (rediss://) as the
    read-only exporter user, and that user was refused nothing (ACL LOG)."""
    done = subprocess.run([sys.executable, "-m", "clusterops", "health", "--stack-outputs",
                           str(stack.outputs_file)], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    exporter = stack.outputs["exporter_url"]
    for node in stack.outputs["nodes"]:
        target = f"rediss://{node['ip']}:{node['port']}"
        text = subprocess.run(["curl", "-sf", f"{exporter}/scrape?target={target}"],
                              capture_output=True, text=True, timeout=30, check=False).stdout
        lines = text.splitlines()
        assert "redis_up 1" in lines, (node["name"], text[-500:])
        assert "redis_cluster_state 1" in lines, node["name"]
        # The read-only exporter user was refused nothing during the scrapes.
        with admin_client(stack, node) as admin:
            denied = [entry for entry in admin.execute_command("ACL", "LOG")
                      if entry.get("username") == "exporter"]
        assert denied == [], (node["name"], denied)


def test_backup_and_the_in_stack_prometheus_work_with_tls_and_acl_users(
        tls_stack: DeployedStack, tmp_path: Path):
    client = from_stack_outputs(tls_stack.outputs, "network")
    for i in range(300):
        client.set(f"restore:{i}", i, px=3_600_000 if i % 3 == 0 else None)
    done = subprocess.run([sys.executable, "-m", "clusterops", "backup", "--stack-outputs",
                           str(tls_stack.outputs_file), "--dest", str(tmp_path), "--json"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    backup = json.loads(done.stdout)
    assert backup["slots_covered"] == HASH_SLOTS
    # The backup restored into the same cluster over TLS (every key replaced by its own
    # copy), then verified key by key against the backup.
    done = subprocess.run([sys.executable, "-m", "clusterops", "restore", "--stack-outputs",
                           str(tls_stack.outputs_file), "--from", backup["folder"], "--merge",
                           "--replace", "--json"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    restored = json.loads(done.stdout)
    assert restored["keys_in_backup"] > 0 and restored["ok"], restored
    assert restored["conflicts_replaced"] == restored["keys_in_backup"], restored
    # Prometheus scrapes every node through the exporter (rediss://, the exporter user).
    query = f"{tls_stack.outputs['prometheus_url']}/api/v1/query?query=redis_up"

    def every_node_up() -> tuple[bool, Any]:
        fetched = subprocess.run(["curl", "-sf", query], capture_output=True, text=True,
                                 timeout=10, check=False)
        if fetched.returncode != 0:
            return False, f"curl exit {fetched.returncode}"
        seen = {r["metric"].get("node"): r["value"][1]
                for r in json.loads(fetched.stdout)["data"]["result"]}
        return len(seen) == len(tls_stack.outputs["nodes"]) and set(seen.values()) == {"1"}, seen

    wait_until("Prometheus to see redis_up 1 for every node", every_node_up, 90, 2)


def drill_recovery(stack: DeployedStack) -> float:
    done = subprocess.run(
        [sys.executable, "-m", "clusterops", "drill", "--stack-outputs",
         str(stack.outputs_file), "--json", "--master", f"{stack.outputs['cluster_name']}"
         "-redis-master-1", "--mode", "kill"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, check=False)
    report = json.loads(done.stdout)
    assert len(report["drills"]) == 1, (report, done.stderr[-2000:])
    (entry,) = report["drills"]
    assert done.returncode == 0 and entry["failures"] == [], report
    assert entry["acked_lost"] == 0 and entry["acked_writes"] > 0 and entry["rejoined"], entry
    return float(entry["recovery_seconds"])


def test_failover_over_tls_beside_plaintext_and_no_live_switch_to_tls(
        tls_stack: DeployedStack, tmp_path: Path):
    tls_s = drill_recovery(tls_stack)
    deploy = deploy_stack(tmp_path, "dev", **PLAIN_STACK)
    plain_stack = next(deploy)
    try:
        plain_s = drill_recovery(plain_stack)
        # A live plaintext cluster is not switched to TLS: refused at preview, nothing changed.
        handle = plain_stack.stack
        handle.set_config({"tls": "true"})
        refused = handle.run("preview", "--stack", handle.name, check=False)
        text = refused.stdout + refused.stderr
        assert refused.returncode != 0, text[-2000:]
        assert "this cluster runs plaintext and the stack now asks for TLS" in text, text[-3000:]
        handle.set_config({"tls": "false", "acl": "true"})
        refused = handle.run("preview", "--stack", handle.name, check=False)
        text = refused.stdout + refused.stderr
        assert refused.returncode != 0, text[-2000:]
        assert "this cluster runs without ACL users and the stack now asks for ACL users" in (
            text), text[-3000:]
        handle.set_config({"acl": "false"})
        assert handle.changes() == []
    finally:
        deploy.close()
    print(f"\nfailover (kill master-1), client-observed recovery: TLS + ACL users "
          f"{tls_s:.2f} s, plaintext {plain_s:.2f} s (same run)")
    assert tls_s < 5.0


def test_reissued_certificates_are_loaded_without_a_restart(tls_stack: DeployedStack):
    node = tls_stack.outputs["nodes"][0]
    ca = tls_stack.outputs["tls_ca_cert"]
    before_cert = served_certificate(node, ca)
    ids = container_ids(tls_stack)
    client = from_stack_outputs(tls_stack.outputs, "network")
    client.set("kept-through-rotation", "yes")
    handle = tls_stack.stack
    handle.set_config({"tlsCertDays": "400"})  # every node certificate is issued again
    changes = handle.changes()
    assert ("update", "redis-cluster-tls") in changes, changes
    # No node is replaced (the stateless exporter may be: its CA file's content is unknown
    # to the preview while the certificates are being issued).
    replaced = [name for op, name in changes if op in ("replace", "create-replacement")]
    assert replaced in ([], ["redis-cluster-redis-exporter"]), changes
    handle.up()
    tls_stack.reload_outputs()
    assert container_ids(tls_stack) == ids  # nothing restarted
    after_cert = served_certificate(node, tls_stack.outputs["tls_ca_cert"])
    assert after_cert != before_cert  # the running node serves the new certificate
    client = from_stack_outputs(tls_stack.outputs, "network")
    assert client.get("kept-through-rotation") == b"yes"
    assert handle.changes() == []


def test_switching_to_an_operators_ca_is_live_and_its_key_stays_secret(
        tls_stack: DeployedStack):
    """tlsCaCert (an intermediate and its root) and the secret tlsCaKey set on the running
    stack: every node gets a certificate from that intermediate and loads it without a
    restart; a client trusting only the operator's chain reaches every slot; health and the
    exporter work; the CA key is in the state only encrypted. The tests after this one (image
    roll, password rotation) then run on the operator's CA."""
    from cryptography import x509

    from tests.unit.test_tls_material import company_pki

    key, chain, _root = company_pki()
    ids = container_ids(tls_stack)
    before = tls_stack.outputs["tls_ca_cert"]
    from_stack_outputs(tls_stack.outputs, "network").set("kept-through-ca-switch", "yes")
    handle = tls_stack.stack
    handle.set_config({"tlsCaCert": chain})
    handle.set_config({"tlsCaKey": key}, secret=True)
    assert ("update", "redis-cluster-tls") in handle.changes()
    handle.up()
    tls_stack.reload_outputs()
    assert container_ids(tls_stack) == ids  # no node restarted
    # The stack's own CA stays trusted beside the operator's during the switch.
    assert tls_stack.outputs["tls_ca_cert"] == chain + before
    for node in tls_stack.outputs["nodes"]:
        served = x509.load_der_x509_certificate(served_certificate(node, chain))
        assert served.issuer.rfc4514_string() == "CN=Ops Intermediate CA", node["name"]
    operators_only = {**tls_stack.outputs, "tls_ca_cert": chain}
    client = from_stack_outputs(operators_only, "network")
    assert client.get("kept-through-ca-switch") == b"yes"
    assert written_and_read_back(client, "operator-ca") == HASH_SLOTS
    done = subprocess.run([sys.executable, "-m", "clusterops", "health", "--stack-outputs",
                           str(tls_stack.outputs_file)], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    node = tls_stack.outputs["nodes"][0]
    target = f"rediss://{node['ip']}:{node['port']}"

    def exporter_up() -> tuple[bool, str]:
        text = subprocess.run(["curl", "-sf", f"{tls_stack.outputs['exporter_url']}/scrape?"
                               f"target={target}"], capture_output=True, text=True, timeout=30,
                              check=False).stdout
        return "redis_up 1" in text.splitlines(), text[-300:]

    wait_until("the exporter to scrape the node with the operator's CA", exporter_up, 60, 1)
    key_body = "".join(key.splitlines()[1:-1])
    state = json.dumps(handle.state())
    assert key_body[:40] not in state and key.splitlines()[1] not in state
    assert handle.changes() == []


def test_a_new_image_rolls_over_tls_with_acl_users_under_traffic(tls_stack: DeployedStack):
    """The node handovers reach the nodes over TLS as the admin user: an image change rolls one
    node per shard (replica first, then a failover to it), and the application user's writer
    loses no acknowledged write."""
    handle = tls_stack.stack
    image = handle.run("config", "get", "--stack", handle.name,
                       "alphapulse-redis-cluster:redisImage").stdout.strip()
    retagged = f"{image.rsplit(':', 1)[0]}:tlsroll-{secrets.token_hex(3)}"
    subprocess.run(["docker", "tag", image, retagged], check=True)
    outputs = tls_stack.outputs
    before = container_ids(tls_stack)
    writer = LiveWriter([(n["ip"], n["port"]) for n in outputs["nodes"] if n["role"] == "master"],
                        tls_stack.password, secrets.token_hex(4), username=outputs["username"],
                        ssl=True, ssl_ca_data=outputs["tls_ca_cert"], ssl_cert_reqs="required")
    try:
        handle.set_config({"redisImage": retagged})
        writer.start()
        handle.up()
        result = writer.stop()
        lost = lost_acknowledged(writer, result)
        print(f"\nimage roll over TLS + ACL users under the writer: {result.summary()}")
        assert len(result.acked) > 100 and lost == [], (result.summary(), lost[:5])
        assert not set(before.values()) & set(container_ids(tls_stack).values())
        done = subprocess.run([sys.executable, "-m", "clusterops", "health", "--stack-outputs",
                               str(tls_stack.outputs_file)], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    finally:
        if writer.is_alive():
            writer.stop()
        handle.set_config({"redisImage": image})
        handle.up()
        subprocess.run(["docker", "rmi", retagged], capture_output=True, check=False)


def test_every_users_password_is_rotated_live(tls_stack: DeployedStack):
    """New app, admin, exporter and replication passwords in one `pulumi up`: no node is
    replaced, a client connected before keeps working, the old passwords are refused, the
    replicas stay linked and health passes as the new admin."""
    outputs = tls_stack.outputs
    node = outputs["nodes"][0]
    old_app, old_admin = tls_stack.password, outputs["admin_password"]
    ids = container_ids(tls_stack)
    # A connection opened before (to node 0, whatever its role after the drill), and a key.
    connected = app_client(tls_stack, node)
    before_id = connected.client_id()
    from_stack_outputs(outputs, "network").set("kept-through-acl-rotation", "yes")
    handle = tls_stack.stack
    new = {key: f"{key}-{secrets.token_hex(12)}" for key in
           ("password", "adminPassword", "exporterPassword", "replicationPassword")}
    handle.set_config(new, secret=True)
    changes = handle.changes()
    replaced = [name for op, name in changes if op in ("replace", "create-replacement")]
    # Only the stateless exporter is recreated (it reads its password file at start).
    assert replaced in ([], ["redis-cluster-redis-exporter"]), changes
    handle.up()
    tls_stack.reload_outputs()
    assert container_ids(tls_stack) == ids  # no node restarted
    assert tls_stack.password == new["password"]
    assert tls_stack.outputs["admin_password"] == new["adminPassword"]
    assert connected.client_id() == before_id  # never disconnected
    client = from_stack_outputs(tls_stack.outputs, "network")
    assert client.get("kept-through-acl-rotation") == b"yes"
    with pytest.raises(redis.AuthenticationError):
        app_client(tls_stack, node, password=old_app).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(node["ip"], node["port"], username="admin", password=old_admin, ssl=True,
                    ssl_ca_data=outputs["tls_ca_cert"], socket_timeout=5).ping()
    done = subprocess.run([sys.executable, "-m", "clusterops", "health", "--stack-outputs",
                           str(tls_stack.outputs_file)], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    for secret in (*new.values(), old_app, old_admin):
        assert secret not in done.stdout + done.stderr
    assert handle.changes() == []
