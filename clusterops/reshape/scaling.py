"""Reshape a live cluster from its deployed plan to a new one: add and remove shards and replicas.

The order, each step finished before the next:

1. observe every node of both plans; refuse, writing nothing, when the live cluster is not
   one our own procedure can leave behind (:func:`clusterops.reshape.plan.plan_reshape`: changed by
   hand, a node down, a new node holding data);
2. finish slots an interrupted move left open, by the rule `clusterops fix` uses
   (:mod:`clusterops.state.open_slots`);
3. MEET the new nodes; attach new replicas (and replicas whose shard changed) to their shard's
   live master and wait until they are synced. Replicas go before slots on purpose: a new
   master then never owns slots without a failover target, and writers' ``WAIT 1`` keeps
   being acknowledged on the moved slots;
4. move every slot to its planned owner (``clusterops.reshape.migrate``) in waves where each node
   receives all its slots before it gives any away (:func:`clusterops.reshape.plan.move_waves`):
   new masters fill from the surviving ones, leaving masters are drained, and no staying
   master is ever emptied on the way (Redis would make it a replica);
5. CLUSTER FORGET every leaving node on every surviving node (Redis bans a forgotten id for
   60 s, and a leaving container is deleted by Pulumi right after this update);
6. :func:`clusterops.provision.formation.form_cluster` on the new plan: verifies every node (nothing
   left to write).

Never CLUSTER RESET, FLUSHALL or FLUSHDB; keys only ever move by MIGRATE.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import redis

from clusterops.core.errors import ClusterCommandError, ClusterOpsError, FormationTimeoutError
from clusterops.core.model import ClusterReport, NodeTarget
from clusterops.core.poll import Deadline, poll
from clusterops.node.access import Access
from clusterops.node.observe import NodeSnapshot, observe_nodes
from clusterops.provision import formation
from clusterops.reshape.migrate import MoveStats, SlotMover
from clusterops.reshape.plan import (
    ReshapePlan,
    SlotMove,
    move_waves,
    moves_by_pair,
    plan_reshape,
    planned_moves,
)
from clusterops.state import checks
from clusterops.state.live import holders
from clusterops.state.open_slots import (
    Finish,
    close_in_place,
    count_keys_in_slots,
    find_open_slots,
    pairs_to_move,
    plan_finish,
)

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.05
PREVIEW_TIMEOUT_S = 1.0


class UnsafeReshapeError(ClusterOpsError):
    """The live cluster is not in a state this change can start from; nothing was changed."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            "refusing to reshape the cluster: " + "; ".join(self.problems) + ". Nothing was "
            "changed. Bring the cluster back to the deployed topology (or, after a failed "
            "scale-out, run `pulumi up` again with the same config to finish it) and retry.")


@dataclass
class ReshapeReport:
    plan: ReshapePlan
    moved: MoveStats = field(default_factory=MoveStats)
    finished_open: int = 0
    forgotten: list[str] = field(default_factory=list)
    attached: list[str] = field(default_factory=list)
    cluster: ClusterReport | None = None
    elapsed_s: float = 0.0


def union(old: Sequence[NodeTarget], new: Sequence[NodeTarget]) -> list[NodeTarget]:
    """Every node of either plan, once; where both have a node, the new plan's addresses."""
    new_names = {n.name for n in new}
    return [*(n for n in old if n.name not in new_names), *new]


def count_keys(moves: Sequence[SlotMove], nodes: Mapping[str, NodeTarget],
               access: Access) -> list[SlotMove]:
    """The moves with ``keys`` filled from COUNTKEYSINSLOT on each source (one pipeline per
    source); a source that does not answer leaves its moves' count unknown."""
    by_source: dict[str, list[int]] = defaultdict(list)
    for index, move in enumerate(moves):
        by_source[move.source].append(index)
    counted = list(moves)
    for source, indexes in by_source.items():
        try:
            with access.data_client(nodes[source]) as conn:
                counts = count_keys_in_slots(
                    conn, [slot for index in indexes for slot in moves[index].slots])
                for index in indexes:
                    move = moves[index]
                    total = sum(counts[slot] for slot in move.slots)
                    counted[index] = SlotMove(move.first, move.last, move.source, move.target,
                                              total)
        except redis.RedisError as exc:
            log.warning("counting keys on %s: %s", source, access.redact(str(exc)))
    return counted


