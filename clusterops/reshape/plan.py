"""Pure reshape planning: what must happen to turn the live cluster into a new plan.

No I/O. Given the plan the cluster was deployed with (``old``), the new plan and one snapshot of
every node of either plan, :func:`plan_reshape` says which nodes join and leave, which slot
ranges move from which live master to which, which replicas must (re)attach, which open slots
an interrupted move left, and why it would be unsafe to go on (:attr:`ReshapePlan.problems`:
the live cluster is not a state our own procedure can leave behind, so someone changed it by
hand). Slots move only to the live master of their planned shard (the planned master, or its
replica after a failover); a slot already served by its planned shard never moves.

The new plan's slot split is whatever the caller gives: the deployment providers give the
split that moves the fewest slots from the deployed one (:mod:`clusterops.reshape.least_moves`:
3 -> 4 masters moves 4096 slots), not a fresh split (which would move 8192, half).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from clusterops.core.model import (
    HASH_SLOTS,
    NodeTarget,
    format_ranges,
    masters_of,
    merge_ranges,
    shard_members,
    shard_of,
)
from clusterops.core.units import format_bytes
from clusterops.node.observe import NodeSnapshot, info_int
from clusterops.state import checks
from clusterops.state.open_slots import OpenSlot, find_open_slots
from clusterops.state.verify import resolve_ids


@dataclass(frozen=True)
class SlotMove:
    """Slots ``first..last`` move from the live master ``source`` to ``target`` (names)."""

    first: int
    last: int
    source: str
    target: str
    keys: int | None = None  # keys in these slots on the source, where counted

    @property
    def slots(self) -> range:
        return range(self.first, self.last + 1)

    def describe(self) -> str:
        span = f"{self.first}-{self.last}" if self.first != self.last else str(self.first)
        keys = "? keys" if self.keys is None else f"{self.keys} keys"
        count = self.last - self.first + 1
        return f"slots {span} ({count}): {self.source} -> {self.target}, {keys}"


@dataclass
class ReshapePlan:
    added: list[str] = field(default_factory=list)  # nodes that join (new in the plan)
    removed: list[str] = field(default_factory=list)  # nodes that leave
    meet: list[str] = field(default_factory=list)  # added nodes not yet in the cluster
    moves: list[SlotMove] = field(default_factory=list)
    open_slots: list[OpenSlot] = field(default_factory=list)
    attach: list[tuple[str, str]] = field(default_factory=list)  # (replica, live master)
    forget: list[str] = field(default_factory=list)  # removed nodes still known to the cluster
    problems: list[str] = field(default_factory=list)  # unsafe: refuse, change nothing
    # Those of the problems that only say a deployed node is down (for health checks when the
    # plan is unchanged; a reason to refuse a reshape).
    down: list[str] = field(default_factory=list)
    unknown_nodes: list[str] = field(default_factory=list)  # not reachable (preview: not created)
    foreign_owners: list[str] = field(default_factory=list)  # ids in neither plan serving slots
    ids: dict[str, str] = field(default_factory=dict)  # name -> node id, where known

    @property
    def nothing_to_do(self) -> bool:
        return not (self.meet or self.moves or self.open_slots or self.attach or self.forget)

    @property
    def slots_moving(self) -> int:
        return sum(m.last - m.first + 1 for m in self.moves)

    @property
    def keys_moving(self) -> int | None:
        counts = [m.keys for m in self.moves]
        return None if any(c is None for c in counts) else sum(c for c in counts if c)

    def summary(self) -> list[str]:
        """Stable, readable lines for a preview and a reviewer."""
        lines = []
        if self.added:
            lines.append(f"add nodes: {', '.join(self.added)}")
        if self.removed:
            lines.append(f"remove nodes (drained and forgotten first): {', '.join(self.removed)}")
        keys = self.keys_moving
        lines.append(
            f"move {self.slots_moving} slot(s) in {len(self.moves)} range(s), "
            + ("keys unknown (not all sources reachable)" if keys is None else f"{keys} key(s)")
        )
        lines += [f"  {m.describe()}" for m in self.moves]
        if self.open_slots:
            lines.append(f"finish {len(self.open_slots)} open slot(s) left by an interrupted move: "
                         + ", ".join(o.describe() for o in self.open_slots[:10]))
        lines += [f"attach replica {r} to {m}" for r, m in self.attach]
        if self.unknown_nodes:
            lines.append(f"not reachable now (to be created): {', '.join(self.unknown_nodes)}")
        return lines


def fold_moves(assignments: Iterable[tuple[int, str, str]]) -> list[SlotMove]:
    """(slot, source, target) in slot order -> moves; consecutive slots with one source and
    one target form one range."""
    moves: list[SlotMove] = []
    for slot, source, target in assignments:
        last = moves[-1] if moves else None
        if last and last.last == slot - 1 and (last.source, last.target) == (source, target):
            moves[-1] = SlotMove(last.first, slot, source, target)
        else:
            moves.append(SlotMove(slot, slot, source, target))
    return moves


def moves_by_pair(moves: Iterable[SlotMove]) -> dict[tuple[str, str], list[int]]:
    """(source, target) -> the slots that move between them, as SlotMover.move takes them."""
    pairs: dict[tuple[str, str], list[int]] = {}
    for move in moves:
        pairs.setdefault((move.source, move.target), []).extend(move.slots)
    return pairs


def planned_owner(plan: Sequence[NodeTarget]) -> list[str]:
    """Planned master name of every slot (the plan must be valid: full coverage)."""
    owner = [""] * HASH_SLOTS
    for master in masters_of(plan):
        for first, last in master.slots:
            owner[first : last + 1] = [master.name] * (last - first + 1)
    return owner


def slot_moves(
    live_owner: Sequence[str | None], planned: Sequence[str],
    members: Mapping[str, Sequence[str]], targets: Mapping[str, str],
) -> list[SlotMove]:
    """Pure core: slots whose live owner (name) is outside their planned shard move to that
    shard's target; consecutive slots with one source and one target form one range.
    ``live_owner`` None (nobody serves the slot) is not a move: it is a problem elsewhere."""
    return fold_moves(
        (slot, source, targets[shard])
        for slot, (source, shard) in enumerate(zip(live_owner, planned, strict=True))
        if source is not None and source not in members[shard]
    )


def planned_moves(old: Sequence[NodeTarget], new: Sequence[NodeTarget]) -> list[SlotMove]:
    """The moves as the two plans alone say (the live cluster not reachable: keys unknown)."""
    return slot_moves(planned_owner(old), planned_owner(new), shard_members(new),
                      {m.name: m.name for m in masters_of(new)})


@dataclass(frozen=True)
class _Scene:
    """What every check of :func:`plan_reshape` reads: both plans and the live cluster."""

    old: Sequence[NodeTarget]
    new: Sequence[NodeTarget]
    union: list[NodeTarget]
    by_name: Mapping[str, NodeSnapshot]
    live: Mapping[str, NodeSnapshot]  # reachable cluster nodes
    names: Mapping[str, str]  # node id -> name
    added: list[str]
    removed: list[str]
    view: checks.ClusterView  # the slot map most cluster members agree on

    @property
    def live_owner(self) -> list[str | None]:
        return [self.names.get(o) if o else None for o in self.view.owners]

    def node(self, name: str) -> NodeTarget:
        return next(n for n in self.union if n.name == name)


def plan_reshape(
    old: Sequence[NodeTarget], new: Sequence[NodeTarget], snapshots: Sequence[NodeSnapshot],
    recorded_ids: Mapping[str, str] | None = None, finished: Collection[int] = (),
) -> ReshapePlan:
    """Pure: compare the live cluster (snapshots of old ∪ new nodes) with both plans.

    ``recorded_ids`` (name -> node id from the last deployment) catches a node that was reset
    or swapped by hand. Unreachable nodes are listed in ``unknown_nodes``; an unreachable node
    of the old plan is also a problem (its slots cannot be judged or moved). Each check below
    is a small pure function returning its problems. ``finished``: open slots this run
    finished, on the master their move was going to, whatever the plans say (the moves take
    them on).
    """
    old_names, new_names = {n.name for n in old}, {n.name for n in new}
    union = [*old, *(n for n in new if n.name not in old_names)]
    by_name = {s.name: s for s in snapshots}
    live = {name: s for name, s in by_name.items() if s.reachable and s.cluster_enabled}
    # A node that is down (a container being replaced) is still known by its peers: its id
    # comes from them, so its slots are not mistaken for a stranger's.
    ids = resolve_ids(union, snapshots)
    members = [s for s in live.values() if len(s.entries) > 1 or (s.myself and s.myself.slots)]
    scene = _Scene(old, new, union, by_name, live, {i: n for n, i in ids.items()},
                   [n.name for n in new if n.name not in old_names],
                   [n.name for n in old if n.name not in new_names],
                   checks.majority_view(members))
    result = ReshapePlan(added=scene.added, removed=scene.removed, ids=ids)
    result.unknown_nodes, result.down, problems = _reachability(scene, old_names)
    problems += _reset_by_hand(scene, recorded_ids or {})
    problems += _strangers(scene)
    problems += _new_nodes_with_data(scene)
    result.meet = [name for name in scene.added
                   if name in live and len(live[name].entries) == 1]
    result.foreign_owners = sorted({o for o in scene.view.owners if o and o not in scene.names})
    problems += _foreign_owner_problems(result.foreign_owners)
    problems += _uncovered(scene)
    problems += _misplaced(scene, finished)
    problems += _replicas_outside_their_shard(scene)
    result.open_slots = find_open_slots(list(live.values()), scene.names)
    problems += _leaving_live_masters(scene)
    targets = checks.shard_targets(new, live)
    result.moves = slot_moves(scene.live_owner, planned_owner(new), shard_members(new), targets)
    problems += capacity_problems(result.moves, live)
    problems += replica_loss_problems(old, new, scene.added, scene.removed, live)
    result.attach = _replicas_to_attach(scene, targets)
    result.forget = _to_forget(scene, ids)
    result.problems = problems
    return result


def _reachability(scene: _Scene, old_names: set[str]) -> tuple[list[str], list[str], list[str]]:
    """(unknown nodes, deployed nodes down, problems): a deployed node must answer."""
    unknown: list[str] = []
    down: list[str] = []
    problems: list[str] = []
    for node in scene.union:
        snap = scene.by_name.get(node.name)
        if snap is None or not snap.reachable:
            unknown.append(node.name)
            if node.name in old_names:
                down.append(f"{node.name} (deployed) is not reachable: "
                            f"{snap.error if snap else 'not observed'}")
                problems.append(down[-1])
        elif not snap.cluster_enabled:
            problems.append(f"{node.name} has cluster support disabled")
    return unknown, down, problems


def _reset_by_hand(scene: _Scene, recorded_ids: Mapping[str, str]) -> list[str]:
    return [f"{name} has node id {scene.live[name].my_id}, but the stack recorded {node_id}: "
            "the node was reset or replaced by hand"
            for name, node_id in recorded_ids.items()
            if name in scene.live and scene.live[name].my_id != node_id]


def _strangers(scene: _Scene) -> list[str]:
    """Known members are the deployed nodes (and added ones once met); anyone else was added
    by hand."""
    return [f"{name} knows node {entry.node_id} at {entry.address}, which is in neither the "
            "deployed nor the new plan (added by hand?)"
            for name, snap in scene.live.items() for entry in snap.others
            if entry.node_id not in scene.names and not entry.in_handshake]


def _new_nodes_with_data(scene: _Scene) -> list[str]:
    """Only a node not yet in the cluster is judged: once met, a replica holds its master's
    keys and a master the slots it received."""
    return [f"{name} is new to the cluster but holds {snap.key_count} key(s) (a volume from "
            "another cluster?)"
            for name in scene.added if (snap := scene.live.get(name)) is not None
            and snap.key_count and len(snap.entries) == 1]


def _foreign_owner_problems(strangers: Sequence[str]) -> list[str]:
    if not strangers:
        return []
    return [f"slots are served by node(s) outside both plans: {', '.join(strangers)} (a "
            "scale-out that failed half-way and was then reverted? set the config back to "
            "finish it first)"]


def _uncovered(scene: _Scene) -> list[str]:
    uncovered = scene.view.uncovered() if scene.view.majority else []
    if not uncovered:
        return []
    return [f"{sum(b - a + 1 for a, b in uncovered)} slot(s) are served by nobody: "
            f"{format_ranges(uncovered, limit=5)} (fix the cluster first)"]


def _misplaced(scene: _Scene, finished: Collection[int] = ()) -> list[str]:
    """Every slot must be where the deployed plan or the new plan puts it (a move in progress
    is between the two); anything else was moved by hand (``finished``: except the slots the
    running reshape just finished)."""
    old_owner, new_owner = planned_owner(scene.old), planned_owner(scene.new)
    old_members, new_members = shard_members(scene.old), shard_members(scene.new)
    live_owner = scene.live_owner
    misplaced = [slot for slot in range(HASH_SLOTS)
                 if live_owner[slot] is not None and slot not in finished
                 and live_owner[slot] not in old_members[old_owner[slot]]
                 and live_owner[slot] not in new_members[new_owner[slot]]]
    if not misplaced:
        return []
    return [f"{len(misplaced)} slot(s) are served by a master that neither the deployed nor the "
            f"new plan gives them to: {format_ranges(merge_ranges(misplaced), limit=5)} "
            "(resharded by hand?)"]


def _replicas_outside_their_shard(scene: _Scene) -> list[str]:
    """Replicas must follow a member of their own planned shard (old or new plan). A leaving
    master that lost its last slot follows the slot's new owner (Redis 7 does that itself)."""
    plans = ((scene.old, shard_members(scene.old)), (scene.new, shard_members(scene.new)))
    problems = []
    for name, snap in scene.live.items():
        me = snap.myself
        if me is None or not me.is_replica or name in scene.removed:
            continue
        followed = scene.names.get(me.master_id or "")
        node = scene.node(name)
        allowed = {member for plan, members in plans if node in plan
                   for member in members[shard_of(plan, node).name]}
        if followed is None or followed not in allowed:
            problems.append(f"{name} replicates {followed or me.master_id}, outside its shard "
                            "(changed by hand?)")
    return problems


