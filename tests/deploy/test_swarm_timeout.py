"""The swarm strategy's timeout bounds the whole deploy: every wait takes
what is left of it.  The fake engine below makes each call cost time, so a
wait that started its own clock would run past the bound; one lean test
does the same against the real Swarm."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest

from jenkinsctl.config import Health
from jenkinsctl.deploy import ImageRef, _default_target, make_strategy, port_bindings
from jenkinsctl.deploy.swarm import SwarmStrategy
from jenkinsctl.errors import Timeout
from tests.support.clock import FakeClock
from tests.deploy.helpers import DEPLOY_TEST_LABELS as TEST_LABELS
from tests.deploy.helpers import PREFIX

DIGEST = "sha256:" + "ab" * 32
IMAGE = ImageRef("127.0.0.1:5000/team/web", DIGEST)
OLD = "127.0.0.1:5000/team/web@sha256:" + "cd" * 32


class FakeSwarmAPI:
    """A Swarm manager whose update never converges (state ``updating``)
    and whose calls to info cost ``cost`` seconds each."""

    def __init__(self, clock: FakeClock, *, exists: bool, cost: float) -> None:
        self.clock, self.cost, self.exists = clock, cost, exists
        self.looks: list[float] = []
        self.created: dict | None = None

    def service(self) -> dict:
        return {"ID": "svc1", "Version": {"Index": 7},
                "Spec": {"Name": "web", "Mode": {"Replicated": {"Replicas": 1}},
                         "TaskTemplate": {"ContainerSpec": {"Image": OLD}}},
                "UpdateStatus": {"State": "updating", "StartedAt": "2026-01-01T00:00:05Z",
                                 "Message": "update in progress"}}

    def services(self, filters):
        return [self.service()] if self.exists else []

    def inspect_service(self, sid):
        self.looks.append(self.clock())
        return self.service()

    def tasks(self, filters):
        return []

    def _url(self, path, *args):
        return path

    def _post_json(self, url, data=None, params=None, headers=None):
        if url == "/services/create":
            self.created = data
        return data

    def _result(self, res, json=False):
        return {"ID": "svc1"}


class FakeClient:
    def __init__(self, api: FakeSwarmAPI) -> None:
        self.api = api

    def info(self):
        self.api.clock.advance(self.api.cost)    # a slow manager
        return {"Swarm": {"LocalNodeState": "active", "ControlAvailable": True},
                "SystemTime": "2026-01-01T00:00:00Z"}


def strategy(clock: FakeClock, *, exists: bool, timeout: float, cost: float = 0.0, **target):
    t = dataclasses.replace(_default_target("swarm", "web"), timeout=timeout, **target)
    api = FakeSwarmAPI(clock, exists=exists, cost=cost)
    return SwarmStrategy(FakeClient(api), t, labels={}, clock=clock, sleep=clock.sleep, poll=0.5), api


def test_an_update_that_never_converges_ends_at_the_deploys_timeout():
    clock = FakeClock(1000.0)
    s, api = strategy(clock, exists=True, timeout=20, cost=5)
    with pytest.raises(Timeout) as err:
        s.deploy(IMAGE)
    # Two slow info calls (manager check, engine time) came out of the same 20 s.
    assert clock.now == 1020.0 and api.looks[-1] == 1020.0
    e = err.value
    assert "swarm service web: the deploy's timeout of 20s ran out while the update to " \
           f"{IMAGE.pinned} had not converged (update state: updating: update in progress)" in e.message
    assert "--timeout" in e.hint and "deployTimeout" in e.hint and "docker service ps" in e.hint
    assert e.details["timeout"] == 20 and e.exit_code == 10


def test_a_created_service_that_never_runs_ends_at_the_deploys_timeout():
    clock = FakeClock(1000.0)
    s, api = strategy(clock, exists=False, timeout=15, cost=4, ports=("127.0.0.2:8081:8080", "9000:9000/udp"))
    with pytest.raises(Timeout) as err:
        s.deploy(IMAGE)
    assert clock.now == 1015.0
    assert "the deploy's timeout of 15s ran out while waiting for the new service's tasks to run (0 running)" in err.value.message
    # The ports went through the one parser of the port syntax.
    assert api.created["EndpointSpec"]["Ports"] == [
        {"Protocol": "tcp", "TargetPort": 8080, "PublishedPort": 8081, "PublishMode": "host"},
        {"Protocol": "udp", "TargetPort": 9000, "PublishedPort": 9000, "PublishMode": "host"}]


def test_a_rollback_is_bounded_too():
    clock = FakeClock(1000.0)
    s, api = strategy(clock, exists=True, timeout=12, cost=3)
    svc = api.service()
    svc["PreviousSpec"] = {"TaskTemplate": {"ContainerSpec": {"Image": OLD}}}
    api.services = lambda filters: [svc]
    with pytest.raises(Timeout, match="timeout of 12s ran out while the rollback"):
        s.rollback()
    assert clock.now == 1012.0


def test_port_bindings_reads_the_port_syntax_once():
    assert port_bindings(("80:8080", "127.0.0.1:81:8080", "53:53/udp")) == {
        "8080/tcp": [{"HostIp": "", "HostPort": "80"}, {"HostIp": "127.0.0.1", "HostPort": "81"}],
        "53/udp": [{"HostIp": "", "HostPort": "53"}]}


@pytest.mark.engine
def test_real_swarm_a_service_that_cannot_start_fails_at_the_timeout(swarm):
    """A service whose image cannot be pulled never runs: the deploy ends at
    its 3 s, with the task errors, not at some later wait's own bound."""
    from jenkinsctl.config import load_config

    service = f"{PREFIX}{uuid.uuid4().hex[:6]}"
    target = dataclasses.replace(_default_target("swarm", service), timeout=3, health=Health(None, 60, 1))
    s = make_strategy(target, config=load_config(None, env={}), client=swarm, labels=TEST_LABELS)
    # Nothing listens on port 1: the pull fails and Swarm keeps retrying the task.
    missing = ImageRef(f"127.0.0.1:1/{PREFIX}none/app", "sha256:" + "0" * 64)
    t0 = time.monotonic()
    try:
        with pytest.raises(Timeout) as err:
            s.deploy(missing)
        took = time.monotonic() - t0
    finally:
        for svc in swarm.api.services(filters={"name": service}):
            swarm.api.remove_service(svc["ID"])
    assert 3 <= took < 3 + 2.5, took
    assert "the deploy's timeout of 3s ran out" in err.value.message
    assert "--timeout" in err.value.hint
