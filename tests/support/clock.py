"""A fake monotonic clock whose sleep only moves time: waiting loops run
under it without real seconds passing, and their naps can be checked.
``advance`` makes a call cost time, to see when a loop gives up."""
from __future__ import annotations


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.naps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"slept a negative {seconds}"
        self.naps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds
