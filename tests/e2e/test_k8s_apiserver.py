"""Server-side dry-run of every manifest the real provider renders, on a real kube-apiserver.

Optional tier: it runs where scripts/build-kubernetes.sh has built kube-apiserver from Go
modules and Debian's etcd-server is installed, and skips (with that reason) elsewhere. The API
server validates each object as a cluster would (schema with strict field validation, defaults,
Pod Security admission of the namespace's `restricted` profile); no scheduler or kubelet runs,
so nothing is started.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.deploy_fixtures import _skip_or_fail
from tests.support.k8s_manifests import kind_name, manifests_from_dir
from tests.support.kube_apiserver import KubeApiServer, apiserver_missing
from tests.support.pulumi_cli import new_stack

from .test_k8s_render import kubernetes_plugin_missing

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
WORKLOADS = ("StatefulSet", "Deployment", "Job")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApiServer]:
    # scripts/test.sh builds it, so CI (CI=true) fails instead of skipping when it is missing.
    _skip_or_fail(apiserver_missing())
    api = KubeApiServer(tmp_path_factory.mktemp("kube-apiserver"))
    try:
        api.start()
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    _skip_or_fail(kubernetes_plugin_missing())
    # Zones declared: the topology spread constraints are rendered too.
    stack = new_stack(tmp_path_factory.mktemp("k8s-dry-run"), "k8s",
                      {"zones": "3", "kubernetesNodes": "6"})
    try:
        stack.up()
        return list(manifests_from_dir(Path(stack.workdir) / "rendered").values())
    finally:
        stack.destroy(check=False)
        stack.remove()


@pytest.fixture(scope="module")
def namespace(server: KubeApiServer, manifests: list[dict]) -> str:
    [ns] = [m for m in manifests if m["kind"] == "Namespace"]
    created = server.create(ns, dry_run=False)  # namespaced dry-runs need it to exist
    assert created.status == 201, created.body
    name = ns["metadata"]["name"]
    # What the controller manager (not running here) would create: pods need it to be admitted.
    account = server.create({"apiVersion": "v1", "kind": "ServiceAccount",
                             "metadata": {"name": "default", "namespace": name}}, dry_run=False)
    assert account.status == 201, account.body
    return name


def test_every_object_passes_a_server_side_dry_run_without_warnings(
        server: KubeApiServer, manifests: list[dict], namespace: str):
    results = {}
    for manifest in manifests:
        if manifest["kind"] == "Namespace":
            continue
        reply = server.create(manifest)
        results[kind_name(manifest)] = (reply.status, reply.body.get("message"), reply.warnings)
    assert len(results) == 16
    # 201 each; no warning either (Pod Security `warn: restricted` checks workload templates).
    assert {k: v for k, v in results.items() if v[0] != 201 or v[2]} == {}, results


def test_the_pods_of_every_workload_are_admitted_by_pod_security_restricted(
        server: KubeApiServer, manifests: list[dict], namespace: str):
    admitted = {}
    for manifest in manifests:
        if manifest["kind"] not in WORKLOADS:
            continue
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"dry-run-{manifest['metadata']['name']}"[:63],
                         "namespace": namespace},
            "spec": copy.deepcopy(manifest["spec"]["template"]["spec"]),
        }
        if manifest["kind"] == "StatefulSet":
            # The StatefulSet controller adds the claim as a volume; do the same.
            pod["spec"]["volumes"].append(
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-x"}})
        reply = server.create(pod)
        admitted[kind_name(manifest)] = (reply.status, reply.body.get("message"))
    assert len(admitted) == 5
    assert {k: v for k, v in admitted.items() if v[0] != 201} == {}, admitted


def test_controls_pod_security_and_strict_fields_really_refuse(
        server: KubeApiServer, manifests: list[dict], namespace: str):
    [sts, *_] = [m for m in manifests if m["kind"] == "StatefulSet"]
    root_pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "runs-as-root", "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "redis:7.0.15-bookworm"}]},
    }
    refused = server.create(root_pod)
    assert refused.status == 403 and "restricted" in refused.body.get("message", ""), refused
    typo = copy.deepcopy(sts)
    typo["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    rejected = server.create(typo)
    assert rejected.status == 400 and "imagee" in rejected.body.get("message", ""), rejected
