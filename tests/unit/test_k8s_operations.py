"""The Kubernetes target's operations provider (components/k8s_operations.py) and the entry it
runs in a pod (k8s_bootstrap/reconcile.py), without a cluster: the order of scaling around the
reshape, what the pod is sent and what comes back, and refusals before anything runs. The same
code against real pods: tests/e2e/test_k8s_day2.py."""

from __future__ import annotations

import io
import json
import socket
from typing import Any

import pytest
from pulumi.runtime import rpc

from clusterops.core.errors import TargetsError
from components import k8s_operations
from components.k8s_operations import (
    KubernetesOperationsProvider,
    PodRunError,
    run_request,
    scale_steps,
)
from k8s_bootstrap import reconcile as in_pod_entry

RUNNER = {"namespace": "redis", "tools_image": "example/tools:1", "auth_secret": "auth",
          "client_label": "alphapulse/client=true", "context": ""}


def node(name: str, role: str = "master", slots: list[list[int]] | None = None,
         master: str | None = None) -> dict[str, Any]:
    host = f"{name}.h.redis.svc.cluster.local"
    return {"name": name, "role": role, "admin_host": host, "admin_port": 6379,
            "cluster_host": host, "cluster_port": 6379, "slots": slots or [], "master": master}


THREE = [node("m1", slots=[[0, 5460]]), node("m2", slots=[[5461, 10922]]),
         node("m3", slots=[[10923, 16383]]), node("r1", "replica", master="m1"),
         node("r2", "replica", master="m2"), node("r3", "replica", master="m3")]


def bag(**extra: Any) -> dict[str, Any]:
    return {"nodes": THREE, "password": rpc.wrap_rpc_secret("old-password-0123456789"),
            "provider_version": "v1", "timeout_seconds": 60, "settings": {},
            "runner": RUNNER, "statefulsets": {"s1": 2, "s2": 2, "s3": 2}, **extra}


class FakeKubectl:
    """Records every kubectl call; the exec answers what the test says the pod printed."""

    def __init__(self, answer: dict[str, Any], code: int = 0) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.sent: list[dict[str, Any]] = []
        self.answer, self.code = answer, code
        self.replicas: dict[str, int] = {}

    def run(self, *args: str, stdin: str | None = None) -> str:
        self.calls.append(args)
        if args[:2] == ("get", "statefulset"):
            count = self.replicas.get(args[2].removeprefix("statefulset/"), 2)
            return json.dumps({"status": {"updateRevision": "r1", "observedGeneration": 2,
                                          "replicas": count, "readyReplicas": count},
                               "metadata": {"generation": 2},
                               "spec": {"selector": {"matchLabels": {"shard": args[2]}}}})
        if args[0] == "scale":
            self.replicas[args[1].removeprefix("statefulset/")] = int(args[2].split("=")[1])
        if args[:2] == ("get", "pods"):
            return json.dumps({"items": []})  # every pod on the update revision
        return ""

    def exchange(self, *args: str, stdin: bytes) -> tuple[int, bytes]:
        self.calls.append(args)
        self.sent.append(json.loads(stdin))
        return self.code, (json.dumps(self.answer) + "\n").encode()


def test_replicas_rise_before_the_reshape_fall_after_it_and_the_gone_pods_claims_go() -> None:
    up, down, claims = scale_steps({"statefulsets": {"s1": 2, "s2": 2}},
                                   {"statefulsets": {"s1": 3, "s2": 2, "s3": 2}})
    assert (up, down, claims) == ({"s1": 3}, {}, [])  # s3 is new: the engine creates it
    up, down, claims = scale_steps({"statefulsets": {"s1": 3, "s2": 3, "s4": 3}},
                                   {"statefulsets": {"s1": 2, "s2": 3}})
    assert up == {} and down == {"s1": 2}
    assert claims == ["data-s1-2", "data-s4-0", "data-s4-1", "data-s4-2"]


def test_an_update_scales_runs_the_pod_then_scales_down_in_that_order(monkeypatch) -> None:
    report = {"node_ids": {"m1": "a" * 40}, "slot_ranges": {}, "cluster_state": "ok",
              "live_roles": {}, "cluster_problems": []}
    kubectl = FakeKubectl({"report": report})
    monkeypatch.setattr(k8s_operations, "kubectl_for", lambda _runner: kubectl)
    olds = {**bag(statefulsets={"s1": 3, "s2": 2, "s3": 2}), "node_ids": {"m1": "a" * 40}}
    news = bag(password=rpc.wrap_rpc_secret("new-password-0123456789"),
               statefulsets={"s1": 2, "s2": 3, "s3": 2})
    result = KubernetesOperationsProvider().update("id", olds, news)
    calls = [c for c in kubectl.calls if c[0] != "get"]
    verbs = [c[0] if c[0] != "exec" else "exec:" + c[-1] for c in calls]
    assert verbs == ["scale", "create", "wait", "exec:reconcile", "scale", "delete", "delete"]
    assert calls[0] == ("scale", "statefulset/s2", "--replicas=3")
    assert calls[4] == ("scale", "statefulset/s1", "--replicas=2")
    assert calls[5][:3] == ("delete", "pvc", "data-s1-2")
    assert kubectl.calls[-1][:2] == ("delete", "pod")  # the tools pod, last
    [request] = kubectl.sent
    # Both passwords reach the pod on stdin, plain; nothing of the runner does.
    assert request["op"] == "update"
    assert request["olds"]["password"] == "old-password-0123456789"
    assert request["news"]["password"] == "new-password-0123456789"
    assert request["olds"]["node_ids"] == {"m1": "a" * 40}
    assert "runner" not in request["news"] and request["news"]["rewrite_config"] is False
    # The pod's manifest holds no password.
    create = next(c for c in kubectl.calls if c[0] == "create")
    assert "password-0123456789" not in " ".join(create)
    assert result.outs["node_ids"] == {"m1": "a" * 40}
    assert rpc.is_rpc_secret(result.outs["password"])


def test_a_failure_in_the_pod_is_an_error_with_its_message_and_the_pod_still_goes() -> None:
    kubectl = FakeKubectl({"error": "PlanError: keys do not fit"}, code=1)
    with pytest.raises(PodRunError, match="keys do not fit"):
        run_request(RUNNER, {"op": "form", "olds": None, "news": {}}, kubectl)  # type: ignore
    assert kubectl.calls[-1][0] == "delete"


def test_a_preview_of_an_existing_stack_asks_the_pod_and_shows_its_plan(monkeypatch) -> None:
    kubectl = FakeKubectl({"preview": {"summary": ["move 4096 slots"], "refusals": []}})
    monkeypatch.setattr(k8s_operations, "kubectl_for", lambda _runner: kubectl)
    checked = KubernetesOperationsProvider().check(bag(), bag())
    assert checked.failures == [] and checked.inputs["reshape_plan"] == ["move 4096 slots"]
    kubectl.answer = {"preview": {"summary": None, "refusals": ["unsafe: hand change"]}}
    checked = KubernetesOperationsProvider().check(bag(), bag())
    assert [f.reason for f in checked.failures] == ["unsafe: hand change"]
    # A new stack has nothing to read: no pod.
    calls = len(kubectl.calls)
    KubernetesOperationsProvider().check({}, bag())
    assert len(kubectl.calls) == calls


def test_switching_tls_or_acl_users_on_a_live_stack_is_refused_before_any_pod(
        monkeypatch) -> None:
    kubectl = FakeKubectl({"preview": {"summary": None, "refusals": []}})
    monkeypatch.setattr(k8s_operations, "kubectl_for", lambda _runner: kubectl)
    tls = {"ca_bundle": "-----BEGIN CERTIFICATE-----", "token": "t"}
    acl = {"users_acl": "user admin on", "masteruser": "replication", "masterauth": "r" * 16}
    for olds, news, key in ((bag(tls=tls), bag(), "tls"), (bag(), bag(acl=acl), "acl")):
        checked = KubernetesOperationsProvider().check(olds, news)
        assert [f.property for f in checked.failures] == [key], checked.failures
        assert "is not supported" in checked.failures[0].reason or "refused" in \
            checked.failures[0].reason, checked.failures[0].reason
    assert kubectl.calls == []


def test_moving_a_node_that_stays_is_refused_in_diff_before_any_pod() -> None:
    moved = [dict(n) for n in THREE]
    moved[0]["cluster_host"] = "elsewhere"
    with pytest.raises(Exception, match="moves or re-roles"):
        KubernetesOperationsProvider().diff("id", bag(), bag(nodes=moved))


