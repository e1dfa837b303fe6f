"""Judge a live cluster against its plan: the checks redis-cli runs after a create, and more.

``assess`` is pure (it works on snapshots); ``verify_cluster`` observes the nodes and assesses.
Healthy means, on every node: cluster_state ok; the planned node set and nothing else, each
known at its planned address; one identical slot map; every hash slot covered; no open
(importing/migrating) slots; every slot-owning master has a replica that is not failing; and each
planned shard (master + its replicas) serves exactly its planned slots. A failover that swapped a
master with its own replica is healthy: roles are judged per shard, not per node.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from clusterops.core.model import (
    NodeTarget,
    expand_ranges,
    format_ranges,
    masters_of,
    merge_ranges,
    shard_ids,
    shard_of,
)
from clusterops.node.access import Access
from clusterops.node.observe import NodeSnapshot, observe_nodes
from clusterops.state import checks


@dataclass
class ClusterAssessment:
    """Everything learnt from one round of snapshots."""

    problems: list[str] = field(default_factory=list)
    node_ids: dict[str, str] = field(default_factory=dict)  # planned name -> id
    live_roles: dict[str, str] = field(default_factory=dict)  # planned name -> master|replica
    live_master_of: dict[str, str] = field(default_factory=dict)  # replica name -> master name
    shard_slots: dict[str, list[list[int]]] = field(default_factory=dict)  # planned master ->
    # ranges its shard serves now (whichever member is master after a failover)

    @property
    def healthy(self) -> bool:
        return not self.problems


def resolve_ids(plan: Sequence[NodeTarget], snapshots: Sequence[NodeSnapshot]) -> dict[str, str]:
    """Planned name -> node id: from the node itself, else from how the others know it."""
    ids = {s.name: s.my_id for s in snapshots if s.reachable and s.my_id}
    for target in plan:
        if target.name in ids:
            continue
        for snapshot in snapshots:
            for entry in snapshot.others:
                if entry.address == target.cluster_address and not entry.in_handshake:
                    ids[target.name] = entry.node_id
    return ids


def assess(plan: Sequence[NodeTarget], snapshots: Sequence[NodeSnapshot]) -> ClusterAssessment:
    """Pure: compare snapshots (one per planned node, same order) with the plan."""
    result = ClusterAssessment()
    problems = result.problems
    live = [s for s in snapshots if s.reachable and s.cluster_enabled]
    for snapshot in snapshots:
        if not snapshot.reachable:
            problems.append(f"{snapshot.node.name} is unreachable: {snapshot.error}")
        elif not snapshot.cluster_enabled:
            problems.append(f"{snapshot.node.name} has cluster support disabled")

    ids = resolve_ids(plan, snapshots)
    result.node_ids = ids
    name_of = {node_id: name for name, node_id in ids.items()}
    by_name = {target.name: target for target in plan}

    for snapshot in live:
        me = snapshot.node.name
        if snapshot.state != "ok":
            problems.append(f"{me}: cluster_state is {snapshot.state}")
        # Handshakes are transient: they either complete (and are judged) or time out.
        planned = {n: (i, by_name[n].cluster_address) for n, i in ids.items() if n != me}
        seen = checks.membership(snapshot, planned)
        problems += [f"{me} knows node {e.node_id} at {e.address}, which is not planned"
                     for e in seen.strangers]
        problems += [f"{me} knows {name} at {address}, planned {planned[name][1]}"
                     for name, address in seen.misplaced]
        problems += [f"{me} does not know {name}" for name in seen.unknown]
        problems += [f"{me} flags {name_of[e.node_id]} as failed"
                     for e in snapshot.others if e.failed and e.node_id in name_of]
        myself = snapshot.myself
        if myself is not None:
            for slot, verb, peer in myself.open_slots:
                problems.append(f"{me}: slot {slot} is open ({verb} {peer})")
            result.live_roles[me] = "replica" if myself.is_replica else "master"
            if myself.is_replica and myself.master_id:
                master_name = name_of.get(myself.master_id, myself.master_id)
                result.live_master_of[me] = master_name
                link = checks.replica_link(snapshot)
                if link != "up":
                    problems.append(f"{me}: replication link to {master_name} is {link}")

    if not live:
        return result

    # One slot map everywhere; judge coverage and shards on the map most nodes agree on.
    view = checks.majority_view(live)
    if view.dissenters:
        problems.append(f"slot map differs from the majority's on: {', '.join(view.dissenters)}")
    missing = view.uncovered()
    if missing:
        problems.append(
            f"{sum(b - a + 1 for a, b in missing)} slot(s) not covered: "
            + format_ranges(missing, limit=5)
        )
    for master in view.masters_without_replica():
        problems.append(f"master {name_of.get(master.node_id, master.node_id)} has no working "
                        "replica")
    owner_of = dict(enumerate(view.owners))

    # Shards: the planned master's slots must be served by a member of its own shard.
    for master in masters_of(plan):
        members = shard_ids(plan, ids, master)
        planned = expand_ranges(master.slots)
        served_by = Counter(owner_of[slot] for slot in planned)
        strangers = [o for o in served_by if o not in members]
        if strangers:
            who = ", ".join(
                "nobody" if o is None else name_of.get(o, o) for o in strangers
            )
            problems.append(f"slots planned for {master.name}'s shard are served by {who}")
        shard_serves = {slot for slot, owner in owner_of.items() if owner in members}
        if shard_serves - planned:
            extra = merge_ranges(shard_serves - planned)
            problems.append(
                f"{master.name}'s shard also serves unplanned slots "
                + format_ranges(extra, limit=5)
            )
        result.shard_slots[master.name] = merge_ranges(shard_serves)

    # Replicas follow their own shard (a swapped pair is still one shard).
    for name, master_name in result.live_master_of.items():
        target = by_name[name]
        shard = shard_of(plan, target).name
        master_target = by_name.get(master_name)
        if master_target is None or shard_of(plan, master_target).name != shard:
            problems.append(f"{name} replicates {master_name}, outside its planned shard {shard}")
    return result


def verify_cluster(
    nodes: Sequence[NodeTarget], access: Access, socket_timeout_s: float = 2.0
) -> list[str]:
    """Observe every node (read-only) and return the problems; empty when healthy."""
    return assess(nodes, observe_nodes(nodes, access, socket_timeout_s)).problems
