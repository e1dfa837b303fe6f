"""The Kubernetes target's day-2 work in `pulumi up`: a dynamic provider that runs it in a pod.

The nodes are reachable only inside the cluster (pods' DNS names and IPs), so every call that
touches them starts a short-lived pod of the tools image (clusterops/cli/in_pod.py: restricted,
no service account token, the client label the NetworkPolicies admit) and runs ``python -m
k8s_bootstrap reconcile`` in it with one JSON request on stdin: the same
:mod:`clusterops.tasks.reconcile` functions the Docker target's provider runs here. Why a pod
per call and not a Job per change: the provider needs the answer (the node ids, the reshape
plan for the preview, the reason for a refusal) back in this process, as data, while the
engine waits; `kubectl exec` gives stdout and the exit code, a Job gives neither to the
program. The pod gets passwords on stdin only: not in its spec, not in an environment, not on
a command line.

- ``check``: on a stack that exists, the preview reads the live cluster (read-only, in a pod)
  and puts the reshape plan (slot ranges, key counts) into the ``reshape_plan`` input, or
  refuses what the Docker target refuses (keys that do not fit, the last replica of a shard,
  a cluster changed by hand).
- ``create``: adopt the cluster the bootstrap Job formed, verify it, record the node ids.
- ``update``: password rotation (CONFIG SET / ACL SETUSER, no pod restart), reshape, verify.
  Pods come and go around the reshape, so that no pod is removed before its node is drained
  and forgotten: new StatefulSets are created by the engine before this update (it depends on
  them) and removed ones deleted after it; the replica count of a StatefulSet that stays is
  this provider's to change (the program ignores it after creation): raised before the
  reshape, lowered after it. The claims of the pods that go are deleted too (the data was
  moved or was a copy), so a later scale-out starts empty pods, not stale nodes.
- ``delete`` forgets the resource; the cluster stays.

kubectl talks to the cluster the way pulumi-kubernetes does here: $KUBECONFIG (or
~/.kube/config) and the ``kubernetes:context`` config when set.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi import dynamic
from pulumi.runtime import rpc

from clusterops.cli.in_pod import Kubectl, PodTarget, tools_pod
from clusterops.core.errors import ClusterOpsError
from clusterops.tasks import reconcile
from clusterops.tasks.reconcile import RESHAPE_PLAN_KEY, refuse_unsupported_change
from components.bootstrap import (
    check_inputs,
    cluster_resource_id,
    optional_inputs,
    plain,
    switch_failures,
)
from components.k8s_rolling import roll, scale
from components.preview_values import contains_unknown
from components.provider_version import module_version

PROVIDER_VERSION = module_version(__name__)
INPUT_KEYS = ("nodes", "password", "provider_version", "timeout_seconds", "settings",
              "runner", "statefulsets", "revisions", "tls", "acl")
RUNNER_KEYS = ("namespace", "tools_image", "auth_secret", "client_label", "context")
DATA_CLAIM = "data"  # the StatefulSets' volumeClaimTemplate: claims are data-<pod>


class PodRunError(ClusterOpsError):
    """The reconcile in the pod failed; its message is the pod's (passwords redacted)."""


def runner_target(runner: Mapping[str, Any]) -> PodTarget:
    return PodTarget(namespace=runner["namespace"], image=runner["tools_image"],
                     auth_secret=runner["auth_secret"], client_label=runner["client_label"],
                     node_flags=(), maxmemory_bytes=None)


def kubectl_for(runner: Mapping[str, Any]) -> Kubectl:
    return Kubectl(runner["namespace"], context=runner.get("context") or None)


@dataclass(frozen=True)
class PodSession:
    """A ready tools pod that answers requests (k8s_bootstrap/reconcile.py), one at a time."""

    kubectl: Kubectl
    pod: str
    image: str

    def ask(self, request: Mapping[str, Any]) -> dict[str, Any]:
        code, out = self.kubectl.exchange("exec", "-i", self.pod, "--", "python", "-m",
                                          "k8s_bootstrap", "reconcile",
                                          stdin=json.dumps(request).encode())
        lines = out.decode(errors="replace").strip().splitlines()
        try:
            answer = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            answer = {}
        if code != 0 or "error" in answer or not answer:
            raise PodRunError(f"in pod of {self.image} (exit {code}): "
                              f"{answer.get('error') or (lines[-1] if lines else 'no answer')}")
        return answer


@contextmanager
def pod_session(runner: Mapping[str, Any], kubectl: Kubectl, purpose: str
                ) -> Iterator[PodSession]:
    with tools_pod(runner_target(runner), kubectl, f"deploy-{purpose}") as pod:
        yield PodSession(kubectl, pod, runner["tools_image"])


def run_request(runner: Mapping[str, Any], request: Mapping[str, Any],
                kubectl: Kubectl | None = None) -> dict[str, Any]:
    """One request answered in its own tools pod."""
    with pod_session(runner, kubectl or kubectl_for(runner), request["op"]) as session:
        return session.ask(request)


