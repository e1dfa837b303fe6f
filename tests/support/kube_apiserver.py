"""A real kube-apiserver (built from Go modules, scripts/build-kubernetes.sh) on a real etcd
(Debian's etcd-server), for server-side dry-runs of the manifests the program renders.

No scheduler, controller manager or kubelet: objects are validated and admitted (including Pod
Security admission) exactly as a cluster's API server does, but nothing runs. Everything listens
on 127.0.0.1 with random ports, in a temporary directory; the caller stops it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterops.core.poll import Deadline, poll

TOOLS_DIR = Path(os.environ.get("PULUMI_TOOLS_DIR", Path.home() / ".cache" / "alphapulse-pulumi"))
KUBE_APISERVER = TOOLS_DIR / "bin" / "kube-apiserver"
START_DEADLINE_S = 90.0
# Resource paths of the kinds the program declares (group/version -> plural per kind).
PLURALS = {
    "Namespace": "namespaces", "Secret": "secrets", "ConfigMap": "configmaps",
    "Service": "services", "StatefulSet": "statefulsets", "Deployment": "deployments",
    "Job": "jobs", "PodDisruptionBudget": "poddisruptionbudgets",
    "NetworkPolicy": "networkpolicies", "Pod": "pods", "ServiceAccount": "serviceaccounts",
}


def apiserver_missing() -> str | None:
    if not KUBE_APISERVER.exists():
        return (f"no {KUBE_APISERVER}: run scripts/build-kubernetes.sh (optional; builds "
                "kube-apiserver from Go modules)")
    if shutil.which("etcd") is None:
        return "no etcd: apt-get install etcd-server"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ApiResponse:
    status: int
    body: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


@dataclass
class KubeApiServer:
    directory: Path
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    port: int = 0

    def start(self) -> None:
        etcd_dir = self.directory / "etcd"
        client, peer = _free_port(), _free_port()
        self.processes.append(subprocess.Popen(
            ["etcd", "--data-dir", str(etcd_dir), "--name", "test",
             "--listen-client-urls", f"http://127.0.0.1:{client}",
             "--advertise-client-urls", f"http://127.0.0.1:{client}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"test=http://127.0.0.1:{peer}"],
            stdout=(self.directory / "etcd.log").open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        ))
        key = self.directory / "sa.key"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                       capture_output=True)
        (self.directory / "tokens.csv").write_text(f"{self.token},admin,admin,system:masters\n")
        self.port = _free_port()
        self.processes.append(subprocess.Popen(
            [str(KUBE_APISERVER),
             f"--etcd-servers=http://127.0.0.1:{client}",
             "--bind-address=127.0.0.1", f"--secure-port={self.port}",
             f"--cert-dir={self.directory / 'certs'}",
             f"--token-auth-file={self.directory / 'tokens.csv'}",
             "--authorization-mode=RBAC",
             "--service-cluster-ip-range=10.96.0.0/16",
             "--service-account-issuer=https://kubernetes.default.svc",
             f"--service-account-key-file={key}",
             f"--service-account-signing-key-file={key}"],
            stdout=(self.directory / "apiserver.log").open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        ))

        def ready() -> tuple[bool, str]:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{process.args[0]} exited {process.returncode}: "
                                       f"{self.log_tail()}")
            try:
                reply = self.request("GET", "/readyz")
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                return False, str(exc)
            return reply.status == 200, str(reply.body)

        done, last = poll(ready, Deadline.after(START_DEADLINE_S), 0.5)
        if done:
            return
        raise RuntimeError(f"kube-apiserver not ready in {START_DEADLINE_S}s ({last}): "
                           f"{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        path = self.directory / "apiserver.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None,
                ) -> ApiResponse:
        context = ssl.create_default_context()
        # The server's certificate is the self-signed one it made in cert-dir.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"https://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as reply:
                status, text, headers = reply.status, reply.read(), reply.headers
        except urllib.error.HTTPError as exc:
            status, text, headers = exc.code, exc.read(), exc.headers
        try:
            parsed = json.loads(text) if text else {}
        except json.JSONDecodeError:
            parsed = {"text": text.decode(errors="replace")}
        return ApiResponse(status, parsed, headers.get_all("Warning") or [])

    def collection_path(self, manifest: Mapping[str, Any]) -> str:
        api_version = manifest["apiVersion"]
        prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        plural = PLURALS[manifest["kind"]]
        namespace = (manifest.get("metadata") or {}).get("namespace")
        if manifest["kind"] == "Namespace" or not namespace:
            return f"{prefix}/{plural}"
        return f"{prefix}/namespaces/{namespace}/{plural}"

    def create(self, manifest: Mapping[str, Any], dry_run: bool = True) -> ApiResponse:
        query = "?dryRun=All&fieldValidation=Strict" if dry_run else "?fieldValidation=Strict"
        return self.request("POST", self.collection_path(manifest) + query, manifest)
