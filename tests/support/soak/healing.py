""""Healed by itself": what the soak waits for after each fault, without touching the cluster.

Healed means every node answers and says cluster_state:ok, all nodes hold the same slot map,
every slot has an owner, no slot is left migrating or importing, every master that owns slots
has a replica whose link is up, and no node still flags a peer as failing. The nemesis only
undoes its own fault (restart, SIGCONT, reconnect); failover, rejoin and resync are Redis'.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from clusterops.cli.targets import targets_from_outputs
from clusterops.core.errors import TargetsError
from clusterops.core.poll import Deadline, poll
from clusterops.node.access import Access
from clusterops.node.targets import Targets
from clusterops.state.live import read_live

POLL_INTERVAL_S = 0.25


def targets_and_access(outputs: Mapping[str, Any]) -> tuple[Targets, Access]:
    targets = targets_from_outputs(outputs)
    return targets, Access(targets.password)


def unhealed(targets: Targets, access: Access) -> list[str]:
    """What still keeps the cluster from being healed (empty: healed)."""
    try:
        live = read_live(targets.nodes, access)
    except TargetsError as exc:
        return [str(exc)[:300]]
    found = [f"{s.name}: cluster_state {s.state}" for s in live.snapshots if s.state != "ok"]
    if not live.agreed():
        found.append("the nodes hold different slot maps")
    if live.uncovered():
        found.append(f"{len(live.uncovered())} slots have no owner")
    found += [slot.describe() for slot in live.open_slots()[:3]]
    owners = {owner for owner in live.owners if owner}
    for snapshot in live.snapshots:
        replication = snapshot.replication
        if snapshot.name in owners and int(replication.get("connected_slaves", "0")) < 1:
            found.append(f"{snapshot.name} owns slots and has no connected replica")
        if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
            found.append(f"{snapshot.name}: link to its master is "
                         f"{replication.get('master_link_status')}")
        flagged = [e.address for e in snapshot.entries
                   if {"fail", "fail?"} & e.flags or e.link_state != "connected"]
        if flagged:
            found.append(f"{snapshot.name} sees {flagged} failing or disconnected")
    return found


def wait_healed(targets: Targets, access: Access, timeout_s: float) -> tuple[float | None, str]:
    """Poll until healed: (the time it was first seen healed, '') or (None, what was seen)."""

    def probe() -> tuple[bool, str]:
        found = unhealed(targets, access)
        return not found, "; ".join(found)

    done, seen = poll(probe, Deadline.after(timeout_s), POLL_INTERVAL_S)
    return (time.monotonic(), "") if done else (None, seen)
