"""Put the planned masters back after failovers, with no loss: CLUSTER FAILOVER on each.

The planned master of a shard is the target whose planned role is master (the stack outputs'
``nodes``, or ``--node NAME=HOST:PORT:master``). One that is a replica now gets a plain
``CLUSTER FAILOVER`` (no FORCE/TAKEOVER) once its link to the live master is up: Redis then
pauses the master's clients, lets the replica catch up to the master's offset and only then
switches, so no acknowledged write is lost. Shards go one at a time; each switch is awaited
(poll with a deadline) until the planned master serves the slots and the old master follows it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from clusterops.core.errors import ClusterCommandError, UsageError
from clusterops.core.model import NodeTarget, format_ranges
from clusterops.core.poll import Deadline, poll
from clusterops.node.access import Access
from clusterops.node.admin import manual_failover
from clusterops.node.observe import observe_nodes
from clusterops.state import checks
from clusterops.state.live import LiveCluster, read_live

POLL_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Handback:
    planned: str  # the planned master, a replica now
    live_master: str  # the node serving its shard's slots now
    slots: str  # the slots that move back, for the plan

    def describe(self) -> str:
        return (f"CLUSTER FAILOVER on {self.planned}: it takes slots {self.slots} back from "
                f"{self.live_master}, which becomes its replica")


@dataclass
class FailbackPlan:
    handbacks: list[Handback] = field(default_factory=list)
    in_place: list[str] = field(default_factory=list)  # planned masters serving already
    problems: list[str] = field(default_factory=list)

    @property
    def nothing_to_do(self) -> bool:
        return not self.handbacks

    def lines(self) -> list[str]:
        lines = [h.describe() for h in self.handbacks]
        if self.in_place:
            lines.append(f"already masters as planned: {', '.join(self.in_place)}")
        if not self.handbacks and not self.problems:
            lines.append("nothing to fail back: every planned master is a master")
        return lines + [f"NOT POSSIBLE: {p}" for p in self.problems]


def plan_failback(nodes: Sequence[NodeTarget], live: LiveCluster) -> FailbackPlan:
    """Pure given the live read: which planned masters take their shard back."""
    planned = [n for n in nodes if n.is_master]
    if not planned:
        raise UsageError("no planned master among the targets: failback needs the planned "
                         "roles (--stack-outputs, or --node NAME=HOST:PORT:master)")
    names = live.names
    plan = FailbackPlan()
    for master in planned:
        me = live.snapshot(master.name).myself
        assert me is not None  # read_live refuses a node without cluster support
        if me.is_master:
            if me.slots:
                plan.in_place.append(master.name)
            else:
                plan.problems.append(f"{master.name} is a master without slots: not a failover "
                                     "(resharded by hand?); use rebalance or reshard")
            continue
        followed = names.get(me.master_id or "")
        if followed is None:
            plan.problems.append(f"{master.name} replicates {me.master_id}, which is not "
                                 "among the targets")
            continue
        shard = {n.name for n in nodes if n.master == master.name} | {master.name}
        planned_replicas = any(n.master for n in nodes)
        if planned_replicas and followed not in shard:
            plan.problems.append(f"{master.name} replicates {followed}, outside its planned "
                                 f"shard ({', '.join(sorted(shard))}); changed by hand?")
            continue
        serving = live.snapshot(followed).myself
        if serving is None or not serving.is_master or not serving.slots:
            plan.problems.append(f"{master.name} replicates {followed}, which serves no slots")
            continue
        plan.handbacks.append(Handback(master.name, followed, format_ranges(serving.slots)))
    return plan


def preview_failback(nodes: Sequence[NodeTarget], access: Access) -> FailbackPlan:
    return plan_failback(nodes, read_live(nodes, access))


def hand_back(nodes: Sequence[NodeTarget], access: Access, handback: Handback,
              timeout_s: float) -> None:
    """One shard: wait for a synced link, CLUSTER FAILOVER, wait for the roles to flip."""
    by_name = {n.name: n for n in nodes}
    planned, old = by_name[handback.planned], by_name[handback.live_master]

    def synced() -> tuple[bool, str]:
        snap = observe_nodes([planned], access)[0]
        link = checks.replica_link(snap) if snap.reachable else snap.error
        return link == "up", f"{planned.name}: master_link_status {link}"

    done, seen = poll(synced, Deadline.after(timeout_s), POLL_INTERVAL_S)
    if not done:
        raise ClusterCommandError(f"{planned.name} syncing with {old.name} before the failover: "
                                  f"not done within {timeout_s:g}s; last seen: {seen}")
    done, seen = manual_failover(planned, old, access, Deadline.after(timeout_s))
    if not done:
        raise ClusterCommandError(f"{planned.name} taking over from {old.name}: not done within "
                                  f"{timeout_s:g}s; last seen: {seen}")


def apply_failback(nodes: Sequence[NodeTarget], access: Access, timeout_s: float,
                   progress: Callable[[str], None] | None = None) -> FailbackPlan:
    """Hand each shard back in turn; return a fresh plan afterwards (empty when done)."""
    say = progress or (lambda _line: None)
    plan = preview_failback(nodes, access)
    for handback in plan.handbacks:
        say(handback.describe())
        hand_back(nodes, access, handback, timeout_s)
        say(f"{handback.planned} is master again")
    return preview_failback(nodes, access)
