"""Pure: the slot split a change of the masters should reach, moving as few slots as it can.

A fresh deployment splits the slots the way `redis-cli --cluster create` does (contiguous,
index-ordered: ``model.split_slots``). Re-splitting that way on every change of ``masters``
moves far more than needed (3 -> 4 masters: 8192 slots, half the keyspace, because each old
shard hands its tail to the next). Here instead, from the split the cluster has now:

- every master's target is an even share (the sizes of a fresh split of N masters);
- a removed master's slots, and any slot nobody holds, are given away first; a master above its
  target gives its highest slots, only as many as the masters below target still need;
- masters below target are filled in order, lowest slots first.

So 3 -> 4 moves 4096 slots (a quarter: 1365 + 1366 + 1365 to the new master), 4 -> 3 moves
only the removed master's slots (back to the fresh split of 3), and a change that keeps the
masters moves nothing. The result
depends only on the current split and the new list of masters (both in the provider's inputs),
so a preview and the update that follows compute the same plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from clusterops.core.model import HASH_SLOTS, expand_ranges, merge_ranges, split_slots


def even_targets(masters: Sequence[str]) -> dict[str, int]:
    """Each master's share: the sizes of a fresh split (so 4 -> 3 lands back on it)."""
    return {name: last - first + 1
            for name, (first, last) in zip(masters, split_slots(len(masters)), strict=True)}


def least_moving_split(current: Mapping[str, Sequence[Sequence[int]]],
                       masters: Sequence[str]) -> dict[str, list[list[int]]]:
    """Each of ``masters``' slot ranges, from ``current`` (master -> ranges it holds now)."""
    if not masters:
        raise ValueError("at least one master is needed to hold slots")
    targets = even_targets(masters)
    owned = {name: sorted(expand_ranges(current.get(name, ()))) for name in masters}
    held = {slot for slots in owned.values() for slot in slots}
    # Slots of masters that go, and slots nobody holds: given away first.
    pool = sorted(set(range(HASH_SLOTS)) - held)
    needed = sum(max(0, targets[name] - len(owned[name])) for name in masters)
    for name in masters:  # then the surplus of masters above target, highest slots first
        if len(pool) >= needed:
            break
        surplus = len(owned[name]) - targets[name]
        if surplus > 0:
            give = min(surplus, needed - len(pool))
            pool += owned[name][-give:]
            owned[name] = owned[name][:-give]
    pool.sort()
    for name in masters:
        take = max(0, targets[name] - len(owned[name]))
        owned[name] += pool[:take]
        pool = pool[take:]
    if pool:  # masters above target kept theirs: what is left goes to the last master
        owned[masters[-1]] += pool
    return {name: merge_ranges(slots) for name, slots in owned.items()}
