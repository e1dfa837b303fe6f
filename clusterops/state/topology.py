"""Read the live topology of the planned cluster (for the provider's ``read`` and operators).

Read-only. Roles swapped by a failover are reported as they are (``live_roles``) and judged
healthy: slot ranges are reported per planned shard, so a refresh after a failover shows the
same ``slot_ranges`` and ``node_ids`` as before, and only ``live_roles`` changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from clusterops.core.model import NodeTarget
from clusterops.node.access import Access
from clusterops.node.observe import observe_nodes
from clusterops.state.verify import assess


@dataclass(frozen=True)
class LiveTopology:
    node_ids: dict[str, str]  # planned name -> node id (from the node, else from its peers)
    slot_ranges: dict[str, list[list[int]]]  # planned master -> ranges its shard serves now
    live_roles: dict[str, str]  # planned name -> "master" | "replica" as the node says now
    live_master_of: dict[str, str]  # replica name -> name (or id) of the master it follows
    cluster_state: str  # "ok" when healthy per verify_cluster, else "fail"
    problems: list[str] = field(default_factory=list)


def read_live_topology(
    nodes: Sequence[NodeTarget], access: Access, socket_timeout_s: float = 2.0
) -> LiveTopology:
    """Observe every planned node once and report what the cluster looks like now."""
    assessment = assess(nodes, observe_nodes(nodes, access, socket_timeout_s))
    return LiveTopology(
        node_ids=dict(assessment.node_ids),
        slot_ranges=dict(assessment.shard_slots),
        live_roles=dict(assessment.live_roles),
        live_master_of=dict(assessment.live_master_of),
        cluster_state="ok" if assessment.healthy else "fail",
        problems=list(assessment.problems),
    )
