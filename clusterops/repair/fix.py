"""Repair what an interrupted move or a hand edit left: open slots and slots nobody serves.

Like ``redis-cli --cluster fix``, but no key is ever dropped (no DEL, FLUSH or RESET; keys only
move by MIGRATE, which deletes on the source after the target stored them):

- an **unserved** slot is given (CLUSTER ADDSLOTSRANGE) to the master that holds keys in it,
  else to the master with the fewest slots; a slot whose keys sit on two masters is left
  alone and reported (which copy is right is not ours to guess);
- an **open** slot (importing/migrating) is finished by the one rule `pulumi up` and the
  restore use too (:mod:`clusterops.state.open_slots`): in the direction it was going, refused
  when that direction is ambiguous or keys sit on a third node.

Unserved slots go first: a cluster with one is down, and every MIGRATE is refused
(CLUSTERDOWN). Running it again after a full run finds nothing to do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from clusterops.core.model import NodeTarget, merge_ranges
from clusterops.node.access import Access
from clusterops.node.admin import run_admin
from clusterops.reshape.migrate import SlotMover
from clusterops.state.live import LiveCluster, holders, read_live, wait_settled
from clusterops.state.open_slots import Finish, close_in_place, pairs_to_move, plan_finish


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


def preview_fix(nodes: Sequence[NodeTarget], access: Access) -> FixPlan:
    """Read-only: what fix would do now."""
    live = read_live(nodes, access)
    return _plan(live, access)


def _plan(live: LiveCluster, access: Access) -> FixPlan:
    uncovered = live.uncovered()
    open_slots = live.open_slots()
    held = holders(live.nodes, live.masters, access,
                   sorted(set(uncovered) | {o.slot for o in open_slots}))
    plan = FixPlan()
    plan.cover, problems = plan_cover(uncovered, held, live.slot_counts())
    plan.finish, more = plan_finish(open_slots, live.owners, live.masters, held)
    plan.problems = problems + more
    return plan


def apply_fix(nodes: Sequence[NodeTarget], access: Access, timeout_s: float,
              progress: Callable[[str], None] | None = None,
              max_keys_per_second: float | None = None) -> FixPlan:
    """Cover, then finish; return the plan of a fresh read afterwards (empty when done).
    ``max_keys_per_second``: pace the keys moved to finish open slots (None: unpaced)."""
    say = progress or (lambda _line: None)
    by_name = {n.name: n for n in nodes}
    live = read_live(nodes, access)
    plan = _plan(live, access)
    if plan.cover:
        for cover in plan.cover:
            say(cover.describe())
            run_admin(by_name[cover.master], access, "CLUSTER", "ADDSLOTSRANGE", cover.first,
                      cover.last)
        mover = SlotMover(nodes, live.ids, access, progress=say)
        for master in sorted({c.master for c in plan.cover}):
            # Nodes that still map a slot to an old owner only give way to a higher epoch.
            mover.claim(master, live.masters)
        live = wait_settled(nodes, access, timeout_s, "after assigning unserved slots")
        plan = _plan(live, access)

    if plan.finish:
        live = wait_settled(nodes, access, timeout_s, "before finishing open slots",
                            agree=False)
        plan = _plan(live, access)
    for finish in plan.finish:
        say(finish.describe())
    close_in_place(plan.finish, lambda name, command: run_admin(by_name[name], access, *command))
    if pairs := pairs_to_move(plan.finish):
        SlotMover(nodes, live.ids, access, progress=say,
                  max_keys_per_second=max_keys_per_second).move(pairs, live.masters)
    if plan.finish:
        live = wait_settled(nodes, access, timeout_s, "after finishing open slots")
    return _plan(live, access)
