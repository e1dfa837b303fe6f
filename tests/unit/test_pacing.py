"""The key mover's pace (clusterops/reshape/pacing.py): keys sent never run ahead of the rate by
more than one round, rounds are small, and the mover splits its MIGRATEs into such rounds."""

from __future__ import annotations

import pytest

from clusterops.reshape.migrate import groups_of_keys
from clusterops.reshape.pacing import KeyPacer


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_keys_sent_never_run_ahead_of_the_rate_by_more_than_a_round() -> None:
    time = FakeTime()
    pacer = KeyPacer(1000, clock=time.clock, sleep=time.sleep)
    assert pacer.round_keys == 50
    sent = 0
    for _ in range(40):
        pacer.before_sending(50)
        sent += 50
        elapsed = time.now - 100.0
        assert sent - 1000 * elapsed <= 50 + 1e-6, (sent, elapsed)
    # 2,000 keys at 1,000/s: the last round goes out at 1.95 s.
    assert time.now - 100.0 == pytest.approx(1.95)


def test_a_slow_sender_is_never_made_to_wait() -> None:
    time = FakeTime()
    pacer = KeyPacer(1000, clock=time.clock, sleep=time.sleep)
    for _ in range(5):
        pacer.before_sending(10)
        time.now += 1.0  # the nodes are slower than the pace
    assert time.slept == []


def test_a_pace_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        KeyPacer(0)


def test_migrates_are_grouped_by_keys_and_by_count() -> None:
    assert groups_of_keys([30, 30, 30, 5], 50, None) == [range(0, 1), range(1, 2),
                                                         range(2, 4)]
    # One command larger than a round still goes, alone.
    assert groups_of_keys([200, 10], 50, None) == [range(0, 1), range(1, 2)]
    assert groups_of_keys([1, 1, 1, 1, 1], 50, 2) == [range(0, 2), range(2, 4), range(4, 5)]
    assert groups_of_keys([], 50, None) == []