def test_no_kubectl_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.delenv("KUBECTL", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(TargetsError, match="kubectl"):
        k8s_operations.kubectl_for(RUNNER)


# -- the entry in the pod ---------------------------------------------------------------------
def test_the_pod_resolves_names_and_redacts_every_password_from_an_error(monkeypatch) -> None:
    seen: dict[str, Any] = {}

    def fake_update(olds: dict[str, Any], news: dict[str, Any]) -> Any:
        seen["cluster"] = [n["cluster_host"] for n in news["nodes"]]
        seen["admin"] = [n["admin_host"] for n in news["nodes"]]
        # Connections keep the name (TLS checks it) and this process looks it up as the IP.
        seen["looked_up"] = [socket.getaddrinfo(n["admin_host"], 6379)[0][4][0]
                             for n in news["nodes"]]
        raise TargetsError(f"refused {olds['password']} and {news['password']}, "
                           f"replication {news['acl']['masterauth']}")

    monkeypatch.setattr(in_pod_entry.reconcile, "update", fake_update)
    acl = {"users_acl": "user admin on #abc", "masteruser": "replication",
           "masterauth": "repl-secret-xyz"}
    request = {"op": "update", "olds": {"nodes": THREE, "password": "old-secret-xyz"},
               "news": {"nodes": THREE, "password": "new-secret-xyz", "acl": acl}}
    out = io.StringIO()
    addresses = {n["admin_host"]: f"10.0.0.{i}" for i, n in enumerate(THREE)}
    code = in_pod_entry.run(io.StringIO(json.dumps(request)), out, addresses.__getitem__)
    assert code == TargetsError.exit_code
    assert seen["cluster"] == seen["looked_up"] == [f"10.0.0.{i}" for i in range(6)]
    assert seen["admin"] == [n["admin_host"] for n in THREE]
    answer = json.loads(out.getvalue())
    assert "secret-xyz" not in answer["error"] and answer["error"].count("***") == 3
    # Only inside the request: the process resolves names the usual way again.
    with pytest.raises(OSError):
        socket.getaddrinfo(THREE[0]["admin_host"], 6379)


def test_a_preview_in_the_pod_does_not_wait_for_pods_not_created_yet(monkeypatch) -> None:
    seen: dict[str, Any] = {}

    def fake_preview(olds: dict[str, Any], news: dict[str, Any]) -> Any:
        seen["hosts"] = [n["cluster_host"] for n in news["nodes"]]
        return ["plan"], []

    monkeypatch.setattr(in_pod_entry.reconcile, "preview", fake_preview)
    new = [*THREE, node("m4", slots=[])]

    def resolve(host: str) -> str:
        if host.startswith("m4."):
            raise OSError("no such host")
        return "10.0.0.1"

    out = io.StringIO()
    request = {"op": "preview", "olds": {"nodes": THREE}, "news": {"nodes": new}}
    assert in_pod_entry.run(io.StringIO(json.dumps(request)), out, resolve) == 0
    assert seen["hosts"][-1] == "m4.h.redis.svc.cluster.local"
    assert json.loads(out.getvalue()) == {"preview": {"summary": ["plan"], "refusals": []}}


def test_a_malformed_request_is_refused_with_a_reason() -> None:
    out = io.StringIO()
    assert in_pod_entry.run(io.StringIO('{"op": "drop"}'), out) != 0
    assert "a request is" in json.loads(out.getvalue())["error"]


def test_addresses_the_caller_knows_are_not_asked_of_dns(monkeypatch) -> None:
    seen: dict[str, Any] = {}

    def fake_hand_over(news: dict[str, Any], node: str) -> dict[str, Any]:
        seen["hosts"] = [n["cluster_host"] for n in news["nodes"]]
        return {"node": node, "was_master": False}

    monkeypatch.setattr(in_pod_entry.reconcile, "hand_over", fake_hand_over)
    asked: list[str] = []

    def resolve(host: str) -> str:
        asked.append(host)
        return "10.0.0.9"  # stale: the pod's old IP

    replaced = THREE[3]["admin_host"]
    request = {"op": "handover", "node": "r1", "news": {"nodes": THREE},
               "addresses": {replaced: "10.0.0.42"}}
    out = io.StringIO()
    assert in_pod_entry.run(io.StringIO(json.dumps(request)), out, resolve) == 0
    assert replaced not in asked
    assert seen["hosts"][3] == "10.0.0.42" and seen["hosts"][0] == "10.0.0.9"


def test_create_adopts_in_one_pod_and_records_the_node_ids(monkeypatch) -> None:
    report = {"node_ids": {n["name"]: f"{i:040x}" for i, n in enumerate(THREE)},
              "slot_ranges": {}, "cluster_state": "ok", "live_roles": {},
              "cluster_problems": []}
    kubectl = FakeKubectl({"report": report})
    monkeypatch.setattr(k8s_operations, "kubectl_for", lambda _runner: kubectl)
    created = KubernetesOperationsProvider().create(bag())
    assert created.outs["node_ids"] == report["node_ids"] and created.id.startswith(
        "redis-cluster-")
    [request] = kubectl.sent
    assert request["op"] == "form"
    # Every pod on its StatefulSet's revision: nothing replaced, one tools pod made and gone.
    assert [c[0] for c in kubectl.calls if c[0] in ("create", "delete")] == ["create", "delete"]
