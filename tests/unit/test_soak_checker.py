"""The chaos soak's checker (tests/support/soak/checker.py) on hand-made histories: each rule
fires on the history that breaks it and stays quiet on the one that does not."""

from __future__ import annotations

from tests.support.soak.checker import FinalReads, check, serving_windows, unavailable_windows
from tests.support.soak.history import FaultRecord, Op

NODE_TIMEOUT_S = 1.0


def write(key: str, value: int, start: float, outcome: str, slot: int = 0,
          workload: str = "set") -> Op:
    return Op(workload, "write", key, value, slot, start, start + 0.01, outcome)


def read(key: str, value: int, start: float, outcome: str = "ok") -> Op:
    return Op("register", "read", key, value, 0, start, start + 0.01, outcome)


def verdict_for(ops, set_values=None, registers=None, faults=()):
    return check(ops, FinalReads(set_values or {}, registers or {}), list(faults),
                 NODE_TIMEOUT_S)


def test_an_acknowledged_element_missing_at_the_end_is_lost_and_an_unacknowledged_one_is_not():
    ops = [write("a", 1, 0.0, "acked"), write("b", 2, 0.1, "unacked"),
           write("c", 3, 0.2, "fail")]
    quiet = verdict_for(ops, {"a": 1, "b": None, "c": 3})
    assert quiet.counts["acked_lost"] == 0
    assert quiet.counts["unacked_lost"] == 1 and quiet.counts["failed_appeared"] == 1
    assert quiet.problems() == []
    lost = verdict_for(ops, {"a": None, "b": 2, "c": None})
    assert lost.counts["acked_lost"] == 1 and lost.examples["acked_lost"] == ["a"]
    assert "1 acked lost" in lost.problems()[0]


def test_a_register_holding_less_than_its_last_acknowledged_version_lost_a_write():
    ops = [write("r", 1, 0.0, "acked", workload="register"),
           write("r", 2, 0.1, "acked", workload="register"),
           write("r", 3, 0.2, "fail", workload="register")]
    assert verdict_for(ops, registers={"r": 2}).counts["acked_lost"] == 0
    appeared = verdict_for(ops, registers={"r": 3})
    assert appeared.counts["acked_lost"] == 0
    assert appeared.counts["register_failed_appeared"] == 1
    assert verdict_for(ops, registers={"r": 1}).counts["acked_lost"] == 1
    assert verdict_for(ops, registers={"r": 9}).counts["phantom_reads"] == 1


def test_reads_older_than_an_acknowledged_version_are_stale_and_unwritten_values_phantom():
    writes = [write("r", 1, 0.0, "acked", workload="register"),
              write("r", 2, 1.0, "acked", workload="register")]
    # 1 read while version 2 was in flight is fine; 1 read after 2 was acknowledged is stale.
    fresh = verdict_for([*writes, read("r", 1, 1.005)], registers={"r": 2})
    assert fresh.counts["stale_reads"] == 0
    stale = verdict_for([*writes, read("r", 1, 2.0)], registers={"r": 2})
    assert stale.counts["stale_reads"] == 1 and stale.problems() == []
    phantom = verdict_for([*writes, read("r", 3, 2.0)], registers={"r": 2})
    assert phantom.counts["phantom_reads"] == 1 and phantom.problems()


def test_unavailable_windows_run_from_the_first_failure_to_the_next_success_per_chunk():
    ops = [write("a", 1, 0.0, "acked", slot=10), write("b", 2, 1.0, "fail", slot=11),
           write("c", 3, 2.0, "fail", slot=12), write("d", 4, 3.0, "acked", slot=13),
           write("e", 5, 1.5, "acked", slot=5000)]  # another chunk: does not close it
    [window] = unavailable_windows(ops)
    assert (window.chunk, window.start, round(window.end, 2), window.failures) == (0, 1.0, 3.01, 2)


def test_a_window_is_charged_to_the_fault_it_overlaps_and_judged_against_its_goal():
    ops = [write("a", 1, 0.0, "acked"), write("b", 2, 10.0, "fail"),
           write("c", 3, 12.5, "acked")]
    kill = FaultRecord("kill_master", ("m1",), 9.5, 11.0, healed=14.0)
    table = verdict_for(ops, {"a": 1, "c": 3}, faults=[kill]).faults
    assert table["kill_master"]["longest_window_s"] == 2.51
    assert table["kill_master"]["within_goal"]  # 2.51 <= node-timeout + 2
    late = verdict_for([*ops[:2], write("c", 3, 14.0, "acked")], {"a": 1, "c": 3},
                       faults=[kill])
    assert not late.faults["kill_master"]["within_goal"]
    assert "an unavailable window of 4.01 s, over 3.0 s" in late.problems()[0]
    assert late.problems(window_allowance=2.0) == []  # the short e2e soak's ceiling: 6 s
    # A master cut off with its replica: no reachable copy during the cut, then 2 x timeout.
    cut = FaultRecord("partition_shard", ("m1", "r1"), 9.5, 13.0, healed=15.0)
    table = verdict_for([*ops[:2], write("c", 3, 14.0, "acked")], {"a": 1, "c": 3},
                        faults=[cut]).faults
    assert table["partition_shard"]["goal_s"] == 7.5 and table["partition_shard"]["within_goal"]


def test_failures_outside_every_fault_and_faults_that_never_healed_are_problems():
    ops = [write("a", 1, 0.0, "acked"), write("b", 2, 1.0, "fail"), write("c", 3, 4.0, "acked")]
    stray = verdict_for(ops, {"a": 1, "c": 3})
    assert not stray.faults["no fault"]["within_goal"]
    assert stray.faults["no fault"]["longest_window_s"] == 3.01
    never = FaultRecord("pause_replica", ("r1",), 20.0, 22.0, healed=None)
    verdict = verdict_for(ops[:1], {"a": 1}, faults=[never])
    assert verdict.faults["pause_replica"]["unhealed"] == 1
    assert "never healed" in verdict.problems()[0]


def test_with_the_nodes_samples_the_goal_is_judged_on_them_and_the_clients_reported_beside():
    ops = [write("a", 1, 0.0, "acked"), write("b", 2, 10.0, "fail"),
           write("c", 3, 14.0, "acked")]  # a client saw 4 s
    kill = FaultRecord("kill_master", ("m1",), 9.5, 11.0, healed=15.0)
    samples = [(9.0, True), (9.6, False), (10.0, False), (12.0, False), (12.2, True)]
    # Each change halfway between the samples around it: 9.3 to 12.1.
    assert [(w.start, w.end) for w in serving_windows(samples)] == [(9.3, 12.1)]
    row = check(ops, FinalReads({"a": 1, "c": 3}, {}), [kill], NODE_TIMEOUT_S,
                serving=samples).faults["kill_master"]
    assert (row["longest_window_s"], row["client_window_s"]) == (2.8, 4.01)
    assert row["within_goal"]
    late = check(ops, FinalReads({"a": 1, "c": 3}, {}), [kill], NODE_TIMEOUT_S,
                 serving=[(9.0, True), (9.6, False), (13.0, False), (13.2, True)]
                 ).faults["kill_master"]
    assert not late["within_goal"]