def _leaving_live_masters(scene: _Scene) -> list[str]:
    """A removed node serving a surviving shard's slots (promoted by a failover) cannot leave:
    its shard has no other live master to take them."""
    new_masters = {m.name for m in masters_of(scene.new)}
    problems = []
    for name in scene.removed:
        me = scene.live[name].myself if name in scene.live else None
        node = scene.node(name)
        shard = shard_of(scene.old, node).name
        if me and me.is_master and me.slots and not node.is_master and shard in new_masters:
            problems.append(
                f"{name} is leaving but is the live master of {shard}'s shard after a "
                f"failover: fail back first (CLUSTER FAILOVER on {shard}), then run pulumi up "
                "again")
    return problems


def _replicas_to_attach(scene: _Scene, targets: Mapping[str, str]) -> list[tuple[str, str]]:
    """(replica, its shard's live master) for each new-plan replica not following its shard."""
    new_members = shard_members(scene.new)
    attach = []
    for replica in scene.new:
        if replica.is_master:
            continue
        me = scene.live[replica.name].myself if replica.name in scene.live else None
        if me is None and replica.name not in scene.added:
            continue  # a deployed replica that is down: for health checks, not a reshape
        if me is not None and me.is_master and me.slots:
            continue  # took over its shard after a failover: it serves, it stays
        followed = scene.names.get(me.master_id or "") if me is not None and me.is_replica \
            else None
        shard = shard_of(scene.new, replica).name
        if followed not in new_members[shard]:
            attach.append((replica.name, targets[shard]))
    return attach


