"""TLS on every link and ACL users on a Kubernetes stack, on the local three-node cluster.

One stack with `tls: true` and `acl: true`, as a prod stack gets by default: formed by the Job
as the admin user over TLS; an application pod reaches every shard as the app user through the
client Service, checking each node's name against its certificate; plaintext, the default user
and an admin command are refused; the exporter scrapes every node over TLS as its own user;
`clusterops health` runs in a pod as the admin user; the app password rotates with no pod
restarted; a new CA (tlsGeneration) reaches every node without a restart (the sidecar reloads
the files once the kubelet updated them); switching TLS or ACL users off is refused at preview.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clusterops.core.poll import Deadline, poll
from tests.e2e.test_k8s_cluster import (
    NAMESPACE,
    REDIS_SELECTOR,
    SERVICE_DNS,
    clusterops_cli,
    local_stack_images,
    stack_settings,
)
from tests.e2e.test_k8s_day2 import scraped_redis_up
from tests.support import k8s_client_pods
from tests.support.local_k8s import api, k8s_stack_up, local_cluster_running, pods
from tests.support.pulumi_cli import PulumiCommandError, PulumiStack

pytestmark = pytest.mark.e2e

APP_PASSWORD = "k8s-secure-app-password-0123"
ROTATED = "k8s-secure-rotated-password-0123"
CA_PATH = "/etc/alphapulse/secret/tls-ca.crt"
SECRET_NAME = "alphapulse-redis-auth"

# Run in an application pod (the tools image: Python and redis-py), as the app user. Prints one
# JSON line: what worked and how each refusal looked.
CLIENT_SCRIPT = """
import json, socket, ssl
import redis
from redis.cluster import RedisCluster
ca = open(%(ca)r).read()
password = open("/etc/alphapulse/secret/password").read().strip()
tls = dict(ssl=True, ssl_ca_data=ca, ssl_cert_reqs="required", ssl_check_hostname=True)
seen = {}
cluster = RedisCluster(host=%(service)r, port=6379, username="app", password=password,
                       decode_responses=True, socket_timeout=5, **tls)
for i in range(300):
    cluster.set(f"secure:{i}", str(i))
seen["read_back"] = sum(cluster.get(f"secure:{i}") == str(i) for i in range(300))
seen["masters_used"] = len({cluster.get_node_from_key(f"secure:{i}").name for i in range(300)})
def refusal(call):
    try:
        call()
        return "accepted"
    except Exception as exc:
        return type(exc).__name__ + ": " + str(exc)[:160]
seen["plaintext"] = refusal(lambda: redis.Redis(host=%(service)r, port=6379, username="app",
                            password=password, socket_timeout=3).ping())
seen["default_user"] = refusal(lambda: redis.Redis(host=%(service)r, port=6379,
                               password=password, socket_timeout=3, **tls).ping())
seen["old_password"] = refusal(lambda: redis.Redis(host=%(service)r, port=6379, username="app",
                               password=%(old)r, socket_timeout=3, **tls).ping())
seen["admin_command"] = refusal(lambda: cluster.config_get("maxmemory"))
ip = socket.gethostbyname(%(service)r)
seen["by_ip"] = refusal(lambda: redis.Redis(host=ip, port=6379, username="app",
                        password=password, socket_timeout=3, **tls).ping())
print("SEEN " + json.dumps(seen), flush=True)
"""


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    return local_stack_images()


@pytest.fixture(scope="module")
def kubeconfig(images: dict[str, str]) -> Iterator[Path]:
    with local_cluster_running(list(images.values())) as path:
        yield path


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, kubeconfig: Path,
             images: dict[str, str]) -> Iterator[tuple[PulumiStack, float]]:
    settings = {**stack_settings(images), "tls": "true", "acl": "true"}
    with k8s_stack_up(tmp_path_factory.mktemp("k8s-secure"), kubeconfig, settings,
                      secrets={"password": APP_PASSWORD}) as deployed:
        yield deployed


def pod_states() -> dict[str, str]:
    """pod -> uid:restarts of its containers."""
    return {p["metadata"]["name"]: f"{p['metadata']['uid']}:" + str(sum(
        c.get("restartCount", 0) for c in p.get("status", {}).get("containerStatuses", [])))
        for p in pods(NAMESPACE, REDIS_SELECTOR)}


def app_client_sees(image: str, name: str, old_password: str) -> dict[str, Any]:
    script = CLIENT_SCRIPT % {"ca": CA_PATH, "service": SERVICE_DNS, "old": old_password}
    log = k8s_client_pods.run_client_pod(name, NAMESPACE, image, script,
                                         secret_keys=("password", "tls-ca.crt"))
    [line] = [x for x in log.splitlines() if x.startswith("SEEN ")]
    return json.loads(line.removeprefix("SEEN "))


def assert_client_view(seen: dict[str, Any]) -> None:
    assert seen["read_back"] == 300 and seen["masters_used"] == 3, seen
    assert seen["plaintext"] != "accepted", seen  # port 0: TLS only
    assert seen["default_user"].startswith("AuthenticationError"), seen  # default user off
    assert "NoPermission" in seen["admin_command"], seen
    # The certificate names the DNS names, never an IP: a client that checks names refuses it.
    assert "certificate" in seen["by_ip"].lower() or "SSL" in seen["by_ip"], seen
    print(f"refusals seen by the app pod: {seen}")


def exporter_scrapes(node_count: int) -> tuple[bool, str]:
    """redis_up 1 for every node through the exporter's /scrape, over TLS."""
    exporters = [p for p in pods(NAMESPACE, "app.kubernetes.io/component=exporter")
                 if not p["metadata"].get("deletionTimestamp")]
    ip = exporters[0].get("status", {}).get("podIP") if len(exporters) == 1 else None
    if not ip:
        return False, f"{len(exporters)} exporter pods, none settled"
    seen = []
    for pod in pods(NAMESPACE, REDIS_SELECTOR):
        seen.append(scraped_redis_up(ip, f"rediss://{pod['metadata']['name']}."
                                         f"alphapulse-redis-nodes.{NAMESPACE}"
                                         ".svc.cluster.local:6379"))
    return seen == ["1"] * node_count, str(seen)


