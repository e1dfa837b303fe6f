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

from clusterops.model import (
    HASH_SLOTS,
    NodeTarget,
    expand_ranges,
    masters_of,
    merge_ranges,
    shard_of,
)
from clusterops.observe import NodeSnapshot, observe_nodes

SlotMap = tuple[tuple[str, tuple[tuple[int, int], ...]], ...]  # ((owner id, ranges), ...)


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


def _slot_map(snapshot: NodeSnapshot) -> SlotMap:
    owners = [
        (entry.node_id, tuple(sorted(entry.slots)))
        for entry in snapshot.entries
        if entry.slots and not entry.in_handshake
    ]
    return tuple(sorted(owners))


def _resolve_ids(plan: Sequence[NodeTarget], snapshots: Sequence[NodeSnapshot]) -> dict[str, str]:
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

    ids = _resolve_ids(plan, snapshots)
    result.node_ids = ids
    name_of = {node_id: name for name, node_id in ids.items()}
    by_name = {target.name: target for target in plan}

    for snapshot in live:
        me = snapshot.node.name
        if snapshot.state != "ok":
            problems.append(f"{me}: cluster_state is {snapshot.state}")
        known = {e.node_id for e in snapshot.entries if not e.in_handshake}
        for entry in snapshot.others:
            if entry.in_handshake:
                continue  # transient: it either completes (and is judged) or times out
            name = name_of.get(entry.node_id)
            if name is None:
                problems.append(
                    f"{me} knows node {entry.node_id} at {entry.address}, which is not planned"
                )
                continue
            if entry.address != by_name[name].cluster_address:
                problems.append(
                    f"{me} knows {name} at {entry.address}, planned "
                    f"{by_name[name].cluster_address}"
                )
            if "fail" in entry.flags:
                problems.append(f"{me} flags {name} as failed")
        for name, node_id in ids.items():
            if node_id not in known:
                problems.append(f"{me} does not know {name}")
        myself = snapshot.myself
        if myself is not None:
            for slot, target in myself.migrating:
                problems.append(f"{me}: slot {slot} is open (migrating to {target})")
            for slot, source in myself.importing:
                problems.append(f"{me}: slot {slot} is open (importing from {source})")
            result.live_roles[me] = "replica" if myself.is_replica else "master"
            if myself.is_replica and myself.master_id:
                master_name = name_of.get(myself.master_id, myself.master_id)
                result.live_master_of[me] = master_name
                # Attached is not enough: until the first sync finishes the replica holds
                # no copy, and the shard has no failover target.
                link = snapshot.replication.get("master_link_status", "unknown")
                if link != "up":
                    problems.append(f"{me}: replication link to {master_name} is {link}")

    if not live:
        return result

    # One slot map everywhere; judge coverage and shards on the map most nodes agree on.
    maps = {s.name: _slot_map(s) for s in live}
    consensus, _votes = Counter(maps.values()).most_common(1)[0]
    dissent = [name for name, slot_map in maps.items() if slot_map != consensus]
    if dissent:
        problems.append(f"slot map differs from the majority's on: {', '.join(dissent)}")

    owner_of: dict[int, str] = {}
    for owner_id, ranges in consensus:
        for slot in expand_ranges(ranges):
            owner_of[slot] = owner_id
    if len(owner_of) != HASH_SLOTS:
        missing = merge_ranges(set(range(HASH_SLOTS)) - set(owner_of))
        problems.append(
            f"{HASH_SLOTS - len(owner_of)} slot(s) not covered: "
            + ", ".join(f"{a}-{b}" for a, b in missing[:5])
        )

    # Replicas per slot-owning master, from the consensus holders' own views.
    reference = next(s for s in live if maps[s.name] == consensus)
    replicas_of_id = Counter(
        e.master_id for e in reference.entries if e.is_replica and "fail" not in e.flags
    )
    for owner_id in {owner for owner, _ in consensus}:
        if replicas_of_id[owner_id] < 1:
            problems.append(f"master {name_of.get(owner_id, owner_id)} has no working replica")

    # Shards: the planned master's slots must be served by a member of its own shard.
    for master in masters_of(plan):
        members = {ids.get(t.name) for t in plan if shard_of(plan, t).name == master.name}
        members.discard(None)
        planned = expand_ranges(master.slots)
        served_by = Counter(owner_of.get(slot) for slot in planned)
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
                + ", ".join(f"{a}-{b}" for a, b in extra[:5])
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
    nodes: Sequence[NodeTarget], password: str | None, socket_timeout_s: float = 2.0
) -> list[str]:
    """Observe every node (read-only) and return the problems; empty when healthy."""
    return assess(nodes, observe_nodes(nodes, password, socket_timeout_s)).problems