def _to_forget(scene: _Scene, ids: Mapping[str, str]) -> list[str]:
    """Removed nodes that a surviving node still knows."""
    survivors = [s for n, s in scene.live.items() if n not in scene.removed]
    return [name for name in scene.removed if name in ids and any(
        ids[name] in {e.node_id for e in s.others} for s in survivors)]


# A target may fill up to this share of its maxmemory with what it receives: above it, an
# allkeys-* policy starts evicting (losing keys) and noeviction fails the MIGRATE half-way.
CAPACITY_SHARE = 0.9


def capacity_problems(moves: Sequence[SlotMove], live: Mapping[str, NodeSnapshot]
                      ) -> list[str]:
    """Moves whose keys would not fit on their target. A source's bytes per slot are
    estimated as its dataset (INFO memory used_memory_dataset) over the slots it serves."""
    incoming: dict[str, float] = {}
    for move in moves:
        source = live.get(move.source)
        me = source.myself if source else None
        if source is None or me is None or not me.slots:
            continue
        served = sum(last - first + 1 for first, last in me.slots)
        share = (move.last - move.first + 1) / served
        incoming[move.target] = incoming.get(move.target, 0.0) + share * info_int(
            source.memory, "used_memory_dataset")
    problems = []
    for name, extra in sorted(incoming.items()):
        target = live.get(name)
        if target is None:
            continue
        limit = info_int(target.memory, "maxmemory")
        used = info_int(target.memory, "used_memory")
        if limit and used + extra > CAPACITY_SHARE * limit:
            problems.append(
                f"the keys cannot be placed: about {format_bytes(int(extra))} would move to "
                f"{name}, which uses {format_bytes(used)} of its maxmemory "
                f"{format_bytes(limit)} (at most {CAPACITY_SHARE:.0%} may be used, or keys "
                "would be evicted or the move would fail half-way). Raise maxmemory first, or "
                "keep more masters")
    return problems