def served_certificates() -> dict[str, str]:
    """pod -> the certificate its node presents now (PEM), read at the pod's IP."""
    found = {}
    for pod in pods(NAMESPACE, REDIS_SELECTOR):
        ip = pod.get("status", {}).get("podIP")
        if ip:
            try:
                found[pod["metadata"]["name"]] = ssl.get_server_certificate((ip, 6379),
                                                                            timeout=5)
            except OSError as exc:
                found[pod["metadata"]["name"]] = repr(exc)
    return found


def secret_certificate() -> str:
    data = api().get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{SECRET_NAME}")["data"]
    return base64.b64decode(data["tls-node.crt"]).decode()


def same_pem(one: str, other: str) -> bool:
    return ssl.PEM_cert_to_DER_cert(one) == ssl.PEM_cert_to_DER_cert(other) \
        if "BEGIN" in one and "BEGIN" in other else False


def refused_preview(handle: PulumiStack, key: str, value: str) -> str:
    handle.set_config({key: value})
    try:
        with pytest.raises(PulumiCommandError) as refused:
            handle.preview()
    finally:
        handle.set_config({key: "true"})
    return str(refused.value)


def test_tls_and_acl_users_on_real_pods(deployed, images, kubeconfig, tmp_path):
    handle, first_up_s = deployed
    outputs = handle.outputs()
    assert outputs["cluster_state"] == "ok" and len(outputs["node_ids"]) == 6
    assert "BEGIN CERTIFICATE" in outputs["tls_ca_cert"]
    assert (outputs["username"], outputs["admin_username"]) == ("app", "admin")

    # 1. An application pod: TLS with the names checked, the app user, every shard.
    assert_client_view(app_client_sees(images["bootstrap"], "secure-client-1", ROTATED))

    # 2. The exporter: every node over TLS as the exporter user.
    ok, seen = poll(lambda: exporter_scrapes(6), Deadline.after(120), 2.0)
    assert ok, f"the exporter does not scrape every node over TLS: {seen}"

    # 3. An operator command in a pod, as the admin user over TLS.
    health = clusterops_cli(handle, kubeconfig, tmp_path, "health", "--json")
    assert health.returncode == 0, (health.stdout[-3000:], health.stderr[-3000:])
    assert json.loads(health.stdout)["ok"] is True

    # 4. Rotating the app user's password: ACL SETUSER, no pod restarted.
    before = pod_states()
    handle.set_config({"password": ROTATED}, secret=True)
    started = time.monotonic()
    handle.up()
    rotation_s = time.monotonic() - started
    assert pod_states() == before, "the rotation restarted or replaced a Redis pod"
    seen_after = app_client_sees(images["bootstrap"], "secure-client-2", APP_PASSWORD)
    assert_client_view(seen_after)
    # redis-py's name for WRONGPASS.
    assert seen_after["old_password"].startswith("AuthenticationError"), seen_after

    # 5. A new CA and certificate (tlsGeneration): every node serves it, none restarted.
    handle.set_config({"tlsGeneration": "2"})
    started = time.monotonic()
    handle.up()
    renewal_up_s = time.monotonic() - started
    fresh = secret_certificate()
    ok, served = poll(lambda: (all(same_pem(c, fresh) for c in served_certificates().values()),
                               served_certificates()), Deadline.after(240), 3.0)
    reload_s = time.monotonic() - started
    assert ok, f"not every node serves the new certificate: {served}"
    assert pod_states() == before, "the new CA restarted or replaced a Redis pod"
    assert_client_view(app_client_sees(images["bootstrap"], "secure-client-3", APP_PASSWORD))

    # 6. Switching either off a live cluster: refused at preview, nothing changed.
    for key in ("tls", "acl"):
        message = refused_preview(handle, key, "false")
        assert "is not supported" in message or "refused" in message, message[-2000:]
    assert pod_states() == before
    print(f"\nk8s tls+acl: first up {first_up_s:.1f}s, app password rotation up "
          f"{rotation_s:.1f}s, new CA up {renewal_up_s:.1f}s and served by every node after "
          f"{reload_s:.1f}s (kubelet Secret sync + the sidecar's reload)")