def preview_reshape(old: Sequence[NodeTarget], new: Sequence[NodeTarget], access: Access,
                    timeout_s: float = PREVIEW_TIMEOUT_S) -> ReshapePlan:
    """Read-only: the plan against the live cluster where it answers, else the plans alone.

    New nodes do not exist yet at preview; they are listed as not reachable, not a problem.
    When no deployed node answers (a preview from a machine off the cluster's network), the
    moves come from the two plans and the keys are unknown.
    """
    nodes = union(old, new)
    snapshots = observe_nodes(nodes, access, timeout_s)
    deployed = {n.name for n in old}
    if not any(s.reachable for s in snapshots if s.name in deployed):
        plan = ReshapePlan(
            added=[n.name for n in new if n.name not in deployed],
            removed=[n.name for n in old if n.name not in {m.name for m in new}],
            moves=planned_moves(old, new),
            unknown_nodes=[n.name for n in nodes],
        )
        return plan
    plan = plan_reshape(old, new, snapshots)
    plan.moves = count_keys(plan.moves, {n.name: n for n in nodes}, access)
    return plan


def _wait_synced(nodes: Sequence[NodeTarget], replicas: Sequence[str], access: Access,
                 deadline: Deadline, timeout_s: float) -> None:
    wanted = [n for n in nodes if n.name in set(replicas)]

    def synced() -> tuple[bool, list[str]]:
        lagging = [f"{s.name}: {s.error or 'link ' + str(checks.replica_link(s))}"
                   for s in observe_nodes(wanted, access)
                   if not s.reachable or checks.replica_link(s) != "up"]
        return not lagging, lagging

    done, lagging = poll(synced, deadline, POLL_INTERVAL_S)
    if not done:
        raise FormationTimeoutError("waiting for new replicas to sync", lagging,
                                    "; ".join(lagging), timeout_s)


def _wait_state_ok(nodes: Sequence[NodeTarget], access: Access, deadline: Deadline,
                   timeout_s: float) -> None:
    def all_ok() -> tuple[bool, list[str]]:
        lagging = [f"{s.name}: cluster_state {s.state if s.reachable else s.error}"
                   for s in observe_nodes(nodes, access) if s.state != "ok"]
        return not lagging, lagging

    done, lagging = poll(all_ok, deadline, POLL_INTERVAL_S)
    if not done:
        raise FormationTimeoutError("waiting for cluster_state:ok after the new nodes joined",
                                    lagging, "; ".join(lagging), timeout_s)


def _open_slot_finishes(plan: ReshapePlan, nodes: Sequence[NodeTarget], access: Access
                        ) -> tuple[list[Finish], list[str]]:
    """How the rule `clusterops fix` uses (:mod:`clusterops.state.open_slots`) finishes what an
    interrupted move left open, and the masters now; refuses where that rule refuses."""
    snapshots = observe_nodes(nodes, access)
    names = {node_id: name for name, node_id in plan.ids.items()}
    view = checks.majority_view([s for s in snapshots if s.reachable and s.cluster_enabled])
    owners = [names.get(o) if o else None for o in view.owners]
    masters = [s.name for s in snapshots if s.myself and s.myself.is_master]
    open_now = find_open_slots(snapshots, names)
    slots = sorted({o.slot for o in open_now})
    unowned = [slot for slot in slots if owners[slot] is None]
    finishes, problems = plan_finish(open_now, owners, masters,
                                     holders(nodes, masters, access, slots))
    if unowned or problems:
        raise UnsafeReshapeError([*problems, *(f"slot {slot} is open but no node serves it: "
                                               "run `clusterops fix`" for slot in unowned)])
    return finishes, masters


