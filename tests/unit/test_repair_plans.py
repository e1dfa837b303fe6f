"""Pure planning of the repair commands: rebalance moves and who serves unserved slots."""

from __future__ import annotations

import pytest

from clusterops.core.errors import UsageError
from clusterops.core.model import HASH_SLOTS, split_slots
from clusterops.repair.fix import plan_cover
from clusterops.reshape.rebalance import even_shares, plan_rebalance
from clusterops.state.open_slots import (
    IMPORTING,
    MIGRATING,
    Finish,
    OpenSlot,
    close_in_place,
    pairs_to_move,
    plan_finish,
)


def owners_of(ranges: dict[str, list[tuple[int, int]]]) -> list[str | None]:
    owners: list[str | None] = [None] * HASH_SLOTS
    for master, spans in ranges.items():
        for first, last in spans:
            owners[first : last + 1] = [master] * (last - first + 1)
    return owners


def three() -> dict[str, list[tuple[int, int]]]:
    return {f"m{i + 1}": [r] for i, r in enumerate(split_slots(3))}


def apply(owners: list[str | None], moves) -> list[str | None]:  # noqa: ANN001
    after = list(owners)
    for move in moves:
        for slot in move.slots:
            assert after[slot] == move.source, f"slot {slot} is not {move.source}'s"
            after[slot] = move.target
    return after


def test_three_to_four_moves_the_minimum_each_giver_one_contiguous_block():
    owners = owners_of(three())
    moves = plan_rebalance(owners, ["m1", "m2", "m3", "m4"])
    assert [(m.first, m.last, m.source, m.target) for m in moves] == [
        (4096, 5460, "m1", "m4"), (9557, 10922, "m2", "m4"), (15019, 16383, "m3", "m4")]
    after = apply(owners, moves)
    assert sorted(after.count(m) for m in ("m1", "m2", "m3", "m4")) == [4096] * 4
    # The minimum: exactly the new master's share moved, nothing between the old masters.
    assert sum(len(m.slots) for m in moves) == 4096


def test_an_even_cluster_moves_nothing_and_uneven_ones_end_within_one_slot():
    assert plan_rebalance(owners_of(three()), ["m1", "m2", "m3"]) == []
    skewed = owners_of({"a": [(0, 9999)], "b": [(10000, 16000)], "c": [(16001, 16383)]})
    for masters in (["a", "b", "c"], ["a", "b", "c", "d", "e"]):
        after = apply(skewed, plan_rebalance(skewed, masters))
        counts = [after.count(m) for m in masters]
        assert max(counts) - min(counts) <= 1 and sum(counts) == HASH_SLOTS, counts


def test_the_remainder_goes_to_the_biggest_holders_so_they_give_less():
    assert even_shares({"a": 10, "b": 5000, "c": 0}) == {"b": 5462, "a": 5461, "c": 5461}


def test_unserved_slots_are_refused_for_rebalance():
    owners = owners_of(three())
    owners[42] = None
    with pytest.raises(UsageError, match="slot 42 is served by nobody.*fix"):
        plan_rebalance(owners, ["m1", "m2", "m3"])


def test_cover_gives_a_run_with_keys_to_their_holder_and_keyless_runs_to_the_smallest():
    uncovered = [*range(100, 200), *range(6000, 6010)]
    held = {120: {"m1": 3}, 150: {"m1": 1}}
    covers, problems = plan_cover(uncovered, held, {"m1": 5361, "m2": 5452, "m3": 5461})
    assert problems == []
    # 100-199 as one piece to m1 (it holds keys there), then m2 is the smallest.
    assert [(c.first, c.last, c.master, c.keys) for c in covers] == [
        (100, 199, "m1", 4), (6000, 6009, "m2", 0)]


def test_cover_leaves_a_slot_with_keys_on_two_masters_alone():
    covers, problems = plan_cover([5, 6, 7], {5: {"m1": 1}, 6: {"m1": 2, "m2": 1}},
                                  {"m1": 1, "m2": 1})
    assert [(c.first, c.last, c.master) for c in covers] == [(5, 5, "m1"), (7, 7, "m1")]
    assert len(problems) == 1 and "slot 6 has keys on several masters" in problems[0]


# --- open slots: the one rule of pulumi up, fix and restore (clusterops.state.open_slots) ---------


def three_owners() -> list[str | None]:
    return owners_of(three())


def test_an_open_slot_goes_where_it_was_going_with_the_owners_keys() -> None:
    opened = [OpenSlot(100, "m1", MIGRATING, "m4"), OpenSlot(100, "m4", IMPORTING, "m1")]
    finishes, problems = plan_finish(opened, three_owners(), ["m1", "m2", "m3", "m4"],
                                     {100: {"m1": 7, "m4": 3}})
    assert problems == []
    assert finishes == [Finish(100, "m1", "m4", 7, ("m1", "m4"))]
    assert pairs_to_move(finishes) == {("m1", "m4"): [100]}


def test_a_slot_only_migrating_goes_to_the_migration_target() -> None:
    finishes, problems = plan_finish([OpenSlot(100, "m1", MIGRATING, "m2")], three_owners(),
                                     ["m1", "m2", "m3"], {})
    assert (finishes, problems) == ([Finish(100, "m1", "m2", 0, ("m1",))], [])


def test_a_slot_open_toward_its_owner_is_only_closed() -> None:
    finishes, problems = plan_finish([OpenSlot(100, "m1", IMPORTING, "m2")], three_owners(),
                                     ["m1", "m2", "m3"], {100: {"m1": 4}})
    assert problems == [] and [f.closes_only for f in finishes] == [True]
    assert pairs_to_move(finishes) == {}
    closed: list[tuple[str, tuple[object, ...]]] = []
    close_in_place(finishes, lambda node, command: closed.append((node, tuple(command))))
    assert closed == [("m1", ("CLUSTER", "SETSLOT", 100, "STABLE"))]


def test_two_importers_are_ambiguous_and_refused() -> None:
    opened = [OpenSlot(100, "m2", IMPORTING, "m1"), OpenSlot(100, "m4", IMPORTING, "m1")]
    finishes, problems = plan_finish(opened, three_owners(), ["m1", "m2", "m3", "m4"], {})
    assert finishes == []
    assert problems == ["slot 100 is open toward m2, m4: not one master among the targets; "
                        "close it by hand"]


def test_keys_on_a_third_master_are_refused_not_moved() -> None:
    opened = [OpenSlot(100, "m4", IMPORTING, "m1")]
    finishes, problems = plan_finish(opened, three_owners(), ["m1", "m2", "m3", "m4"],
                                     {100: {"m1": 5, "m3": 1}})
    assert finishes == []
    assert problems == ["slot 100: keys on m3, which neither owns (m1) nor receives (m4) it; "
                        "left untouched"]


def test_an_importer_that_is_not_a_master_is_refused() -> None:
    finishes, problems = plan_finish([OpenSlot(100, "r1", IMPORTING, "m1")], three_owners(),
                                     ["m1", "m2", "m3"], {})
    assert finishes == [] and "not one master among the targets" in problems[0]