def replica_loss_problems(old: Sequence[NodeTarget], new: Sequence[NodeTarget],
                          added: Sequence[str], removed: Sequence[str],
                          live: Mapping[str, NodeSnapshot]) -> list[str]:
    """A shard with replicas planned must keep a working one: removing its last working
    replica while the replicas it keeps are down would leave its master alone, one failure
    from losing its slots. (A replica being added counts: the reshape attaches and syncs it.)"""

    def working(name: str) -> bool:
        snap = live.get(name)
        me = snap.myself if snap else None
        return bool(me and me.is_replica
                    and snap.replication.get("master_link_status") == "up")  # type: ignore[union-attr]

    old_names = {n.name for n in old}
    problems = []
    for master in masters_of(new):
        kept = [name for name in shard_members(new)[master.name] if name != master.name]
        if not kept or master.name not in old_names:
            continue
        leaving = [n.name for n in old if n.name in removed and not n.is_master
                   and shard_of(old, n).name == master.name and working(n.name)]
        if leaving and not any(working(name) or name in added for name in kept):
            problems.append(
                f"{master.name}'s shard would be left without a working replica: "
                f"{', '.join(leaving)} would be removed and {', '.join(kept)} is not up and "
                "linked. Bring it back first (clusterops health shows why it is down)")
    return problems


