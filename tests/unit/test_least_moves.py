"""The split a change of the masters reaches (clusterops/reshape/least_moves.py): the fewest slots
moved, every slot held exactly once, and the same answer for the same inputs (a preview and
its update agree). Through `pulumi up` on Docker: tests/e2e/test_scaling_docker.py."""

from __future__ import annotations

import random

from clusterops.core.model import HASH_SLOTS, expand_ranges, split_slots
from clusterops.reshape.least_moves import least_moving_split
from clusterops.tasks.reconcile import least_moving_nodes


def fresh(count: int) -> dict[str, list[list[int]]]:
    return {f"m{i + 1}": [list(r)] for i, r in enumerate(split_slots(count))}


def moved(before: dict[str, list[list[int]]], after: dict[str, list[list[int]]]) -> int:
    return sum(len(expand_ranges(after[m]) - expand_ranges(before.get(m, []))) for m in after)


def names(count: int) -> list[str]:
    return [f"m{i + 1}" for i in range(count)]


def held_once(split: dict[str, list[list[int]]]) -> bool:
    counts = [slot for ranges in split.values() for slot in expand_ranges(ranges)]
    return sorted(counts) == list(range(HASH_SLOTS))


def test_three_to_four_moves_a_quarter_not_half_and_four_to_three_lands_on_the_fresh_split():
    four = least_moving_split(fresh(3), names(4))
    assert moved(fresh(3), four) == 4096  # a fresh split of 4 would move 8192
    assert moved(fresh(3), fresh(4)) == 8192
    assert four["m4"] == [[4096, 5460], [9557, 10922], [15019, 16383]]
    back = least_moving_split(four, names(3))
    assert moved(four, back) == 4096  # only the removed master's slots
    assert back == fresh(3)


def test_the_same_masters_move_nothing_whatever_the_split():
    four = least_moving_split(fresh(3), names(4))
    assert least_moving_split(four, names(4)) == four


def test_any_sequence_of_changes_holds_every_slot_once_and_moves_only_what_it_must():
    rng = random.Random(20261207)
    split = fresh(3)
    for _ in range(40):
        count = rng.randint(1, 9)
        after = least_moving_split(split, names(count))
        assert held_once(after)
        assert least_moving_split(split, names(count)) == after  # deterministic
        # Never more than what a fresh split would move, nor more than leaving masters held
        # plus what new masters need.
        gone = sum(len(expand_ranges(r)) for m, r in split.items() if m not in after)
        needed = sum(max(0, 16384 // count - len(expand_ranges(split.get(m, []))))
                     for m in after)
        assert moved(split, after) <= max(gone, needed) + count
        split = after


def test_the_providers_take_the_deployed_split_for_the_new_masters():
    def node(name: str, role: str, slots: list[list[int]]) -> dict[str, object]:
        return {"name": name, "role": role, "slots": slots, "master": None}

    old = [node(m, "master", r) for m, r in fresh(3).items()] + [node("r1", "replica", [])]
    new = [node(m, "master", r) for m, r in fresh(4).items()] + [node("r1", "replica", [])]
    kept = least_moving_nodes(old, new)
    assert {n["name"]: n["slots"] for n in kept if n["role"] == "master"} == \
        least_moving_split(fresh(3), names(4))
    assert kept[-1] == new[-1]
    assert least_moving_nodes([], new) == new  # a new stack: the fresh split
    # The engine's state holds numbers as floats.
    floats = [{**n, "slots": [[float(a), float(b)] for a, b in n["slots"]]} for n in old]
    assert least_moving_nodes(floats, new) == kept
