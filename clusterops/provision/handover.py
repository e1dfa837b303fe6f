"""Make a node safe to take down: its shard has another live copy, and it serves no slots.

A rolling replacement (a new image) takes down one node of a shard at a time. Before node X
goes:

1. every other member of X's shard must answer, and each replica among them must be linked
   to its master: the member replaced just before X has come back and caught up;
2. if X is a live master, a manual ``CLUSTER FAILOVER`` on one of its linked replicas hands
   X's slots over. The replica first catches up with X's replication offset while X holds
   client writes (Redis' own coordinated failover), so no acknowledged write is lost and
   clients see a MOVED at most, not a node-timeout outage;
3. X must be reported a replica (and the new master a master) before it is taken down.

A node that is already a replica needs nothing but step 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clusterops.core.errors import ClusterCommandError, ClusterOpsError
from clusterops.core.model import NodeTarget
from clusterops.core.poll import Deadline, poll
from clusterops.node.access import Access
from clusterops.node.admin import manual_failover
from clusterops.node.observe import NodeSnapshot, observe_nodes

POLL_INTERVAL_S = 0.1


class HandoverError(ClusterOpsError):
    """The node could not be made safe to take down; the message says which node and why."""


@dataclass
class HandoverReport:
    node: str
    was_master: bool
    new_master: str | None = None  # the shard member that took over X's slots
    seconds: float = 0.0


def _role(snapshot: NodeSnapshot) -> str:
    if not snapshot.reachable:
        return f"unreachable ({snapshot.error})"
    role = snapshot.replication.get("role", "?")
    if role == "slave":
        return "replica " + snapshot.replication.get("master_link_status", "?")
    return role


def _shard_ready(
    node: NodeTarget, shard: Sequence[NodeTarget], access: Access
) -> tuple[bool, dict[str, str]]:
    """Every other member answers and every replica among them is linked."""
    others = [member for member in shard if member.name != node.name]
    seen = {s.name: _role(s) for s in observe_nodes(others, access)}
    return all(role in ("master", "replica up") for role in seen.values()), seen


def hand_over(
    node: NodeTarget, shard: Sequence[NodeTarget], access: Access, timeout_s: float = 60.0
) -> HandoverReport:
    """Make ``node`` safe to take down (see the module docstring); ``shard`` lists every
    planned member of its shard, ``node`` included."""
    deadline = Deadline.after(timeout_s)
    ready, seen = poll(lambda: _shard_ready(node, shard, access), deadline, POLL_INTERVAL_S)
    if not ready:
        raise HandoverError(
            f"{node.name} cannot be taken down: the rest of its shard is not healthy after "
            f"{timeout_s:g}s ({', '.join(f'{k}: {v}' for k, v in seen.items())}). Nothing was "
            "changed; taking it down now could leave its slots without a copy. Fix the "
            "members named and run the deployment again.")
    (mine,) = observe_nodes([node], access)
    report = HandoverReport(node.name, was_master=mine.replication.get("role") == "master")
    if not mine.reachable or not report.was_master:
        return report  # already a replica, or down: not serving slots, nothing to hand over
    my_id = mine.my_id
    candidates = [s for s in observe_nodes([m for m in shard if m.name != node.name], access)
                  if s.replication.get("role") == "slave"
                  and s.replication.get("master_link_status") == "up"
                  and s.myself is not None and s.myself.master_id == my_id]
    if not candidates:
        raise HandoverError(
            f"{node.name} is a live master with no linked replica of its own, so taking it down "
            "would stop its slots (and the cluster: full coverage is required). Nothing was "
            "changed. Fix: check its replicas (`python -m clusterops health`), or add one.")
    successor = candidates[0]
    try:
        done, seen = manual_failover(successor.node, node, access, deadline)
    except ClusterCommandError as exc:
        raise HandoverError(
            f"{successor.name}: CLUSTER FAILOVER (taking over from {node.name}) failed: "
            f"{exc}. {node.name} is still the master; nothing was taken down.") from exc
    if not done:
        raise HandoverError(
            f"{successor.name} did not take over from {node.name} within {timeout_s:g}s "
            f"(last seen: {seen}). Nothing was taken down; run the deployment again.")
    report.new_master = successor.name
    report.seconds = timeout_s - deadline.remaining
    return report