def move_waves(moves: Sequence[SlotMove]) -> list[list[SlotMove]]:
    """The moves in waves such that every move INTO a node comes in an earlier wave than any
    move OUT of it.

    Why: Redis 7 turns a master that loses its last slot into a replica of the slot's new
    owner (cluster.c, clusterUpdateSlotsConfigWith). 5 -> 3 masters re-splits the slots so that
    master-3 gives all its slots to master-2 and receives master-4's and master-5's: moved out
    first, it becomes a replica and can no longer import (SETSLOT: "Please use SETSLOT only
    with masters"), found by tests/integration/test_scaling.py. A node's wave is 1 + the
    highest wave of the nodes it receives from; a cycle (none arises from contiguous splits)
    ends in one last wave, the order it came in.
    """
    sources_of: dict[str, set[str]] = {}
    for move in moves:
        sources_of.setdefault(move.target, set()).add(move.source)
    level: dict[str, int] = {}

    def level_of(node: str, visiting: frozenset[str] = frozenset()) -> int | None:
        if node in level:
            return level[node]
        if node in visiting:
            return None  # a cycle
        below = [level_of(s, visiting | {node}) for s in sources_of.get(node, ())]
        if any(b is None for b in below):
            return None
        level[node] = 1 + max((b for b in below if b is not None), default=-1)
        return level[node]

    waves: dict[int, list[SlotMove]] = {}
    cyclic: list[SlotMove] = []
    for move in moves:
        wave = level_of(move.source)
        if wave is None:
            cyclic.append(move)
        else:
            waves.setdefault(wave, []).append(move)
    ordered = [waves[k] for k in sorted(waves)]
    return ordered + ([cyclic] if cyclic else [])
