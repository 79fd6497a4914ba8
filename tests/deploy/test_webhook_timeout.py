"""The webhook strategy's timeout bounds the whole trigger: attempts and the
back-off between them.  A fake clock drives the waits; the attempts go to a
real closed port on 127.0.0.1 (connection refused, so they are retried)."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from jenkinsctl.deploy import ImageRef, _default_target
from jenkinsctl.deploy.webhook import WebhookStrategy
from jenkinsctl.errors import DeployError, Timeout
from tests.support.clock import FakeClock

IMAGE = ImageRef("127.0.0.1:5000/team/app", "sha256:" + "5e" * 32)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hook(timeout: float, retries: int, clock: FakeClock, url: str | None = None) -> WebhookStrategy:
    url = url or f"http://127.0.0.1:{closed_port()}/hooks/redeploy"
    t = dataclasses.replace(_default_target("webhook", url), timeout=timeout, retries=retries)
    return WebhookStrategy(t, environ={}, sleep=clock.sleep, clock=clock)


def test_retries_stop_when_the_next_wait_would_pass_the_timeout():
    clock = FakeClock(1000.0)
    with pytest.raises(Timeout) as err:
        hook(5, 6, clock).deploy(IMAGE)
    # Waits of 1 s and 2 s fit in 5 s; the third (4 s) would end past it.
    assert clock.naps == [1.0, 2.0] and clock.now - 1000 < 5
    e = err.value
    assert "the deploy's timeout of 5s ran out while attempt 4 of 6 was still to be sent (after a 4s wait)" in e.message
    assert "attempt 3: ConnectionRefusedError" in e.message
    assert "--timeout" in e.hint and e.details["attempts"] == 3


def test_within_the_timeout_the_attempts_run_out_first():
    clock = FakeClock(1000.0)
    with pytest.raises(DeployError, match="failed after 3 attempts") as err:
        hook(120, 3, clock).deploy(IMAGE)
    assert not isinstance(err.value, Timeout) and clock.naps == [1.0, 2.0]


def test_each_attempt_gets_only_what_is_left_of_the_timeout():
    clock = FakeClock(1000.0)
    s = hook(50, 3, clock)
    given = []

    def post(body, headers, timeout):
        given.append(timeout)
        clock.advance(timeout)          # the receiver never answers before the socket timeout
        return None, "TimeoutError: timed out", False

    s._post = post
    with pytest.raises(Timeout):
        s.deploy(IMAGE)
    assert given == [30.0, 19.0]        # at most 30 s each; the second one has 50 - 30 - 1 left
    assert clock.now == 1050.0


def test_cli_timeout_bounds_a_receiver_that_never_answers(tmp_path):
    """End to end with --timeout: a receiver that takes the connection and
    never answers.  Each attempt used to get the whole timeout again, and
    three attempts took three times as long."""
    import time

    from tests.deploy.helpers import run_cli, write_config

    # The same CLI run against a closed port fails at once: what it takes is
    # Python's start and imports on this (shared, busy) machine.
    closed = write_config(tmp_path / "c.yaml", {"hook": {"strategy": "webhook", "retries": 1,
                                                         "target": f"http://127.0.0.1:{closed_port()}/h"}})
    t0 = time.monotonic()
    base = run_cli("--config", closed, "deploy", "--image", str(IMAGE.pinned), "--to", "hook", "--timeout", "2.5")
    start_up = time.monotonic() - t0
    assert base.returncode == 6, base.stderr
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)                      # the kernel accepts; nothing ever reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hooks/redeploy"
        cfg = write_config(tmp_path / "j.yaml", {"hook": {"strategy": "webhook", "target": url, "retries": 3,
                                                          "idempotent": True}})
        t0 = time.monotonic()
        proc = run_cli("--config", cfg, "deploy", "--image", str(IMAGE.pinned), "--to", "hook", "--timeout", "2.5")
        took = time.monotonic() - t0
    assert proc.returncode == 10, proc.stderr
    assert "the deploy's timeout of 2.5s ran out" in proc.stderr and "attempt 1: TimeoutError" in proc.stderr
    assert "hint:" in proc.stderr and "--timeout" in proc.stderr
    # Three attempts of 2.5 s and the back-off between them took 10.5 s.
    assert 2.5 <= took < start_up + 2.5 + 2.0, (took, start_up)
