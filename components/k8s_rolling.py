"""Rolling replacement of a Kubernetes stack's pods, shard by shard, with a handover first.

The StatefulSets use the OnDelete update strategy when applied to a cluster: a new pod template
(image, redis.conf) replaces no pod by itself. The operations resource then replaces every pod
still on an old revision, one at a time: the shard's replicas first, its master last, and
before each pod goes the tools pod runs the handover (clusterops.provision.handover: the rest
of the shard healthy, and a live master hands its slots to a synced replica of its own with
CLUSTER FAILOVER), so no shard is ever without a master. The next pod goes only when the new
one is Ready, and Ready means in sync (the readiness probe). A plain RollingUpdate does none
of this: it deletes a master pod while its replica may not be promoted yet, and rolls all
shards at once (docs/kubernetes.md, *Rolling changes*).

An interrupted roll is finished by the next `pulumi up`: what is outdated is read from the
cluster (each pod's controller-revision-hash against its StatefulSet's updateRevision), not
from the inputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from clusterops.cli.in_pod import Kubectl
from clusterops.core.errors import ClusterOpsError
from clusterops.core.poll import Deadline, poll

REVISION_LABEL = "controller-revision-hash"
POLL_S = 1.0

Handover = Callable[[str], Mapping[str, Any]]  # node name -> what the handover reported


class RollError(ClusterOpsError):
    """A replaced pod did not come back Ready on the new revision in time."""


@dataclass(frozen=True)
class PodState:
    name: str
    uid: str
    revision: str
    ready: bool


def _json(kubectl: Kubectl, *args: str) -> Any:
    return json.loads(kubectl.run("get", *args, "-o", "json"))


def pod_state(item: Mapping[str, Any]) -> PodState:
    conditions = item.get("status", {}).get("conditions") or []
    return PodState(
        name=item["metadata"]["name"], uid=item["metadata"].get("uid", ""),
        revision=(item["metadata"].get("labels") or {}).get(REVISION_LABEL, ""),
        ready=any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions))


def outdated(kubectl: Kubectl, statefulset: str) -> tuple[str, list[PodState]]:
    """The StatefulSet's update revision and its pods not on it."""
    sts = _json(kubectl, "statefulset", statefulset)
    revision = sts.get("status", {}).get("updateRevision", "")
    selector = ",".join(f"{k}={v}" for k, v in sts["spec"]["selector"]["matchLabels"].items())
    pods = [pod_state(p) for p in _json(kubectl, "pods", "-l", selector)["items"]]
    return revision, sorted((p for p in pods if p.revision != revision), key=lambda p: p.name)


def _scaled(kubectl: Kubectl, statefulset: str, count: int) -> tuple[bool, Any]:
    sts = _json(kubectl, "statefulset", statefulset)
    status = sts.get("status", {})
    return (status.get("observedGeneration", 0) >= sts["metadata"].get("generation", 0)
            and status.get("replicas") == count and status.get("readyReplicas") == count), status


def scale(kubectl: Kubectl, replicas: Mapping[str, int], timeout_s: float) -> None:
    """Set each StatefulSet's replica count and wait until exactly that many pods are Ready
    (`kubectl rollout status` knows only the RollingUpdate strategy)."""
    for statefulset, count in replicas.items():
        kubectl.run("scale", f"statefulset/{statefulset}", f"--replicas={count}")
    for statefulset, count in replicas.items():
        ok, seen = poll(lambda s=statefulset, n=count: _scaled(kubectl, s, n),
                        Deadline.after(timeout_s), POLL_S)
        if not ok:
            raise RollError(f"statefulset {statefulset} did not reach {count} Ready pods in "
                            f"{timeout_s:g}s (status: {seen}); run `pulumi up` again once "
                            "its pods are fixed (kubectl describe statefulset)")


def roll_order(pods: list[PodState], node_of: Mapping[str, str],
               roles: Mapping[str, str]) -> list[PodState]:
    """Pure: replicas first, the live master last (one failover per shard at most)."""
    return sorted(pods, key=lambda p: (roles.get(node_of.get(p.name, ""), "") == "master",
                                       p.name))


def _replaced(kubectl: Kubectl, old: PodState, revision: str) -> tuple[bool, Any]:
    found = _json(kubectl, "pods", "--field-selector", f"metadata.name={old.name}")["items"]
    if not found:
        return False, "not created yet"
    now = pod_state(found[0])
    return (now.uid != old.uid and now.revision == revision and now.ready), now


def roll(kubectl: Kubectl, statefulsets: list[str], node_of: Mapping[str, str],
         roles: Mapping[str, str], hand_over: Handover, timeout_s: float,
         log: Callable[[str], None] = print) -> list[str]:
    """Replace every pod not on its StatefulSet's update revision, shard by shard, each after
    its handover; -> the pods replaced, in order."""
    replaced = []
    for statefulset in statefulsets:
        revision, pods = outdated(kubectl, statefulset)
        # A pod of no planned node is one being scaled away: it is not replaced.
        for pod in roll_order([p for p in pods if p.name in node_of], node_of, roles):
            node = node_of[pod.name]
            handed = hand_over(node)
            if handed.get("was_master"):
                log(f"{node}: handed its slots to {handed.get('new_master')} "
                    f"in {handed.get('seconds')}s")
            kubectl.run("delete", "pod", pod.name, "--wait=false")
            ok, seen = poll(lambda p=pod, r=revision: _replaced(kubectl, p, r),
                            Deadline.after(timeout_s), POLL_S)
            if not ok:
                raise RollError(
                    f"pod {pod.name} ({node}) was replaced but is not Ready on revision "
                    f"{revision} after {timeout_s:g}s (last seen: {seen}). The roll stopped "
                    "here; the pods before it are on the new revision. Fix the pod (kubectl "
                    "describe pod), then run `pulumi up` again to finish the roll.")
            log(f"replaced pod {pod.name} ({node}) on revision {revision}")
            replaced.append(pod.name)
    return replaced
