"""`pulumi destroy` of the k8s stack on the local three-node Kubernetes (local_kubernetes/).

- `protectData: true`: destroy refuses the protected objects; once they are unprotected on
  purpose it finishes, and the namespace and the six PVCs stay, with the data. A new stack with
  the same password adopts them: same node ids, every key.
- `protectData: false` (that new stack, switched): destroy leaves nothing: no StatefulSet, no
  PVC, no pod.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterops.core.poll import Deadline, poll
from local_kubernetes import cluster as local_cluster
from tests.e2e import test_k8s_cluster as real
from tests.support.local_k8s import api, local_cluster_running
from tests.support.pulumi_cli import PulumiStack, new_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    return real.local_stack_images()


@pytest.fixture(scope="module")
def kubeconfig(images: dict[str, str]) -> Iterator[Path]:
    with local_cluster_running(list(images.values())) as path:
        yield path


def k8s_stack(root: Path, kubeconfig: Path, images: dict[str, str],
              protect: bool, password: str | None = None) -> PulumiStack:
    handle = new_stack(root, "k8s", {**real.stack_settings(images),
                                     "protectData": str(protect).lower()},
                       secret_config={"password": password} if password else None)
    handle.remove_config("renderDir")
    handle.env["KUBECONFIG"] = str(kubeconfig)
    return handle


def claims() -> list[dict]:
    return api().get(f"/api/v1/namespaces/{real.NAMESPACE}/persistentvolumeclaims")["items"]


def test_protected_data_survives_destroy_and_a_new_stack_adopts_it(
        tmp_path_factory: pytest.TempPathFactory, kubeconfig: Path, images: dict[str, str]):
    local_cluster.recycle_released_volumes()
    first = k8s_stack(tmp_path_factory.mktemp("k8s-prod-a"), kubeconfig, images, protect=True)
    first.up()
    secret = real.password(first)
    before = real.cluster_view(secret)
    client = real.cluster_client(secret)
    keys = {f"kept:{{{n}}}": str(n) for n in range(500)}
    for key, value in keys.items():
        client.set(key, value)
    for ip in real.redis_pod_ips():  # on disk (AOF) before the pods go
        real.node_client(ip, secret).execute_command("BGREWRITEAOF")

    refused = first.destroy(check=False)
    assert refused.returncode != 0 and "protected" in refused.stdout + refused.stderr, (
        refused.stdout[-2000:], refused.stderr[-2000:])
    first.run("state", "unprotect", "--all", "--yes")
    first.destroy()
    gone, seen = poll(lambda: (real.redis_pods() == [], [p["metadata"]["name"]
                                                         for p in real.redis_pods()]),
                      Deadline.after(real.RESTART_TIMEOUT_S), 1.0)
    assert gone, f"pods left after destroy: {seen}"
    kept = claims()
    assert sorted(c["status"]["phase"] for c in kept) == ["Bound"] * 6, kept
    first.remove()

    second = k8s_stack(tmp_path_factory.mktemp("k8s-prod-b"), kubeconfig, images,
                       protect=False, password=secret)
    try:
        second.up()
        assert real.cluster_view(secret) == before
        client = real.cluster_client(secret)
        assert client.mget_nonatomic(list(keys)) == list(keys.values())
        assert {c["metadata"]["uid"] for c in claims()} == {c["metadata"]["uid"] for c in kept}
        second.destroy()
        emptied, seen = poll(lambda: (real.redis_pods() == [] and claims() == [],
                                      (real.redis_pods(), claims())),
                             Deadline.after(real.RESTART_TIMEOUT_S), 1.0)
        assert emptied, f"left after the protectData: false destroy: {seen}"
    finally:
        second.destroy(check=False)
        second.remove()
