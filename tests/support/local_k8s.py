"""The local three-node Kubernetes (local_kubernetes/) for the e2e tier, and ways to reach pods.

The test process runs in the root network namespace, which routes every node's pod network
(10.244.<n>.0/24 via the node's address), so it talks to pods at their IPs directly. Pod DNS
names resolve only inside the cluster; `address_remap` turns the names Redis announces into the
pods' current IPs for redis-py, the way a client pod's resolver would.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from local_kubernetes import cluster
from local_kubernetes.api import Api
from tests.support.deploy_fixtures import _skip_or_fail
from tests.support.pulumi_cli import PulumiStack, new_stack


def start_local_cluster(images: list[str]) -> Path:
    """Start the cluster with `images` on every node; skips (fails in CI) where it cannot run."""
    if os.geteuid() != 0:
        _skip_or_fail("the local Kubernetes cluster needs root")
    _skip_or_fail("; ".join(cluster.missing_tools()) or None)
    return cluster.up(images)


@contextmanager
def local_cluster_running(images: list[str]) -> Iterator[Path]:
    """The cluster for a test module: started with `images`, removed afterwards unless
    ALPHAPULSE_KEEP_LOCAL_K8S is set (to look at it after a failure); -> the kubeconfig."""
    path = start_local_cluster(images)
    try:
        yield path
    finally:
        if not os.environ.get("ALPHAPULSE_KEEP_LOCAL_K8S"):
            cluster.down()


def api() -> Api:
    return cluster.api()


def pods(namespace: str, selector: str = "") -> list[dict[str, Any]]:
    query = f"?labelSelector={selector}" if selector else ""
    return api().get(f"/api/v1/namespaces/{namespace}/pods{query}").get("items", [])


def pod_ips(namespace: str) -> dict[str, str]:
    """pod name -> pod IP, for pods that have one."""
    return {p["metadata"]["name"]: p["status"]["podIP"] for p in pods(namespace)
            if p.get("status", {}).get("podIP")}


def address_remap(namespace: str) -> Callable[[tuple[str, int]], tuple[str, int]]:
    """redis-py `address_remap`: `<pod>.<service>.<ns>.svc...` -> that pod's current IP.
    Looked up at every call, so a pod that moved is found at its new address."""
    def remap(address: tuple[str, int]) -> tuple[str, int]:
        host, port = address
        pod = host.split(".", 1)[0]
        ips = pod_ips(namespace)
        return (ips.get(pod, host), port)

    return remap


@contextmanager
def k8s_stack_up(root: Path, kubeconfig: Path, settings: dict[str, str],
                 secrets: dict[str, str] | None = None) -> Iterator[tuple[PulumiStack, float]]:
    """A k8s stack applied to the local cluster (`pulumi up`, not render mode): the handle and
    how long the first `up` took; destroyed and removed on the way out. `secrets`: config set
    as secrets (e.g. a known password)."""
    handle = new_stack(root, "k8s", settings, secret_config=secrets)
    handle.remove_config("renderDir")
    handle.env["KUBECONFIG"] = str(kubeconfig)
    # What earlier runs on a kept cluster (ALPHAPULSE_KEEP_LOCAL_K8S) left Released.
    cluster.recycle_released_volumes()
    try:
        started = time.monotonic()
        handle.up()
        yield handle, time.monotonic() - started
    finally:
        handle.destroy(check=False)
        handle.remove()
