"""Slots an interrupted move left open, and the one rule that finishes them.

A slot is open on a node that has it "migrating to" a peer (the owner, mid-move) or "importing
from" a peer (the receiver). `pulumi up` (a reshape picking up where a killed run stopped),
`clusterops fix` and the restore's pre-check all judge open slots here, so they cannot finish
the same interrupted move in two different ways:

- an open slot goes in the direction it was going: to the master importing it, else to the
  master its owner migrates it to; the owner's remaining keys move there (MIGRATE) and the new
  owner is set everywhere (:class:`clusterops.reshape.migrate.SlotMover`, the reshape's own path);
- a slot open toward its own owner, or toward nobody, is only closed (SETSLOT STABLE);
- refused, nothing touched, when that direction is ambiguous (several nodes import it, or the
  receiver is not a master among the targets) or when keys of the slot sit on a node that
  neither owns nor receives it (which copy is right is not ours to guess).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import redis

from clusterops.node.observe import NodeSnapshot

MIGRATING = "migrating to"
IMPORTING = "importing from"


@dataclass(frozen=True)
class OpenSlot:
    """Slot ``slot`` is open on ``node``: ``state`` (MIGRATING / IMPORTING) ``peer``."""

    slot: int
    node: str
    state: str
    peer: str  # a target's name, or the node id when the peer is not among the targets

    def describe(self) -> str:
        return f"{self.slot} ({self.node} {self.state} {self.peer})"


@dataclass(frozen=True)
class Finish:
    """Open slot ``slot``: ``keys`` keys move from ``source`` to ``target``, which then owns it.
    ``source`` == ``target``: only close it where it is open."""

    slot: int
    source: str
    target: str
    keys: int
    open_on: tuple[str, ...]

    @property
    def closes_only(self) -> bool:
        return self.source == self.target

    def describe(self) -> str:
        where = ", ".join(self.open_on)
        if self.closes_only:
            return f"close slot {self.slot} (open on {where}); it stays with {self.target}"
        return (f"finish slot {self.slot} (open on {where}): move {self.keys} key(s) from "
                f"{self.source} to {self.target}, then {self.target} owns it everywhere")


def find_open_slots(snapshots: Sequence[NodeSnapshot], names: Mapping[str, str]
                    ) -> list[OpenSlot]:
    """Every open slot the nodes report, in slot order (``names``: node id -> target name)."""
    found = [OpenSlot(slot, snap.name, state, names.get(peer, peer))
             for snap in snapshots if snap.myself
             for slot, state, peer in snap.myself.open_slots]
    return sorted(found, key=lambda o: (o.slot, o.node))


def count_keys_in_slots(conn: redis.Redis, slots: Sequence[int]) -> dict[int, int]:
    """CLUSTER COUNTKEYSINSLOT for each slot on one node, in one pipeline."""
    if not slots:
        return {}
    pipe = conn.pipeline(transaction=False)
    for slot in slots:
        pipe.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
    return {slot: int(n) for slot, n in zip(slots, pipe.execute(), strict=True)}


def plan_finish(open_slots: Sequence[OpenSlot], owners: Sequence[str | None],
                masters: Sequence[str], held: Mapping[int, Mapping[str, int]]
                ) -> tuple[list[Finish], list[str]]:
    """Pure: where each open slot goes, and the slots refused (see the module docstring).
    ``owners``: slot -> owner name in the majority map; ``held``: slot -> {master: keys}.
    A slot nobody owns is skipped: it is covered first, and the next read sees its owner."""
    by_slot: dict[int, list[OpenSlot]] = defaultdict(list)
    for state in open_slots:
        by_slot[state.slot].append(state)
    finishes: list[Finish] = []
    problems: list[str] = []
    for slot, states in sorted(by_slot.items()):
        owner = owners[slot]
        if owner is None:
            continue
        finish, problem = _finish_one(slot, owner, states, set(masters), held.get(slot, {}))
        if finish:
            finishes.append(finish)
        if problem:
            problems.append(problem)
    return finishes, problems


def _finish_one(slot: int, owner: str, states: Sequence[OpenSlot], masters: set[str],
                keyed: Mapping[str, int]) -> tuple[Finish | None, str | None]:
    importers = {s.node for s in states if s.state == IMPORTING and s.node != owner}
    migrating_to = {s.peer for s in states
                    if s.state == MIGRATING and s.node == owner and s.peer != owner}
    candidates = importers or migrating_to
    if len(candidates) > 1 or (candidates and not candidates <= masters):
        return None, (f"slot {slot} is open toward {', '.join(sorted(candidates))}: not one "
                      "master among the targets; close it by hand")
    target = next(iter(candidates)) if candidates else owner
    strays = sorted(set(keyed) - {owner, target})
    if strays:
        return None, (f"slot {slot}: keys on {', '.join(strays)}, which neither owns ({owner}) "
                      f"nor receives ({target}) it; left untouched")
    keys = keyed.get(owner, 0) if target != owner else 0
    return Finish(slot, owner, target, keys, tuple(sorted({s.node for s in states}))), None


def pairs_to_move(finishes: Sequence[Finish]) -> dict[tuple[str, str], list[int]]:
    """(source, target) -> slots, for the finishes that move keys."""
    pairs: dict[tuple[str, str], list[int]] = defaultdict(list)
    for finish in finishes:
        if not finish.closes_only:
            pairs[(finish.source, finish.target)].append(finish.slot)
    return dict(pairs)


def close_in_place(finishes: Sequence[Finish],
                   run_on: Callable[[str, Sequence[object]], object]) -> None:
    """SETSLOT STABLE where a slot is open toward its own owner (``run_on(node, command)``)."""
    for finish in finishes:
        if finish.closes_only:
            for name in finish.open_on:
                run_on(name, ("CLUSTER", "SETSLOT", finish.slot, "STABLE"))
