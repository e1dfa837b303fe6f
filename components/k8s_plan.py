"""The node plan placed on Kubernetes: which StatefulSet and pod each planned node becomes.

Pure code over :func:`components.topology.plan_cluster` (the same plan as on Docker): names,
roles and slot ranges come from there; this module only adds the Kubernetes identity of each
planned node (its shard's StatefulSet, its pod and its stable DNS name).

One StatefulSet per shard (a planned master and the replicas that follow it), not one per role:

- A pod template is shared by every pod of a StatefulSet, so the only way to say "this master
  and *its* replicas never share a node" is a label that the members of one shard share and no
  other pod has. With one StatefulSet per shard that label is on the template; with one per role
  the masters' template cannot name the replica that follows each master.
- A PodDisruptionBudget per shard (maxUnavailable 1) then keeps a member of every shard up
  through node drains; one per role could let a drain take a master and its replica together.
- Roles are not stable (a failover swaps a master and its replica), shards are: a StatefulSet
  called "masters" would lie after the first failover.

Pod ordinal 0 of shard m is the planned master-m; ordinals 1..R are its planned replicas in the
plan's order.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.spec import ClusterSpec
from components.topology import ClusterPlan, PlannedNode, plan_cluster


@dataclass(frozen=True)
class PlacedNode:
    node: PlannedNode  # the planned node (name, role, slots, master)
    shard: int  # 1-based, the ordinal of its planned master
    statefulset: str
    pod: str  # <statefulset>-<pod index>
    hostname: str  # the stable DNS name the node announces (cluster-announce-hostname)


@dataclass(frozen=True)
class KubernetesPlan:
    plan: ClusterPlan
    nodes: tuple[PlacedNode, ...]  # in the plan's order (masters first)
    namespace: str
    headless_service: str
    client_service: str

    def shard(self, shard: int) -> tuple[PlacedNode, ...]:
        """The members of one shard in pod-ordinal order (planned master first)."""
        return tuple(sorted((n for n in self.nodes if n.shard == shard), key=lambda n: n.pod))

    @property
    def shards(self) -> tuple[int, ...]:
        return tuple(sorted({n.shard for n in self.nodes}))

    @property
    def statefulsets(self) -> tuple[str, ...]:
        return tuple(self.shard(s)[0].statefulset for s in self.shards)


def statefulset_name(spec: ClusterSpec, shard: int) -> str:
    return f"{spec.name_prefix}-redis-shard-{shard}"


def place_cluster(spec: ClusterSpec) -> KubernetesPlan:
    if spec.k8s is None:
        raise ValueError("place_cluster needs a spec with target kubernetes")
    plan = plan_cluster(spec)
    namespace = spec.k8s.namespace
    headless = f"{spec.name_prefix}-redis-nodes"
    masters = {m.name: m.ordinal for m in plan.masters}
    next_index = dict.fromkeys(masters.values(), 1)
    placed = []
    for node in plan.nodes:
        shard = node.ordinal if node.is_master else masters[str(node.master)]
        if node.is_master:
            index = 0
        else:
            index = next_index[shard]
            next_index[shard] += 1
        sts = statefulset_name(spec, shard)
        pod = f"{sts}-{index}"
        placed.append(PlacedNode(
            node=node,
            shard=shard,
            statefulset=sts,
            pod=pod,
            # <pod>.<headless service>.<namespace>.svc.<domain>: the per-pod DNS record a
            # StatefulSet's governing Service gives every pod, whatever its current IP.
            hostname=f"{pod}.{headless}.{namespace}.svc.{spec.k8s.cluster_domain}",
        ))
    return KubernetesPlan(
        plan=plan,
        nodes=tuple(placed),
        namespace=namespace,
        headless_service=headless,
        client_service=f"{spec.name_prefix}-redis",
    )
