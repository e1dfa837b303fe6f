"""One read of the live cluster for the repair commands (fix, failback, rebalance).

The commands act on what the nodes say now, not on a plan: who is a master, who owns each slot
in the map most nodes agree on, which slots are open. Every target must answer: a command that
moves slots or roles cannot judge a node it cannot ask, so an unreachable target, a refused
password or a node that is not a cluster member is a usage error (exit 2), raised before
anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clusterops.core.errors import ClusterCommandError, TargetsError
from clusterops.core.model import NodeTarget
from clusterops.core.poll import Deadline, poll
from clusterops.node.access import Access
from clusterops.node.observe import NodeSnapshot, observe_nodes, refuse_on_auth
from clusterops.state import checks
from clusterops.state.open_slots import OpenSlot, find_open_slots
from clusterops.state.open_slots import count_keys_in_slots as count_keys_on

POLL_INTERVAL_S = 0.05


@dataclass
class LiveCluster:
    nodes: tuple[NodeTarget, ...]
    snapshots: list[NodeSnapshot]
    ids: dict[str, str]  # name -> node id
    owners: list[str | None]  # slot -> owner name in the majority map (None: nobody)

    @property
    def names(self) -> dict[str, str]:
        return {node_id: name for name, node_id in self.ids.items()}

    def snapshot(self, name: str) -> NodeSnapshot:
        return next(s for s in self.snapshots if s.name == name)

    @property
    def masters(self) -> list[str]:
        """Targets that are masters now (with or without slots), in target order."""
        return [s.name for s in self.snapshots if s.myself and s.myself.is_master]

    def slot_counts(self) -> dict[str, int]:
        counts = {name: 0 for name in self.masters}
        for owner in self.owners:
            if owner in counts:
                counts[owner] += 1
        return counts

    def open_slots(self) -> list[OpenSlot]:
        return find_open_slots(self.snapshots, self.names)

    def uncovered(self) -> list[int]:
        return [slot for slot, owner in enumerate(self.owners) if owner is None]

    def agreed(self) -> bool:
        """Every node holds the same slot map as the majority."""
        return not checks.majority_view(self.snapshots).dissenters


def read_live(nodes: Sequence[NodeTarget], access: Access,
              timeout_s: float = 2.0) -> LiveCluster:
    """Observe every target; raise a usage error naming the node when one cannot be used."""
    snapshots = observe_nodes(nodes, access, timeout_s)
    refuse_on_auth(snapshots)
    down = [s for s in snapshots if not s.reachable]
    if down:
        raise TargetsError(
            "; ".join(f"{s.name} ({s.address}): {s.error}" for s in down)
            + ". Every target must answer before slots or roles are changed; nothing was "
            "changed (check the --node addresses or the stack outputs).")
    strangers = [s for s in snapshots if not s.cluster_enabled or not s.myself]
    if strangers:
        raise TargetsError(", ".join(f"{s.name} ({s.address})" for s in strangers)
                           + ": not a cluster node (cluster-enabled is off)")
    ids = {s.name: s.my_id for s in snapshots}
    names = {node_id: name for name, node_id in ids.items()}
    view = checks.majority_view(snapshots)
    owner_ids = view.owners
    foreign = sorted({o for o in owner_ids if o and o not in names})
    if foreign:
        known = {e.node_id: e.address for e in view.reference}
        raise TargetsError(
            "slots are served by node(s) that are not among the targets: "
            + ", ".join(f"{o} at {known.get(o, '?')}" for o in foreign)
            + "; give every master as a target (--node NAME=HOST:PORT or the stack outputs)")
    owners = [names[o] if o else None for o in owner_ids]
    return LiveCluster(tuple(nodes), snapshots, ids, owners)


def count_keys_in_slots(node: NodeTarget, access: Access,
                        slots: Sequence[int]) -> dict[int, int]:
    """COUNTKEYSINSLOT for ``slots`` on one node, in one pipeline."""
    if not slots:
        return {}
    with access.client(node, socket_timeout_s=10.0) as conn:
        return count_keys_on(conn, slots)


def holders(nodes: Sequence[NodeTarget], masters: Sequence[str], access: Access,
            slots: Sequence[int]) -> dict[int, dict[str, int]]:
    """Slot -> {master name: keys it holds in that slot} (only masters with keys)."""
    found: dict[int, dict[str, int]] = {slot: {} for slot in slots}
    by_name = {n.name: n for n in nodes}
    for name in masters:
        for slot, count in count_keys_in_slots(by_name[name], access, slots).items():
            if count:
                found[slot][name] = count
    return found


def wait_settled(nodes: Sequence[NodeTarget], access: Access, timeout_s: float,
                 what: str, agree: bool = True) -> LiveCluster:
    """Poll until every node answers, says cluster_state:ok and (``agree``) holds the
    majority's slot map; raise naming what was last seen. A master that just joined stays
    cluster_state:fail for about node-timeout and refuses a MIGRATE's RESTORE meanwhile."""

    def settled() -> tuple[bool, object]:
        try:
            live = read_live(nodes, access)
        except TargetsError as exc:
            return False, str(exc)
        lagging = [f"{s.name}: cluster_state {s.state}" for s in live.snapshots
                   if s.state != "ok"]
        if agree and not live.agreed():
            lagging.append("slot maps differ: "
                           + ", ".join(checks.majority_view(live.snapshots).dissenters))
        return not lagging, live if not lagging else "; ".join(lagging)

    done, seen = poll(settled, Deadline.after(timeout_s), POLL_INTERVAL_S)
    if not done:
        raise ClusterCommandError(f"{what}: the cluster did not settle within {timeout_s:g}s; "
                                  f"last seen: {seen}")
    assert isinstance(seen, LiveCluster)
    return seen
