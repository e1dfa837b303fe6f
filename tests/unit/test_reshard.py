"""Pure reshape planning: which slot ranges move from which master to which."""

from __future__ import annotations

from clusterops.core.model import HASH_SLOTS, NodeTarget, split_slots
from clusterops.reshape.plan import SlotMove, move_waves, planned_moves, planned_owner, slot_moves


def plan(masters: int, replicas_per_master: int = 1) -> list[NodeTarget]:
    ranges = split_slots(masters)
    nodes = [NodeTarget(f"m{i + 1}", "h", 7000 + i, "h", 7000 + i, role="master",
                        slots=(ranges[i],)) for i in range(masters)]
    for k in range(masters * replicas_per_master):
        nodes.append(NodeTarget(f"r{k + 1}", "h", 8000 + k, "h", 8000 + k, role="replica",
                                master=f"m{k % masters + 1}"))
    return nodes


def describe(moves) -> list[tuple[int, int, str, str]]:
    return [(m.first, m.last, m.source, m.target) for m in moves]


def test_three_to_four_masters_moves_each_range_to_its_planned_owner():
    assert describe(planned_moves(plan(3), plan(4))) == [
        (4096, 5460, "m1", "m2"),
        (8192, 10922, "m2", "m3"),
        (12288, 16383, "m3", "m4"),
    ]


def test_four_to_three_is_the_exact_reverse():
    back = describe(planned_moves(plan(4), plan(3)))
    assert back == [(4096, 5460, "m2", "m1"), (8192, 10922, "m3", "m2"),
                    (12288, 16383, "m4", "m3")]


def test_every_slot_that_changes_owner_moves_exactly_once_and_no_other():
    for before, after in ((3, 4), (4, 3), (3, 5), (5, 3), (3, 7)):
        moves = planned_moves(plan(before), plan(after))
        moved = [s for m in moves for s in m.slots]
        assert len(moved) == len(set(moved))
        old, new = planned_owner(plan(before)), planned_owner(plan(after))
        assert set(moved) == {s for s in range(HASH_SLOTS) if old[s] != new[s]}
        for m in moves:
            assert all(old[s] == m.source and new[s] == m.target for s in m.slots)


def test_replica_count_change_moves_no_slot():
    assert planned_moves(plan(3, 1), plan(3, 2)) == []


def test_a_slot_served_by_its_shards_promoted_replica_stays_put():
    # After a failover r1 serves m1's slots: r1 is in m1's shard, so nothing moves.
    owners = ["r1"] * HASH_SLOTS
    members = {"m1": {"m1", "r1"}}
    assert slot_moves(owners, ["m1"] * HASH_SLOTS, members, {"m1": "r1"}) == []


def test_moves_go_to_the_shards_live_master_and_unserved_slots_are_not_moves():
    owners: list[str | None] = ["m1"] * 10 + [None] * 5 + ["m2"] * (HASH_SLOTS - 15)
    planned = ["m3"] * HASH_SLOTS
    moves = slot_moves(owners, planned, {"m3": {"m3", "r3"}}, {"m3": "r3"})
    assert describe(moves) == [(0, 9, "m1", "r3"), (15, HASH_SLOTS - 1, "m2", "r3")]


def test_every_node_receives_before_it_gives_so_no_staying_master_is_emptied():
    # 5 -> 3: master-3 gives all its slots to master-2 and receives master-4's and -5's.
    five = [f"m{i}" for i in range(1, 6)]
    old = {slot: five[i] for i, (a, b) in enumerate(split_slots(5)) for slot in range(a, b + 1)}
    new = {slot: five[i] for i, (a, b) in enumerate(split_slots(3)) for slot in range(a, b + 1)}
    moves = slot_moves([old[s] for s in range(HASH_SLOTS)], [new[s] for s in range(HASH_SLOTS)],
                       {m: {m} for m in five[:3]}, {m: m for m in five[:3]})
    waves = move_waves(moves)
    assert sorted(describe(m for wave in waves for m in wave)) == sorted(describe(moves))
    wave_of = {id(m): k for k, wave in enumerate(waves) for m in wave}
    for into in moves:
        for out in moves:
            if out.source == into.target:
                assert wave_of[id(into)] < wave_of[id(out)], (into, out)
    assert {m.source for m in waves[0]} == {"m4", "m5"}


def test_a_cycle_of_moves_still_runs_every_move_once():
    cycle = [SlotMove(0, 9, "a", "b"), SlotMove(10, 19, "b", "a"), SlotMove(20, 29, "c", "a")]
    waves = move_waves(cycle)
    assert sorted(describe(m for wave in waves for m in wave)) == sorted(describe(cycle))
    assert waves[0] == [SlotMove(20, 29, "c", "a")]
