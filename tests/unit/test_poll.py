"""The one poll loop, driven by a fake clock: no real seconds pass."""
from __future__ import annotations

import pytest

from jenkinsctl.poll import Deadline, wait_for
from tests.support.clock import FakeClock


def test_returns_as_soon_as_done_without_sleeping():
    clock = FakeClock()
    out = wait_for(lambda: "up", lambda s: s == "up", timeout=5, clock=clock, sleep=clock.sleep)
    assert (out.done, out.last, out.looks, clock.naps) == (True, "up", 1, [])


def test_times_out_with_the_last_look_and_never_sleeps_past_the_deadline():
    clock = FakeClock()
    seen = iter(range(1000))
    out = wait_for(lambda: next(seen), lambda n: False, timeout=1.0, interval=0.3,
                   clock=clock, sleep=clock.sleep)
    assert not out.done
    # looks at 0, 0.3, 0.6, 0.9, then one cut nap of 0.1 lands on the deadline
    assert clock.naps == pytest.approx([0.3, 0.3, 0.3, 0.1])
    assert out.last == 4 and out.looks == 5
    assert out.elapsed == pytest.approx(1.0)


def test_a_condition_that_turns_true_at_the_deadline_is_seen():
    clock = FakeClock()
    out = wait_for(lambda: clock.now >= 102.0, bool, timeout=2.0, interval=0.7,
                   clock=clock, sleep=clock.sleep)
    assert out.done and out.elapsed == pytest.approx(2.0)


def test_interval_may_follow_the_last_result():
    clock = FakeClock()
    states = iter(["starting", "starting", "running", "running", "healthy"])
    out = wait_for(lambda: next(states), lambda s: s == "healthy", timeout=60,
                   interval=lambda s: 1.0 if s == "starting" else 0.2, clock=clock, sleep=clock.sleep)
    assert out.done and clock.naps == pytest.approx([1.0, 1.0, 0.2, 0.2])


def test_a_look_that_raises_ends_the_wait():
    clock = FakeClock()

    def look():
        raise RuntimeError("container exited")

    with pytest.raises(RuntimeError, match="exited"):
        wait_for(look, bool, timeout=10, clock=clock, sleep=clock.sleep)
    assert clock.naps == []


def test_no_timeout_waits_until_done():
    clock = FakeClock()
    n = iter(range(10_000))
    out = wait_for(lambda: next(n), lambda v: v == 500, timeout=None, interval=1.0,
                   clock=clock, sleep=clock.sleep)
    assert out.done and out.looks == 501


def test_deadline_nap_has_a_floor_and_a_cut():
    clock = FakeClock()
    d = Deadline(0.5, clock)
    assert d.nap(0.001) == pytest.approx(0.02)
    assert d.nap(10) == pytest.approx(0.5)
    clock.now += 0.5
    assert d.expired() and d.remaining() == 0.0
    assert not Deadline(None, clock).expired()
