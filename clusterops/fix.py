"""Repair what an interrupted move or a hand edit left: open slots and slots nobody serves.

Like ``redis-cli --cluster fix``, but no key is ever dropped (no DEL, FLUSH or RESET; keys only
move by MIGRATE, which deletes on the source after the target stored them):

- an **unserved** slot is given (CLUSTER ADDSLOTSRANGE) to the master that holds keys in it,
  else to the master with the fewest slots; a slot whose keys sit on two masters is left
  alone and reported (which copy is right is not ours to guess);
- an **open** slot (importing/migrating) is finished in the direction it was going: to the
  node importing it, else to the node its owner migrates it to. The owner's remaining keys
  move there and the new owner is set everywhere (:class:`clusterops.migrate.SlotMover`, the
  same path as a reshape). A slot open toward its own owner, or toward nobody, is just closed
  (SETSLOT STABLE) where it is open. Keys of an open slot held by a node that neither owns
  nor receives it are reported, not touched.

Unserved slots go first: a cluster with one is down, and every MIGRATE is refused
(CLUSTERDOWN). Running it again after a full run finds nothing to do.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from clusterops.live import (
    LiveCluster,
    OpenState,
    holders,
    read_live,
    run_admin,
    wait_settled,
)
from clusterops.migrate import SlotMover
from clusterops.model import NodeTarget, merge_ranges


@dataclass(frozen=True)
class Cover:
    """Slots ``first..last``, served by nobody, go to ``master``."""

    first: int
    last: int
    master: str
    keys: int  # keys the master already holds in them

    def describe(self) -> str:
        span = f"{self.first}-{self.last}" if self.first != self.last else str(self.first)
        why = f"holds {self.keys} key(s) there" if self.keys else "fewest slots"
        return f"assign unserved slots {span} to {self.master} ({why})"


@dataclass(frozen=True)
class Finish:
    """Open slot ``slot``: ``keys`` keys move from ``source`` to ``target``, which then owns it.
    ``source`` == ``target``: only close it where it is open."""

    slot: int
    source: str | None
    target: str
    keys: int
    open_on: tuple[str, ...]

    def describe(self) -> str:
        where = ", ".join(self.open_on)
        if self.source == self.target or self.source is None:
            return f"close slot {self.slot} (open on {where}); it stays with {self.target}"
        return (f"finish slot {self.slot} (open on {where}): move {self.keys} key(s) from "
                f"{self.source} to {self.target}, then {self.target} owns it everywhere")


@dataclass
class FixPlan:
    cover: list[Cover] = field(default_factory=list)
    finish: list[Finish] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # left alone: a person must decide

    @property
    def nothing_to_do(self) -> bool:
        return not (self.cover or self.finish)

    def lines(self) -> list[str]:
        if self.nothing_to_do and not self.problems:
            return ["nothing to fix: every slot is served and none is open"]
        lines = [c.describe() for c in self.cover] + [f.describe() for f in self.finish]
        return lines + [f"NOT FIXED: {p}" for p in self.problems]


def plan_cover(uncovered: Sequence[int], held: dict[int, dict[str, int]],
               slot_counts: dict[str, int]) -> tuple[list[Cover], list[str]]:
    """Pure: who gets each unserved slot. A contiguous run of unserved slots stays in one
    piece where it can: all of it goes to the one master holding keys in it; a run without
    keys goes to the master with the fewest slots at that point (counting what this plan
    already gave, so runs spread out); in a run with keys on several masters, each keyless
    slot goes with the keyed slot before it."""
    counts = dict(slot_counts)
    covers: list[Cover] = []
    problems: list[str] = []
    for first, last in merge_ranges(uncovered):
        run = range(first, last + 1)
        keyed = {slot: held.get(slot, {}) for slot in run if held.get(slot)}
        clashes = [slot for slot, where in keyed.items() if len(where) > 1]
        for slot in clashes:
            problems.append(f"unserved slot {slot} has keys on several masters "
                            f"({', '.join(f'{m}: {n}' for m, n in sorted(keyed[slot].items()))})"
                            "; decide which copy is right, then run fix again")
        if not keyed:
            current = min(counts, key=lambda m: (counts[m], m))
        else:
            current = next(iter(next(iter(keyed.values()))))
        segment: Cover | None = None
        for slot in run:
            if slot in clashes:
                segment = None
                continue
            where = keyed.get(slot, {})
            current = next(iter(where)) if where else current
            keys = where.get(current, 0)
            if segment and segment.master == current and segment.last == slot - 1:
                segment = covers[-1] = Cover(segment.first, slot, current, segment.keys + keys)
            else:
                segment = Cover(slot, slot, current, keys)
                covers.append(segment)
            counts[current] += 1
    return covers, problems


def plan_finish(live: LiveCluster, held: dict[int, dict[str, int]]) -> tuple[list[Finish],
                                                                              list[str]]:
    """Pure given the key counts: where each open slot goes (see the module docstring)."""
    by_slot: dict[int, list[OpenState]] = defaultdict(list)
    for state in live.open_states():
        by_slot[state.slot].append(state)
    finishes: list[Finish] = []
    problems: list[str] = []
    masters = set(live.masters)
    for slot, states in sorted(by_slot.items()):
        owner = live.owners[slot]
        if owner is None:
            continue  # covered first; the next read sees it with an owner
        importers = {s.node for s in states if s.state == "importing from" and s.node != owner}
        migrating_to = {s.peer for s in states if s.state == "migrating to" and s.node == owner
                        and s.peer != owner}
        candidates = importers or migrating_to
        if len(candidates) > 1 or (candidates and not candidates <= masters):
            problems.append(f"slot {slot} is open toward {', '.join(sorted(candidates))}: not "
                            "one master among the targets; close it by hand")
            continue
        target = next(iter(candidates)) if candidates else owner
        keyed = held.get(slot, {})
        strays = sorted(set(keyed) - {owner, target})
        if strays:
            problems.append(f"slot {slot}: keys on {', '.join(strays)}, which neither owns "
                            f"({owner}) nor receives ({target}) it; left untouched")
            continue
        open_on = tuple(sorted({s.node for s in states}))
        finishes.append(Finish(slot, owner, target, keyed.get(owner, 0) if target != owner
                               else 0, open_on))
    return finishes, problems


def preview_fix(nodes: Sequence[NodeTarget], password: str | None) -> FixPlan:
    """Read-only: what fix would do now."""
    live = read_live(nodes, password)
    return _plan(live, password)


def _plan(live: LiveCluster, password: str | None) -> FixPlan:
    uncovered = live.uncovered()
    open_slots = sorted({o.slot for o in live.open_states()})
    held = holders(live, password, sorted(set(uncovered) | set(open_slots)))
    plan = FixPlan()
    plan.cover, problems = plan_cover(uncovered, held, live.slot_counts())
    plan.finish, more = plan_finish(live, held)
    plan.problems = problems + more
    return plan


def apply_fix(nodes: Sequence[NodeTarget], password: str | None, timeout_s: float,
              progress: Callable[[str], None] | None = None) -> FixPlan:
    """Cover, then finish; return the plan of a fresh read afterwards (empty when done)."""
    say = progress or (lambda _line: None)
    by_name = {n.name: n for n in nodes}
    live = read_live(nodes, password)
    plan = _plan(live, password)
    if plan.cover:
        for cover in plan.cover:
            say(cover.describe())
            run_admin(by_name[cover.master], password, "CLUSTER", "ADDSLOTSRANGE", cover.first,
                      cover.last)
        mover = SlotMover(nodes, live.ids, password, progress=say)
        for master in sorted({c.master for c in plan.cover}):
            # Nodes that still map a slot to an old owner only give way to a higher epoch.
            mover.claim(master, live.masters)
        live = wait_settled(nodes, password, timeout_s, "after assigning unserved slots")
        plan = _plan(live, password)

    if plan.finish:
        live = wait_settled(nodes, password, timeout_s, "before finishing open slots",
                            agree=False)
        plan = _plan(live, password)
    pairs: dict[tuple[str, str], list[int]] = defaultdict(list)
    for finish in plan.finish:
        say(finish.describe())
        if finish.source == finish.target or finish.source is None:
            for name in finish.open_on:
                run_admin(by_name[name], password, "CLUSTER", "SETSLOT", finish.slot, "STABLE")
        else:
            pairs[(finish.source, finish.target)].append(finish.slot)
    if pairs:
        SlotMover(nodes, live.ids, password, progress=say).move(dict(pairs), live.masters)
    if plan.finish:
        live = wait_settled(nodes, password, timeout_s, "after finishing open slots")
    return _plan(live, password)
