"""Spread the hash slots evenly over the current masters, moving as few slots as possible.

:func:`plan_rebalance` is pure: each master's share is 16384 / masters (the remainder goes to
the masters that hold most now, so they give less); a master over its share gives its highest
slots, each giver's slots stay one contiguous block, and the blocks are handed out in order to
the masters under their share. The number of slots moved is the minimum (the sum of the
surpluses). :func:`apply_rebalance` moves them with :class:`clusterops.reshape.migrate.SlotMover`.

Empty masters count (like ``redis-cli --cluster rebalance --cluster-use-empty-masters``): a
master just added receives its share. Open or unserved slots are refused: `fix` first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from clusterops.core.errors import UsageError
from clusterops.core.model import HASH_SLOTS, NodeTarget
from clusterops.node.access import Access
from clusterops.reshape.migrate import MoveStats, SlotMover
from clusterops.reshape.plan import SlotMove, fold_moves, moves_by_pair
from clusterops.reshape.scaling import count_keys
from clusterops.state.live import read_live, wait_settled

# Measured by bench/reshard_bench.py (see README): the sources of one target move at once, and
# a source runs few, small MIGRATEs per round trip so a live client waits behind little work
# (with three sources the target is busy, and a MIGRATE of a whole slot's ~61 keys then stalled
# its source for up to 16 ms).
PARALLEL_SOURCES = True
SLOTS_PER_ROUND = 4
KEYS_PER_MIGRATE = 16
CHUNK_SLOTS = 128  # fewer SETSLOT rounds than 64 (each one a nodes.conf fsync on every master)


def even_shares(counts: Mapping[str, int]) -> dict[str, int]:
    """Master -> slots it should hold; the +1 of the remainder goes to the biggest holders."""
    if not counts:
        raise UsageError("no master to spread the slots over")
    base, extra = divmod(HASH_SLOTS, len(counts))
    order = sorted(counts, key=lambda m: (-counts[m], m))
    return {m: base + (1 if i < extra else 0) for i, m in enumerate(order)}


def plan_rebalance(owners: Sequence[str | None], masters: Sequence[str]) -> list[SlotMove]:
    """Pure: the moves that make every master hold its even share (keys not counted)."""
    owned: dict[str, list[int]] = {m: [] for m in masters}
    for slot, owner in enumerate(owners):
        if owner is None or owner not in owned:
            raise UsageError(f"slot {slot} is served by {owner or 'nobody'}, not one of the "
                             f"masters {', '.join(masters)}: run `clusterops fix` first")
        owned[owner].append(slot)
    shares = even_shares({m: len(s) for m, s in owned.items()})
    pool: list[tuple[int, str]] = []  # (slot, giver), each giver's block ascending
    for master in masters:
        surplus = len(owned[master]) - shares[master]
        if surplus > 0:
            pool += [(slot, master) for slot in owned[master][-surplus:]]
    assignments: list[tuple[int, str, str]] = []  # (slot, giver, taker)
    for master in masters:
        need = max(0, shares[master] - len(owned[master]))
        assignments += [(slot, giver, master) for slot, giver in pool[:need]]
        pool = pool[need:]
    return fold_moves(assignments)


@dataclass
class RebalancePlan:
    shares_before: dict[str, int]
    shares_after: dict[str, int]
    moves: list[SlotMove]

    @property
    def nothing_to_do(self) -> bool:
        return not self.moves

    def lines(self) -> list[str]:
        keys = [m.keys for m in self.moves]
        total = "? keys" if any(k is None for k in keys) else f"{sum(k or 0 for k in keys)} keys"
        lines = [f"masters: {len(self.shares_before)}; slots now: "
                 + ", ".join(f"{m} {n}" for m, n in self.shares_before.items())
                 + "; after: " + ", ".join(f"{m} {n}" for m, n in self.shares_after.items())]
        if not self.moves:
            return [*lines, "already even: nothing to move"]
        lines.append(f"move {sum(len(m.slots) for m in self.moves)} slot(s) in "
                     f"{len(self.moves)} range(s), {total}:")
        return [*lines, *(f"  {m.describe()}" for m in self.moves)]


def preview_rebalance(nodes: Sequence[NodeTarget], access: Access) -> RebalancePlan:
    """Read-only: the plan against the live cluster, keys counted on each source."""
    live = read_live(nodes, access)
    problems = [f"slot {o.slot} {o.state} {o.peer} on {o.node}" for o in live.open_slots()]
    if problems:
        raise UsageError("open slots (an interrupted move): " + "; ".join(problems[:5])
                         + ": run `clusterops fix` first")
    moves = plan_rebalance(live.owners, live.masters)
    counts = live.slot_counts()
    after = dict(counts)
    for move in moves:
        after[move.source] -= len(move.slots)
        after[move.target] += len(move.slots)
    return RebalancePlan(counts, after, count_keys(moves, {n.name: n for n in nodes}, access))


def apply_rebalance(nodes: Sequence[NodeTarget], access: Access, plan: RebalancePlan,
                    timeout_s: float, progress: Callable[[str], None] | None = None,
                    max_keys_per_second: float | None = None) -> MoveStats:
    """Move the planned slots, then wait until every node agrees on the new map.
    ``max_keys_per_second``: pace the move (None: unpaced, clusterops/reshape/pacing.py)."""
    live = wait_settled(nodes, access, timeout_s, "before rebalancing")
    mover = SlotMover(nodes, live.ids, access, chunk=CHUNK_SLOTS, progress=progress,
                      parallel_sources=PARALLEL_SOURCES, slots_per_round=SLOTS_PER_ROUND,
                      keys_per_migrate=KEYS_PER_MIGRATE,
                      max_keys_per_second=max_keys_per_second)
    stats = mover.move(moves_by_pair(plan.moves), live.masters)
    wait_settled(nodes, access, timeout_s, "after rebalancing")
    return stats
