"""Admin commands on one node: a command whose refusal names the node, and a manual failover.

Both write (they change a node's state); everything that only reads a node is
:mod:`clusterops.node.observe`.
"""

from __future__ import annotations

import redis

from clusterops.core.errors import ClusterCommandError
from clusterops.core.model import NodeTarget
from clusterops.core.poll import Deadline, poll
from clusterops.node.access import Access
from clusterops.node.observe import observe_nodes


def run_admin(node: NodeTarget, access: Access, *command: object) -> object:
    """One admin command; a rejection becomes a ClusterCommandError naming node and command."""
    try:
        with access.client(node) as conn:
            return conn.execute_command(*command)
    except redis.RedisError as exc:
        shown = " ".join(str(c) for c in command)
        raise ClusterCommandError(f"{node.name} ({node.address}): {shown} failed: "
                                  f"{access.redact(str(exc))}") from exc


# Redis aborts a manual failover that has not completed within CLUSTER_MF_TIMEOUT (5 s,
# cluster.h), silently for the caller: on a busy host the master may not pause its clients in
# time. The command is sent again when the roles have not flipped after this long.
MANUAL_FAILOVER_RETRY_S = 6.0
MANUAL_FAILOVER_POLL_S = 0.1


def manual_failover(successor: NodeTarget, old: NodeTarget, access: Access,
                    deadline: Deadline) -> tuple[bool, str]:
    """CLUSTER FAILOVER (no FORCE: the master hands over only once the replica has every write)
    on ``successor``, sent again after each aborted attempt, until it serves the slots and
    ``old`` replicates it, or ``deadline`` passes; returns (done, the two nodes as last seen)."""

    def flipped() -> tuple[bool, str]:
        new_snap, old_snap = observe_nodes([successor, old], access)
        old_me = old_snap.myself
        done = bool(new_snap.serves_slots and old_me and old_me.is_replica
                    and old_me.master_id == new_snap.my_id)
        return done, f"{new_snap.describe()} | {old_snap.describe()}"

    while True:
        try:
            run_admin(successor, access, "CLUSTER", "FAILOVER")
        except ClusterCommandError as exc:
            # Already a master: the previous attempt completed after our last look.
            if "to a replica" not in str(exc):
                raise
        attempt = Deadline(min(deadline.at, Deadline.after(MANUAL_FAILOVER_RETRY_S).at))
        done, seen = poll(flipped, attempt, MANUAL_FAILOVER_POLL_S)
        if done or deadline.expired:
            return done, seen
