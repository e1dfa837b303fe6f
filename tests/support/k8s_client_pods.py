"""Clients that run where applications run: pods in the k8s stack's namespace, labelled as
clients (the NetworkPolicy's client label), under Pod Security `restricted`, with the password
mounted from the stack's Secret as a file.

`run_client_pod` runs a script to completion and returns its log. `WriterPod` runs the SET +
WAIT 1 writer of tests/support/live_writer.py inside a pod for as long as a test disturbs the
cluster, then hands back what every write got (its clock is the test's: pods share the host's
CLOCK_MONOTONIC).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from redis.cluster import RedisCluster

from clusterops.core.poll import Deadline, poll
from tests.support import live_writer
from tests.support.live_writer import LiveWriteResult
from tests.support.local_k8s import api

CLIENT_LABEL = "redis.alphapulse.io/client"
SECRET_NAME = "alphapulse-redis-auth"
PASSWORD_PATH = "/etc/alphapulse/secret/password"


def client_pod_manifest(name: str, namespace: str, image: str, script: str,
                        node_name: str | None = None,
                        secret_keys: tuple[str, ...] = ("password",)) -> dict[str, Any]:
    """`node_name`: run on that node (a test that takes another node away); `secret_keys`: the
    Secret's keys mounted beside the password file (the CA with TLS), each under its name."""
    manifest: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {CLIENT_LABEL: "true"}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                "fsGroup": 65532,  # the Secret files are root:fsGroup 0440
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "client", "image": image, "imagePullPolicy": "Never",
                "command": ["python", "-u", "-c", script],
                "volumeMounts": [{"name": "auth", "mountPath": str(Path(PASSWORD_PATH).parent),
                                  "readOnly": True}],
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
            "volumes": [{"name": "auth", "secret": {
                "secretName": SECRET_NAME, "defaultMode": 0o440,
                "items": [{"key": key, "path": key} for key in secret_keys]}}],
        },
    }
    if node_name:
        manifest["spec"]["nodeName"] = node_name
    return manifest


def start_client_pod(name: str, namespace: str, image: str, script: str,
                     node_name: str | None = None,
                     secret_keys: tuple[str, ...] = ("password",)) -> str:
    """Create the pod; -> its API path."""
    api().request("POST", f"/api/v1/namespaces/{namespace}/pods",
                  client_pod_manifest(name, namespace, image, script, node_name, secret_keys))
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


def wait_for_success(path: str, timeout_s: float) -> str:
    """Wait until the pod at `path` finished; -> its log (fails with the log otherwise)."""
    client = api()

    def finished() -> tuple[bool, str]:
        phase = client.get(path).get("status", {}).get("phase", "?")
        return phase in ("Succeeded", "Failed"), phase

    done, phase = poll(finished, Deadline.after(timeout_s), 1.0)
    log = client.request("GET", f"{path}/log").get("text", "")
    assert done and phase == "Succeeded", f"client pod {path}: {phase}; log:\n{log[-4000:]}"
    return log


def run_client_pod(name: str, namespace: str, image: str, script: str,
                   timeout_s: float = 180.0, node_name: str | None = None,
                   secret_keys: tuple[str, ...] = ("password",)) -> str:
    return wait_for_success(start_client_pod(name, namespace, image, script, node_name,
                                             secret_keys), timeout_s)


WRITER_MAIN = """

if __name__ == "__main__":
    import json as _json
    import time as _time
    _secret = open(%(password_path)r).read().strip()
    _writer = LiveWriter([(%(service)r, 6379)], _secret, %(run_id)r, interval_s=0.005)
    _checker = RedisCluster(host=%(service)r, port=6379, password=_secret, socket_timeout=1.0,
                            decode_responses=True)
    _writer.start()
    print("WRITING", flush=True)
    _deadline = _time.monotonic() + %(max_seconds)r
    while _time.monotonic() < _deadline:
        _time.sleep(0.5)
        try:
            if _checker.exists(%(stop_key)r):
                break
        except redis.RedisError:
            pass  # the cluster is being disturbed: that is the point; ask again
    _result = _writer.stop()
    print("RESULT " + _json.dumps({
        "acked": _result.acked, "unacked": _result.unacked, "errors": _result.errors,
        "applied_at": [round(t, 3) for t in _result.applied_at],
        "started": _result.started, "stopped": _result.stopped}), flush=True)
"""


class WriterPod:
    """tests/support/live_writer.py's LiveWriter in a client pod, writing through the Service
    name; stopped by a key the test sets (the pod needs no API access)."""

    def __init__(self, name: str, namespace: str, image: str, service: str, run_id: str,
                 max_seconds: float = 900.0, node_name: str | None = None) -> None:
        self.stop_key = f"writer-stop:{run_id}"
        script = Path(live_writer.__file__).read_text() + WRITER_MAIN % {
            "password_path": PASSWORD_PATH, "service": service, "run_id": run_id,
            "max_seconds": max_seconds, "stop_key": self.stop_key}
        self.path = start_client_pod(name, namespace, image, script, node_name)

    def wait_writing(self, timeout_s: float = 120.0) -> None:
        def writing() -> tuple[bool, str]:
            try:
                log = api().request("GET", f"{self.path}/log").get("text", "")
            except Exception as exc:  # noqa: BLE001 - not started yet: ask again
                return False, repr(exc)
            return "WRITING" in log, log

        ok, seen = poll(writing, Deadline.after(timeout_s), 1.0)
        assert ok, f"the writer pod never started writing: {seen}"

    def stop(self, cluster: RedisCluster, timeout_s: float = 120.0) -> LiveWriteResult:
        cluster.set(self.stop_key, "1")
        log = wait_for_success(self.path, timeout_s)
        line = next(x for x in log.splitlines() if x.startswith("RESULT "))
        data = json.loads(line.removeprefix("RESULT "))
        return LiveWriteResult(
            acked=[(k, v) for k, v in data["acked"]], unacked=data["unacked"],
            errors=[(t, why) for t, why in data["errors"]], applied_at=data["applied_at"],
            started=data["started"], stopped=data["stopped"])
