"""Waiting: one deadline-bounded poll loop with an injected clock and sleep.

Every loop in jenkinsctl that waits for something outside it (a container to
turn healthy, sshd to listen, a node to come online, a service to converge, a
lock to free) has the same shape: look, decide, and either stop or sleep a
little without sleeping past the deadline.  Writing that shape once keeps
the deadline arithmetic in one tested place, and lets tests drive every loop
with a fake clock instead of real seconds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

T = TypeVar("T")

Clock = Callable[[], float]
Sleep = Callable[[float], None]

# The shortest nap between two looks: polling faster than this only loads the
# engine or the controller without answering sooner.
MIN_INTERVAL = 0.02


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """How a wait ended: ``done`` tells a success from a timeout; ``last`` is
    what the last look saw, for the error message that names it."""
    done: bool
    last: T
    elapsed: float
    looks: int


class Deadline:
    """A point in time on an injected clock.  ``None`` seconds never expires."""

    def __init__(self, seconds: float | None, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.seconds = seconds
        self.started = clock()
        self.at = None if seconds is None else self.started + max(0.0, seconds)

    def remaining(self) -> float:
        return float("inf") if self.at is None else max(0.0, self.at - self.clock())

    def expired(self) -> bool:
        return self.at is not None and self.clock() >= self.at

    def elapsed(self) -> float:
        return self.clock() - self.started

    def nap(self, interval: float) -> float:
        """How long to sleep before the next look: ``interval``, cut so the
        last look lands on the deadline rather than after it."""
        return max(MIN_INTERVAL, min(interval, self.remaining()))


def wait_for(look: Callable[[], T], done: Callable[[T], bool], *, timeout: float | None,
             interval: float | Callable[[T], float] = 0.2,
             clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> Outcome[T]:
    """Call ``look`` until ``done(result)`` holds or ``timeout`` seconds pass.

    ``look`` may raise to end the wait early (a container that exited is a
    failure, not something to wait out); the error goes to the caller as is.
    The last look happens at or after the deadline, never only before it, so a
    condition that turns true just in time is seen.  ``interval`` may depend
    on the last result, for loops that look faster while something moves.
    """
    deadline = Deadline(timeout, clock)
    looks = 0
    while True:
        last = look()
        looks += 1
        if done(last):
            return Outcome(True, last, deadline.elapsed(), looks)
        if deadline.expired():
            return Outcome(False, last, deadline.elapsed(), looks)
        step = interval(last) if callable(interval) else interval
        sleep(deadline.nap(step))
