"""The stack strategy's timeout bounds the whole deploy: the docker CLI
calls get what is left of it, and so does every wait after them.  A fake
runner stands in for a ``docker stack deploy`` that hangs; a fake engine for
a service that never converges."""

from __future__ import annotations

import dataclasses
import pathlib
import subprocess

import pytest

from jenkinsctl.deploy import ImageRef, _default_target
from jenkinsctl.deploy.stack import StackStrategy
from jenkinsctl.errors import Timeout
from tests.support.clock import FakeClock

DIGEST = "sha256:" + "ab" * 32
IMAGE = ImageRef("127.0.0.1:5000/team/web", DIGEST)
OLD = "127.0.0.1:5000/team/web@sha256:" + "cd" * 32


class FakeStackAPI:
    """A Swarm manager with service app_web, whose update stays ``updating``."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.looks: list[float] = []
        self.index = 7

    def info(self):
        return {"Swarm": {"LocalNodeState": "active", "ControlAvailable": True}}

    def inspect_service(self, name):
        self.looks.append(self.clock())
        us = {"State": "updating", "StartedAt": f"t{self.index}"} if self.index > 7 else {}
        return {"ID": "s1", "Version": {"Index": self.index}, "UpdateStatus": us,
                "Spec": {"Name": name, "Mode": {"Replicated": {"Replicas": 1}},
                         "TaskTemplate": {"ContainerSpec": {"Image": OLD}}}}

    def tasks(self, filters):
        return []

    def services(self, filters):
        return []


class FakeClient:
    def __init__(self, api) -> None:
        self.api = api


def strategy(tmp_path: pathlib.Path, clock: FakeClock, runner, timeout: float):
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: a}\n")
    api = FakeStackAPI(clock)
    t = dataclasses.replace(_default_target("stack", "app"), timeout=timeout)
    s = StackStrategy(FakeClient(api), t, cwd=str(tmp_path), runner=runner, docker_cli="docker",
                      clock=clock, sleep=clock.sleep, environ={})
    s._engine_host = lambda: None
    return s, api


def test_a_hanging_stack_deploy_is_stopped_at_the_deploys_timeout(tmp_path):
    clock = FakeClock(1000.0)
    given = []

    def runner(argv, **kw):
        given.append(kw["timeout"])
        clock.advance(kw["timeout"])            # hangs until it is stopped
        raise subprocess.TimeoutExpired(argv, kw["timeout"])

    s, _ = strategy(tmp_path, clock, runner, timeout=10)
    with pytest.raises(Timeout) as err:
        s.deploy(IMAGE)
    assert given == [10] and clock.now == 1010.0
    e = err.value
    assert "stack app: the deploy's timeout of 10s ran out while docker stack deploy app had not finished" in e.message
    assert "--timeout" in e.hint and "docker stack ps app" in e.hint


def test_the_wait_after_a_slow_stack_deploy_gets_only_what_is_left(tmp_path):
    clock = FakeClock(1000.0)

    def runner(argv, **kw):
        clock.advance(25)                       # a slow but successful docker stack deploy
        s.api.index = 8                         # Swarm started the update
        return subprocess.CompletedProcess(argv, 0, "Updating service app_web", "")

    s, api = strategy(tmp_path, clock, runner, timeout=40)
    with pytest.raises(Timeout) as err:
        s.deploy(IMAGE)
    assert clock.now == 1040.0 and api.looks[-1] == 1040.0
    assert sum(clock.naps) == 15.0
    e = err.value
    assert "the deploy's timeout of 40s ran out while app_web had not converged on " \
           f"{IMAGE.pinned} (update state 'updating')" in e.message
    assert "--timeout" in e.hint and e.details["service"] == "app_web"


def test_a_rollback_to_a_version_shares_the_rollbacks_deadline(tmp_path):
    clock = FakeClock(1000.0)

    def runner(argv, **kw):
        s.api.index = 8
        return subprocess.CompletedProcess(argv, 0, "", "")

    s, api = strategy(tmp_path, clock, runner, timeout=30)
    slow = api.inspect_service

    def inspect(name):                          # the first look (before the deploy) is slow
        if not api.looks:
            clock.advance(20)
        return slow(name)

    api.inspect_service = inspect
    with pytest.raises(Timeout, match="timeout of 30s ran out"):
        s.rollback(DIGEST)
    assert clock.now == 1030.0


def test_swarms_own_rollback_is_bounded_from_the_rollbacks_start(tmp_path):
    clock = FakeClock(1000.0)
    calls = []

    def runner(argv, **kw):
        calls.append((argv, kw["timeout"]))
        clock.advance(3)                        # docker service rollback --detach
        return subprocess.CompletedProcess(argv, 0, "", "")

    s, api = strategy(tmp_path, clock, runner, timeout=10)
    looked = api.inspect_service

    def inspect(name):
        svc = looked(name)
        svc["PreviousSpec"] = {"TaskTemplate": {"ContainerSpec": {"Image": OLD}}}
        return svc

    api.inspect_service = inspect
    with pytest.raises(Timeout) as err:
        s.rollback()
    assert calls == [(["docker", "service", "rollback", "--detach", "app_web"], 10.0)]
    assert clock.now == 1010.0 and api.looks[-1] == 1010.0
    assert "stack app: the deploy's timeout of 10s ran out while app_web was still 'updating'" in err.value.message
    assert "--timeout" in err.value.hint
