"""TLS on every link and ACL users on the Kubernetes target, under Pulumi's mocks: what each
object holds, who reads which password, and that no password or private key leaves the Secret.

(On real pods: tests/e2e/test_k8s_secure.py.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography import x509

from clusterops.provision.acl_users import password_hash
from components.tls_material import cert_names, problems
from tests.support.k8s_manifests import kind_name, manifests_from_run
from tests.support.program_runner import (
    K8S_OPERATIONS_TYPE,
    SECRET_SIG,
    SIG_KEY,
    ProgramRun,
    run_program,
    stack_config_file,
)

PASSWORDS = {"password": "app-password-0123456789", "adminPassword": "admin-password-0123456",
             "exporterPassword": "exporter-password-0123", "replicationPassword":
             "replication-password-01"}
SECRETS_DIR = "/usr/local/etc/redis/secrets"
NS = "alphapulse-redis"
HEADLESS = f"alphapulse-redis-nodes.{NS}.svc.cluster.local"


def secure_config(**overrides: str) -> dict[str, str]:
    config = {**stack_config_file("k8s"), **PASSWORDS, "tls": "true", "acl": "true",
              **overrides}
    config.pop("renderDir", None)  # applied to a cluster: the operations resource exists
    return config


@pytest.fixture(scope="module")
def run() -> ProgramRun:
    return run_program("k8s", secure_config(), secret_keys=tuple(PASSWORDS))


@pytest.fixture(scope="module")
def manifests(run: ProgramRun) -> dict[str, dict[str, Any]]:
    return {kind_name(m): m for m in manifests_from_run(run)}


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]


def secret_items(spec: dict[str, Any], volume: str = "auth") -> dict[str, str]:
    [found] = [v for v in spec["volumes"] if v["name"] == volume]
    return {i["key"]: i["path"] for i in found["secret"]["items"]}


def test_the_secret_holds_every_credential_and_the_tls_material(manifests):
    data = manifests["Secret/alphapulse-redis-auth"]["stringData"]
    # `password` stays the application user's: in-cluster clients mount it.
    assert data["password"] == PASSWORDS["password"]
    assert data["admin-password"] == PASSWORDS["adminPassword"]
    assert data["probe-password"] == PASSWORDS["exporterPassword"]
    assert data["auth.conf"].splitlines() == [
        f"aclfile {SECRETS_DIR}/users.acl", 'masteruser "replication"',
        f'masterauth "{PASSWORDS["replicationPassword"]}"']
    users = data["users.acl"]
    assert "user default off" in users
    for key, value in PASSWORDS.items():
        assert value not in users, key
    assert f"#{password_hash(PASSWORDS['adminPassword'])}" in users
    exporter_file = json.loads(data["exporter-passwords.json"])
    assert set(exporter_file.values()) == {PASSWORDS["exporterPassword"]}
    assert all(uri.startswith("rediss://") and HEADLESS in uri for uri in exporter_file)
    assert not problems(data["tls-ca.crt"], data["tls-node.crt"], data["tls-node.key"])


def test_the_certificate_names_every_pod_and_both_services(manifests):
    cert = manifests["Secret/alphapulse-redis-auth"]["stringData"]["tls-node.crt"]
    names = cert_names(cert)
    assert f"*.{HEADLESS}" in names
    for service in ("alphapulse-redis", "alphapulse-redis-nodes"):
        assert {service, f"{service}.{NS}", f"{service}.{NS}.svc",
                f"{service}.{NS}.svc.cluster.local"} <= set(names)
    assert {"localhost", "127.0.0.1"} <= set(names)
    parsed = x509.load_pem_x509_certificate(cert.encode())
    assert parsed.not_valid_after_utc > parsed.not_valid_before_utc


def test_no_password_or_key_outside_the_secret(manifests):
    key = manifests["Secret/alphapulse-redis-auth"]["stringData"]["tls-node.key"]
    secrets = [*PASSWORDS.values(), key.splitlines()[1]]
    for name, manifest in manifests.items():
        if manifest["kind"] != "Secret":
            text = json.dumps(manifest)
            assert not [s for s in secrets if s in text], f"{name} holds a secret"


def test_nodes_speak_only_tls_and_probe_as_the_exporter_user(manifests):
    conf = manifests["ConfigMap/alphapulse-redis-config"]["data"][
        "alphapulse-redis-shard-1-0.conf"]
    for line in ("port 0", "tls-port 6379", "tls-cluster yes", "tls-replication yes",
                 f"tls-cert-file {SECRETS_DIR}/tls-node.crt",
                 f"tls-ca-cert-file {SECRETS_DIR}/tls-ca.crt"):
        assert line in conf.splitlines(), line
    spec = pod_spec(manifests["StatefulSet/alphapulse-redis-shard-1"])
    # The probes' file is the exporter user's password; the sidecar reads the admin user's.
    assert secret_items(spec) == {
        "auth.conf": "auth.conf", "probe-password": "password",
        "admin-password": "admin-password", "users.acl": "users.acl",
        "tls-ca.crt": "tls-ca.crt", "tls-node.crt": "tls-node.crt",
        "tls-node.key": "tls-node.key"}
    redis, sidecar = spec["containers"]
    probe = redis["readinessProbe"]["exec"]["command"][2]
    assert f"redis-cli --user exporter --tls --cacert {SECRETS_DIR}/tls-ca.crt" in probe
    assert sidecar["command"][-1] == f"{SECRETS_DIR}/admin-password"
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env["REDIS_CLI_ARGS"] == f"--user admin --tls --cacert {SECRETS_DIR}/tls-ca.crt"
    assert env["TLS_FILES"].split()[:2] == ["tls-cert-file", f"{SECRETS_DIR}/tls-node.crt"]


def test_the_exporter_scrapes_over_tls_as_its_own_user(manifests):
    spec = pod_spec(manifests["Deployment/alphapulse-redis-exporter"])
    args = spec["containers"][0]["args"]
    assert "--redis.user=exporter" in args
    assert "--tls-ca-cert-file=/etc/redis_exporter/ca.crt" in args
    assert secret_items(spec) == {"exporter-passwords.json": "passwords.json",
                                  "tls-ca.crt": "ca.crt"}


def test_the_job_forms_as_the_admin_user_over_tls(manifests):
    [job] = [m for m in manifests.values() if m["kind"] == "Job"]
    spec = pod_spec(job)
    command = spec["containers"][0]["command"]
    assert command[command.index("--user") + 1] == "admin"
    assert command[command.index("--password-file") + 1].endswith("/admin-password")
    assert command[command.index("--tls-ca-file") + 1].endswith("/tls-ca.crt")
    assert secret_items(spec) == {"admin-password": "admin-password",
                                  "tls-ca.crt": "tls-ca.crt"}


def test_the_operations_resource_acts_as_admin_with_the_ca_and_the_users(run: ProgramRun):
    [ops] = run.of_type(K8S_OPERATIONS_TYPE)
    assert {n["username"] for n in ops.inputs["nodes"]} == {"admin"}
    assert ops.raw_inputs["password"][SIG_KEY] == SECRET_SIG
    assert ops.raw_inputs["acl"][SIG_KEY] == SECRET_SIG  # holds the replication password
    assert "BEGIN CERTIFICATE" in ops.inputs["tls"]["ca_bundle"]
    assert ops.inputs["tls"]["token"]


def test_the_outputs_give_clients_the_ca_and_users(run: ProgramRun, manifests):
    outputs = run.outputs
    ca = manifests["Secret/alphapulse-redis-auth"]["stringData"]["tls-ca.crt"]
    assert outputs["tls_ca_cert"] == ca
    assert (outputs["username"], outputs["admin_username"]) == ("app", "admin")
    assert {"password", "admin_password"} <= run.secret_outputs


def test_a_plaintext_stack_keeps_its_secret_and_pods_as_they_were(run: ProgramRun):
    """Without TLS and ACL users nothing new appears: existing stacks see no change. (And a
    reshape pace reaches the operations resource only when set.)"""
    config = {**stack_config_file("k8s"), "password": PASSWORDS["password"],
              "reshapeMaxKeysPerSecond": "20000"}
    config.pop("renderDir", None)
    plain_run = run_program("k8s", config)
    [ops] = plain_run.of_type(K8S_OPERATIONS_TYPE)
    assert ops.inputs["reshape_max_keys_per_second"] == 20000
    assert "reshape_max_keys_per_second" not in run.of_type(K8S_OPERATIONS_TYPE)[0].inputs
    plain = {kind_name(m): m for m in manifests_from_run(plain_run)}
    assert sorted(plain["Secret/alphapulse-redis-auth"]["stringData"]) == [
        "auth.conf", "exporter-passwords.json", "password"]
    spec = pod_spec(plain["StatefulSet/alphapulse-redis-shard-1"])
    assert secret_items(spec) == {"auth.conf": "auth.conf", "password": "password"}
    assert "env" not in spec["containers"][1]