def _finish_open_slots(plan: ReshapePlan, nodes: Sequence[NodeTarget], access: Access,
                       mover: SlotMover, conns: Mapping[str, redis.Redis]) -> int:
    finishes, masters = _open_slot_finishes(plan, nodes, access)
    for finish in finishes:
        log.info("%s", finish.describe())
    close_in_place(finishes, lambda name, command: conns[name].execute_command(*command))
    if pairs := pairs_to_move(finishes):
        mover.move(pairs, masters)
    return len(finishes)


def reshape_cluster(
    old: Sequence[NodeTarget], new: Sequence[NodeTarget], access: Access, timeout_s: float,
    recorded_ids: Mapping[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
    max_keys_per_second: float | None = None,
) -> ReshapeReport:
    """Turn the cluster deployed as ``old`` into ``new`` (see the module docstring).
    ``max_keys_per_second``: pace the key moves (None: unpaced)."""
    started = time.monotonic()
    run = _Reshape(old, new, access, timeout_s, recorded_ids or {}, progress or log.info)
    snapshots = formation.wait_until_reachable(run.nodes, access, Deadline(started + timeout_s),
                                               timeout_s)
    plan = run.checked_plan(snapshots)
    if plan.open_slots:
        _open_slot_finishes(plan, run.nodes, access)  # refused before anything is written
    report = ReshapeReport(plan)
    run.say("; ".join(plan.summary()))
    with ExitStack() as stack:
        run.conns = {n.name: stack.enter_context(access.client(n)) for n in run.nodes}
        run.meet(plan)
        plan = run.checked_plan(observe_nodes(run.nodes, access))
        mover = SlotMover(run.nodes, plan.ids, access, progress=run.say,
                          max_keys_per_second=max_keys_per_second)
        if plan.open_slots:
            report.finished_open = _finish_open_slots(plan, run.nodes, access, mover, run.conns)
            # A move started by hand between two masters finishes where it was going (the
            # one rule of clusterops/state/open_slots.py, which keeps every key readable all
            # along); if the plan wants the slot elsewhere, the moves below take it there,
            # instead of refusing it as "resharded by hand" after a clean preview.
            plan = run.checked_plan(observe_nodes(run.nodes, access),
                                    finished={o.slot for o in plan.open_slots})
        report.attached = run.attach(plan)
        masters = run.masters_now()
        # Every node receives its slots before it gives any away (see move_waves).
        for wave, moves in enumerate(move_waves(plan.moves), start=1):
            if moves:
                run.say(f"wave {wave}: moving {sum(len(m.slots) for m in moves)} slot(s)")
                report.moved.add(mover.move(moves_by_pair(moves), masters))
        report.forgotten = run.forget(run.settled(mover, masters))
    report.cluster = formation.form_cluster(list(new), access, timeout_s)
    report.elapsed_s = time.monotonic() - started
    return report


@dataclass
class _Reshape:
    """The steps of one reshape, sharing both plans, the access and one admin connection per
    node (``conns``, opened by :func:`reshape_cluster`)."""

    old: Sequence[NodeTarget]
    new: Sequence[NodeTarget]
    access: Access
    timeout_s: float
    recorded_ids: Mapping[str, str]
    say: Callable[[str], None]
    conns: dict[str, redis.Redis] = field(default_factory=dict)

    @property
    def nodes(self) -> list[NodeTarget]:
        return union(self.old, self.new)

    def checked_plan(self, snapshots: Sequence[NodeSnapshot],
                     finished: Collection[int] = ()) -> ReshapePlan:
        """The plan from the live cluster, refused on any problem; ``finished``: slots this
        run has just finished, which may sit off both plans until moved."""
        plan = plan_reshape(self.old, self.new, snapshots, self.recorded_ids, finished)
        if plan.problems:
            raise UnsafeReshapeError(plan.problems)
        return plan

    def masters_now(self) -> list[str]:
        live = observe_nodes(self.nodes, self.access)
        return [s.name for s in live if s.myself and s.myself.is_master]

    def meet(self, plan: ReshapePlan) -> None:
        """MEET the new nodes through one surviving member: gossip introduces them to the
        rest; then wait until they joined and the cluster is ok again."""
        if not plan.meet:
            return
        by_name = {n.name: n for n in self.nodes}
        introducer = next(n for n in self.new if n.name not in plan.meet)
        for name in plan.meet:
            node = by_name[name]
            try:
                self.conns[introducer.name].execute_command(
                    "CLUSTER", "MEET", node.cluster_host, node.cluster_port, node.bus_port)
            except redis.RedisError as exc:
                raise ClusterCommandError(
                    f"{introducer.name}: CLUSTER MEET {node.cluster_address} ({name}) failed: "
                    f"{self.access.redact(str(exc))}") from exc
        # Leaving nodes need not learn the new ones (and after a FORGET they cannot).
        staying = [n for n in self.nodes if n.name not in plan.removed]
        formation.wait_for_join(staying, self.conns, self.access,
                                Deadline.after(self.timeout_s), self.timeout_s)
        # A node that just joined reports cluster_state:fail for about node-timeout, and
        # refuses the RESTORE-ASKING a MIGRATE sends it (CLUSTERDOWN) until then.
        _wait_state_ok(staying, self.access, Deadline.after(self.timeout_s), self.timeout_s)

    def attach(self, plan: ReshapePlan) -> list[str]:
        """Replicas to their shard's live master, synced before any slot moves."""
        if not plan.attach:
            return []
        attached = formation.attach_replicas(plan.attach, self.conns, plan.ids, self.access,
                                             Deadline.after(self.timeout_s), self.timeout_s)
        _wait_synced(self.nodes, [r for r, _m in plan.attach], self.access,
                     Deadline.after(self.timeout_s), self.timeout_s)
        return attached

    def settled(self, mover: SlotMover, masters: Sequence[str]) -> ReshapePlan:
        """Replicas learn the new owners by gossip: poll until most nodes agree (re-claiming
        a slot whose claim an older epoch outvoted); the plan left then."""

        def done() -> tuple[bool, ReshapePlan]:
            after = plan_reshape(self.old, self.new, observe_nodes(self.nodes, self.access),
                                 self.recorded_ids)
            for target in sorted({m.target for m in after.moves}):
                mover.claim(target, masters)
            return not (after.moves or after.open_slots or after.problems), after

        finished, plan_after = poll(done, Deadline.after(self.timeout_s), POLL_INTERVAL_S)
        if plan_after.problems:
            raise UnsafeReshapeError(plan_after.problems)
        if not finished:
            raise ClusterCommandError(
                "slots still to move after the moves: "
                + "; ".join(plan_after.summary()) + ". Run `pulumi up` again to finish.")
        return plan_after

    def forget(self, plan: ReshapePlan) -> list[str]:
        """CLUSTER FORGET each leaving node on every surviving node."""
        forgotten = []
        for name in plan.forget:
            node_id = plan.ids[name]
            for survivor in self.new:
                try:
                    self.conns[survivor.name].execute_command("CLUSTER", "FORGET", node_id)
                except redis.ResponseError as exc:
                    if "unknown node" not in str(exc).lower():
                        raise ClusterCommandError(
                            f"{survivor.name}: CLUSTER FORGET {node_id} ({name}) failed: "
                            f"{self.access.redact(str(exc))}") from exc
            forgotten.append(name)
            self.say(f"forgot {name} ({node_id}) on every surviving node")
        return forgotten
