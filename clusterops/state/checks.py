"""Pure judgements of a live cluster, shared by formation's verification, health and drills.

Each function takes snapshots (:mod:`clusterops.node.observe`) and returns facts; the callers
word them for their audience (verify: one problem list; health: per-node results; drill:
readiness). Defined once here: the slot map most nodes agree on, coverage, replica presence,
open slots, fail flags and replication links.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from clusterops.core.model import HASH_SLOTS, NodeTarget, merge_ranges, shard_members
from clusterops.node.observe import ClusterNodeEntry, NodeSnapshot

OwnerRuns = tuple[tuple[int, int, str | None], ...]  # (first, last, owner id | None), all slots


def slot_owners(entries: Sequence[ClusterNodeEntry]) -> list[str | None]:
    """Owner node id of every slot in one node's view (None: nobody serves it)."""
    owners: list[str | None] = [None] * HASH_SLOTS
    for entry in entries:
        # A handshake entry is a MEET in progress, not yet a member serving slots.
        if entry.is_master and not entry.in_handshake:
            for first, last in entry.slots:
                for slot in range(max(0, first), min(HASH_SLOTS - 1, last) + 1):
                    owners[slot] = entry.node_id
    return owners


def owner_runs(owners: Sequence[str | None]) -> OwnerRuns:
    """Per-slot owners folded into runs: a compact, comparable form of a slot map."""
    runs: list[tuple[int, int, str | None]] = []
    for slot, owner in enumerate(owners):
        if runs and runs[-1][2] == owner:
            runs[-1] = (runs[-1][0], slot, owner)
        else:
            runs.append((slot, slot, owner))
    return tuple(runs)


def expand_runs(runs: OwnerRuns) -> list[str | None]:
    owners: list[str | None] = [None] * HASH_SLOTS
    for first, last, owner in runs:
        owners[first : last + 1] = [owner] * (last - first + 1)
    return owners


@dataclass(frozen=True)
class ClusterView:
    """The slot map most nodes agree on, each node's own map, and a node holding the majority."""

    reference: tuple[ClusterNodeEntry, ...]  # CLUSTER NODES of a node holding the majority map
    reference_node: str | None
    maps: dict[str, OwnerRuns]  # node name -> its slot map

    @property
    def majority(self) -> OwnerRuns:
        return self.maps[self.reference_node] if self.reference_node else ()

    @property
    def owners(self) -> list[str | None]:
        """Owner node id of every slot in the majority map (None: nobody serves it)."""
        return expand_runs(self.majority)

    @property
    def dissenters(self) -> list[str]:
        return [name for name, runs in self.maps.items() if runs != self.majority]

    @property
    def masters(self) -> list[ClusterNodeEntry]:
        """Masters serving slots, as the reference node sees them."""
        return [e for e in self.reference if e.is_master and e.slots and not e.in_handshake]

    def replicas_of(self, master: ClusterNodeEntry) -> list[ClusterNodeEntry]:
        return [e for e in self.reference if e.master_id == master.node_id]

    def uncovered(self) -> list[list[int]]:
        """Slot ranges nobody serves in the majority map."""
        return merge_ranges(slot for slot, owner in enumerate(self.owners) if owner is None)

    def masters_without_replica(self) -> list[ClusterNodeEntry]:
        """Slot-serving masters with no replica that is not flagged FAIL: a failover target."""
        return [m for m in self.masters
                if not any(not r.failed for r in self.replicas_of(m))]


def majority_view(snapshots: Sequence[NodeSnapshot]) -> ClusterView:
    """The map most cluster nodes agree on; a tie goes to the first node in target order."""
    maps = {s.name: owner_runs(slot_owners(s.entries))
            for s in snapshots if s.reachable and s.cluster_enabled}
    if not maps:
        return ClusterView((), None, {})
    majority = Counter(maps.values()).most_common(1)[0][0]
    reference = next(s for s in snapshots if maps.get(s.name) == majority)
    return ClusterView(tuple(reference.entries), reference.name, maps)


@dataclass(frozen=True)
class Membership:
    """How one node's view compares with the planned members (handshakes not judged yet)."""

    unknown: list[str]  # planned names this node does not know
    misplaced: list[tuple[str, str]]  # (planned name, address it is known at) off the plan
    strangers: list[ClusterNodeEntry]  # nodes it knows that are not planned


def membership(snapshot: NodeSnapshot, planned: Mapping[str, tuple[str, str]]) -> Membership:
    """``planned``: name -> (node id, planned cluster address) of every member but this one."""
    seen = {e.node_id: e for e in snapshot.others if not e.in_handshake}
    names = {node_id: name for name, (node_id, _address) in planned.items()}
    result = Membership([], [], [s for s in seen.values() if s.node_id not in names])
    for name, (node_id, address) in planned.items():
        entry = seen.get(node_id)
        if entry is None:
            result.unknown.append(name)
        elif entry.address != address:
            result.misplaced.append((name, entry.address))
    return result


def shard_targets(
    plan: Sequence[NodeTarget], snapshots: Mapping[str, NodeSnapshot]
) -> dict[str, str]:
    """Planned master name -> the member of its shard that serves (or should receive) its
    slots: the one that is a live master with slots (a failover may have promoted a
    replica), else the planned master."""
    targets: dict[str, str] = {}
    for master, members in shard_members(plan).items():
        serving = (name for name in members
                   if name in snapshots and snapshots[name].serves_slots)
        targets[master] = next(serving, master)
    return targets


def flagged(snapshots: Sequence[NodeSnapshot], *, possibly: bool = False
            ) -> dict[str, tuple[ClusterNodeEntry, list[str]]]:
    """Node id -> (entry, names of the nodes that flag it FAIL); with ``possibly``, PFAIL."""
    flags: dict[str, tuple[ClusterNodeEntry, list[str]]] = {}
    for snap in snapshots:
        if not snap.reachable:
            continue
        for entry in snap.entries:
            if entry.possibly_failed if possibly else entry.failed:
                flags.setdefault(entry.node_id, (entry, []))[1].append(snap.name)
    return flags


def replica_link(snapshot: NodeSnapshot) -> str | None:
    """A replica's ``master_link_status`` (None for a master). Attached is not enough: until
    the first sync finishes the replica holds no copy and its shard has no failover target."""
    me = snapshot.myself
    if me is None or not me.is_replica:
        return None
    return snapshot.replication.get("master_link_status", "unknown")


def drill_readiness(snapshots: Sequence[NodeSnapshot]) -> list[str]:
    """What stops a failover drill (empty when ready): every node answers with cluster_state
    ok, nobody sees a failing node, and every slot-serving master has a replica whose link is
    up (so a failover is possible)."""
    problems = []
    masters: dict[str, str] = {}  # node id -> name, masters with slots
    replicas_up: set[str] = set()  # master ids with a replica whose link is up
    for snap in snapshots:
        me = snap.myself
        if not snap.reachable or me is None:
            problems.append(f"{snap.name}: not answering ({snap.error or 'no CLUSTER NODES'})")
            continue
        if snap.state != "ok":
            problems.append(f"{snap.name}: cluster_state:{snap.state}")
        failing = sorted(e.address for e in snap.entries if e.is_failing)
        if failing:
            problems.append(f"{snap.name}: sees failing nodes {', '.join(failing)}")
        if replica_link(snap) == "up" and me.master_id:
            replicas_up.add(me.master_id)
        if me.is_master and me.slots:
            masters[me.node_id] = snap.name
    for node_id, name in masters.items():
        if node_id not in replicas_up:
            problems.append(f"{name}: master without a replica whose link is up")
    return problems
