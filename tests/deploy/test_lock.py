"""The deploy lock's wait, driven by a fake clock: it gives up at its bound
(the wait's own, or what is left of the whole deploy's) and never later."""

from __future__ import annotations

import pytest

from jenkinsctl.config import Health
from jenkinsctl.deploy import _default_target, deploy_deadline
from jenkinsctl.deploy.lock import LOCK_OWNER, LOCK_UNTIL, engine_lock
from jenkinsctl.errors import Timeout
from tests.support.clock import FakeClock


class _Conflict(Exception):
    status_code = 409


class HeldLockAPI:
    """An engine where another live deploy, on another host, holds the lock."""

    def __init__(self, clock: FakeClock, cost: float = 0.0) -> None:
        self.clock, self.cost, self.creates = clock, cost, []

    def create_container_from_config(self, config, name=None, platform=None):
        import docker.errors

        self.creates.append(self.clock())
        self.clock.advance(self.cost)
        raise docker.errors.APIError("409 Conflict", response=type("R", (), {"status_code": 409})())

    def inspect_container(self, name):
        return {"Id": "held", "Config": {"Labels": {LOCK_OWNER: "elsewhere:42", LOCK_UNTIL: str(2 ** 40)}}}


class Client:
    def __init__(self, api) -> None:
        self.api = api


def test_the_lock_wait_ends_at_its_timeout():
    clock = FakeClock(1000.0)
    api = HeldLockAPI(clock)
    with pytest.raises(Timeout) as err:
        with engine_lock(Client(api), "app.lock", "img", {}, clock, clock.sleep, timeout=10):
            pytest.fail("took a lock another deploy holds")
    assert "holds the lock app.lock (owner elsewhere:42) for more than 10s" in err.value.message
    assert api.creates[-1] == 1010.0          # the last try was at the bound, none after it
    assert clock.now == 1010.0


def test_the_lock_wait_takes_only_what_is_left_of_the_deploy():
    clock = FakeClock(1000.0)
    target = _default_target("container", "app")
    deadline = deploy_deadline(target, clock)          # 120 s
    clock.advance(100)                                 # a slow pull used most of it
    api = HeldLockAPI(clock, cost=0.3)                 # and the engine answers slowly
    with pytest.raises(Timeout) as err:
        with engine_lock(Client(api), "app.lock", "img", {}, clock, clock.sleep, timeout=120, deadline=deadline):
            pytest.fail("took a lock another deploy holds")
    assert clock.now - deadline.started <= 120 + 0.3     # at most one engine call past the deadline
    assert clock.now - deadline.started >= 120
    e = err.value
    assert "the deploy's timeout of 120s ran out while waiting for another deploy to free the lock app.lock " \
           "(held by elsewhere:42)" in e.message
    assert "--timeout" in e.hint and "deployTimeout" in e.hint and "docker rm app.lock" in e.hint
    assert e.details["pending"].startswith("waiting for another deploy")


def test_a_deadline_already_spent_tries_once():
    clock = FakeClock(1000.0)
    import dataclasses

    target = dataclasses.replace(_default_target("container", "app"), timeout=5, health=Health(None, 60, 1))
    deadline = deploy_deadline(target, clock)
    clock.advance(6)
    api = HeldLockAPI(clock)
    with pytest.raises(Timeout):
        with engine_lock(Client(api), "app.lock", "img", {}, clock, clock.sleep, deadline=deadline):
            pass
    assert len(api.creates) == 1 and clock.naps == []