def replicas_of(props: Mapping[str, Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in (props.get("statefulsets") or {}).items()}


def scale_steps(olds: Mapping[str, Any], news: Mapping[str, Any]
                ) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """Pure: the StatefulSets to raise before the reshape ({name: replicas}), those to lower
    after it, and the claims of every pod that goes (lowered, or its StatefulSet removed)."""
    old, new = replicas_of(olds), replicas_of(news)
    raise_first = {s: n for s, n in new.items() if s in old and n > old[s]}
    lower_after = {s: n for s, n in new.items() if s in old and n < old[s]}
    claims = [f"{DATA_CLAIM}-{s}-{i}" for s, n in old.items()
              for i in range(new.get(s, 0), n)]
    return raise_first, lower_after, claims


def _outputs(props: Mapping[str, Any], report: Mapping[str, Any]) -> dict[str, Any]:
    """Every input (delete and diff see only outputs) plus what the cluster reports."""
    outs = {key: props.get(key) for key in INPUT_KEYS}
    outs["nodes"] = [reconcile.normalized_node(n) for n in props["nodes"]]
    outs["password"] = rpc.wrap_rpc_secret(plain(props)["password"])
    outs["timeout_seconds"] = reconcile.timeout_of(props)
    outs["rewrite_config"] = False
    # tls and acl only when enabled, as the inputs; acl holds the replication password.
    for key in ("tls", "acl"):
        outs.pop(key)
    if reconcile.tls_of(props):
        outs["tls"] = reconcile.tls_of(props)
    if plain(props).get("acl"):
        outs["acl"] = rpc.wrap_rpc_secret(plain(props)["acl"])
    return {**outs, **report}


def _comparable(props: Mapping[str, Any]) -> dict[str, Any]:
    bag = plain(props)
    return {
        "nodes": [reconcile.normalized_node(n) for n in bag.get("nodes") or []],
        "password": bag.get("password"),
        "provider_version": bag.get("provider_version"),
        "timeout_seconds": reconcile.timeout_of(bag),
        "settings": reconcile.settings_of(bag),
        "runner": {k: (bag.get("runner") or {}).get(k) for k in RUNNER_KEYS},
        "statefulsets": replicas_of(bag),
        "revisions": dict(bag.get("revisions") or {}),
        "tls": reconcile.tls_of(bag),
        "acl": reconcile.acl_of(bag),
    }


def _request_bag(props: Mapping[str, Any]) -> dict[str, Any]:
    """What the pod needs of a property bag: plain, and nothing of the runner."""
    bag = plain(props)
    bag["rewrite_config"] = False  # redis.conf and the password files are the deployment's
    return {k: v for k, v in bag.items()
            if k not in ("runner", "statefulsets", "revisions", "__provider")}


def pod_addresses(kubectl: Kubectl, nodes: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each node's DNS name -> its pod's IP now, as the Kubernetes API says (DNS can lag)."""
    ips = {p["metadata"]["name"]: p.get("status", {}).get("podIP")
           for p in json.loads(kubectl.run("get", "pods", "-o", "json"))["items"]
           if not p["metadata"].get("deletionTimestamp")}
    hosts = {str(n["admin_host"]) for n in nodes}
    return {host: ip for host in hosts if (ip := ips.get(host.split(".", 1)[0]))}


def _roll_outdated(kubectl: Kubectl, session: PodSession, news: Mapping[str, Any],
                   report: Mapping[str, Any]) -> list[str]:
    """Replace the pods on an old template revision, shard by shard (components/k8s_rolling.py)."""
    bag = _request_bag(news)
    node_of = {str(n["admin_host"]).split(".", 1)[0]: n["name"] for n in news["nodes"]}

    def hand_over(node: str) -> Mapping[str, Any]:
        # The replaced pods' new IPs from the API: the handover must reach them at once.
        return session.ask({"op": "handover", "news": bag, "node": node,
                            "addresses": pod_addresses(kubectl, news["nodes"])})["handover"]

    return roll(kubectl, sorted(replicas_of(news)), node_of, report.get("live_roles") or {},
                hand_over, reconcile.timeout_of(news),
                log=lambda line: print(line, file=sys.stderr))


class KubernetesOperationsProvider(dynamic.ResourceProvider):
    """Adopts, verifies, rotates and reshapes a Kubernetes stack's cluster from a pod."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        inputs = {k: v for k, v in news.items() if k != RESHAPE_PLAN_KEY}
        if plain(news)["password"] is not None:
            inputs["password"] = rpc.wrap_rpc_secret(plain(news)["password"])
        failures = check_inputs(news) + switch_failures(olds, news)
        if plain(news).get("acl") is not None:
            inputs["acl"] = rpc.wrap_rpc_secret(plain(news)["acl"])
        if (failures or not olds.get("nodes") or contains_unknown(news)
                or reconcile.unsupported_change(olds["nodes"], news["nodes"])):
            return dynamic.CheckResult(inputs, failures)
        # The fewest slots moved from the deployed split, as on Docker.
        inputs["nodes"] = reconcile.least_moving_nodes(olds["nodes"], news["nodes"])
        # Every preview reads the live cluster: a reshape left half-done (or a hand change)
        # is caught even when the config did not change, as on Docker.
        answer = run_request(news["runner"], {"op": "preview", "olds": _request_bag(olds),
                                              "news": _request_bag(inputs)})["preview"]
        failures += [dynamic.CheckFailure("nodes", reason) for reason in answer["refusals"]]
        if answer["summary"] is not None:
            inputs[RESHAPE_PLAN_KEY] = answer["summary"]
        return dynamic.CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        if contains_unknown({key: news.get(key) for key in INPUT_KEYS}):
            return dynamic.DiffResult(changes=True, replaces=[], delete_before_replace=False)
        refuse_unsupported_change(olds, news)
        old, new = _comparable(olds), _comparable(news)
        changed = [key for key in INPUT_KEYS if old[key] != new[key]]
        return dynamic.DiffResult(changes=bool(changed or news.get(RESHAPE_PLAN_KEY)),
                                  replaces=[], stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        kubectl = kubectl_for(props["runner"])
        with pod_session(props["runner"], kubectl, "create") as session:
            form = {"op": "form", "news": _request_bag(props)}
            report = session.ask({**form, "addresses": pod_addresses(kubectl, props["nodes"])})[
                "report"]
            # A stack made before this resource existed may have pods on an older template
            # (its StatefulSets rolled the Kubernetes way): replaced now, with a handover.
            if _roll_outdated(kubectl, session, props, report):
                report = session.ask({**form, "addresses": pod_addresses(
                    kubectl, props["nodes"])})["report"]
        return dynamic.CreateResult(cluster_resource_id(report["node_ids"]),
                                    _outputs(props, report))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]
               ) -> dynamic.UpdateResult:
        refuse_unsupported_change(olds, news)
        kubectl = kubectl_for(news["runner"])
        timeout = reconcile.timeout_of(news)
        raise_first, lower_after, claims = scale_steps(olds, news)
        scale(kubectl, raise_first, timeout)
        request = {"op": "update", "olds": {**_request_bag(olds), "node_ids":
                                            olds.get("node_ids") or {}},
                   "news": {**_request_bag(news),
                            RESHAPE_PLAN_KEY: news.get(RESHAPE_PLAN_KEY)},
                   "addresses": pod_addresses(kubectl, [*olds["nodes"], *news["nodes"]])}
        with pod_session(news["runner"], kubectl, "update") as session:
            report = session.ask(request)["report"]
            # Only now that their nodes are drained and forgotten do the pods go.
            scale(kubectl, lower_after, timeout)
            if claims:
                # A claim in use is deleted when its pod is gone (pvc-protection finalizer).
                kubectl.run("delete", "pvc", *claims, "--wait=false", "--ignore-not-found")
            if _roll_outdated(kubectl, session, news, report):
                report = session.ask({"op": "form", "news": _request_bag(news), "addresses":
                                      pod_addresses(kubectl, news["nodes"])})["report"]
        return dynamic.UpdateResult(_outputs(news, report))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Forget the resource. The cluster and its data stay as they are, on purpose."""


class KubernetesOperations(dynamic.Resource, module="alphapulse",
                           name="KubernetesOperations"):
    """The live cluster as the program declares it: ids, rotation and reshapes, from a pod."""

    node_ids: pulumi.Output[dict[str, str]]
    slot_ranges: pulumi.Output[dict[str, list[list[int]]]]
    cluster_state: pulumi.Output[str]
    live_roles: pulumi.Output[dict[str, str]]

    def __init__(self, resource_name: str, *, nodes: Sequence[Mapping[str, Any]],
                 password: pulumi.Input[str], runner: Mapping[str, Any],
                 statefulsets: Mapping[str, int], revisions: pulumi.Input[Mapping[str, Any]],
                 timeout_seconds: float, settings: Mapping[str, str],
                 tls: pulumi.Input[Mapping[str, str]] | None = None,
                 acl: pulumi.Input[Mapping[str, str]] | None = None,
                 reshape_max_keys_per_second: int = 0,
                 engine: str = reconcile.DEFAULT_ENGINE,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        """``nodes``: NodeTarget dicts naming each node by its pod's DNS name; ``runner``:
        where the pods run (RUNNER_KEYS); ``statefulsets``: name -> replicas as declared;
        ``revisions``: name -> the StatefulSet's metadata.generation; ``tls`` and ``acl``:
        the bags of clusterops.tasks.reconcile, only when enabled."""
        props = {
            "nodes": list(nodes),
            "password": pulumi.Output.secret(password),
            "provider_version": PROVIDER_VERSION,
            "timeout_seconds": timeout_seconds,
            # Applied with CONFIG SET on every node: a change restarts no pod.
            "settings": dict(settings),
            "runner": dict(runner),
            "statefulsets": dict(statefulsets),
            # Changes when a StatefulSet's spec does (a new pod template): the update then
            # replaces the outdated pods with a handover each.
            "revisions": revisions,
            "node_ids": None,
            "slot_ranges": None,
            "cluster_state": None,
            "live_roles": None,
        }
        props.update(optional_inputs(tls, acl, reshape_max_keys_per_second, engine))
        super().__init__(KubernetesOperationsProvider(), resource_name, props, opts)
