"""A fake clock for the deadline tests: ``sleep`` moves time on at once, and
engine calls can be made to cost time, so a test sees exactly when a
strategy looks and when it gives up, in no real seconds."""

from __future__ import annotations


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"slept a negative {seconds}"
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds
