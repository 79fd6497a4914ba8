"""controller.external: agents are registered in an existing controller (the
emulator, in-process) and no controller container is started."""

from __future__ import annotations

import time

import pytest

from jenkinsctl.errors import JenkinsError, Timeout
from jenkinsctl.jenkins_api import MANUAL_KEY_STRATEGY, node_fields
from tests.fakejenkins import FakeJenkins, SilentServer, User
from tests.provision.conftest import EMULATOR_PASSWORD, PASSWORD_ENV


@pytest.fixture
def external(project_factory):
    with FakeJenkins([User("admin", EMULATOR_PASSWORD)], time_scale=0.1) as emu:
        p = project_factory(emulator=False)
        p.external = emu.url
        p.password = EMULATOR_PASSWORD
        p.env[PASSWORD_ENV] = EMULATOR_PASSWORD
        yield p, emu


def test_external_controller_gets_nodes_and_no_controller_container(external):
    project, emu = external
    prov = project.provisioner()
    result = prov.apply(wait_timeout=120)
    assert result["nodes"] == {"agent-1": {"online": True}, "agent-2": {"online": True}}
    assert project.containers("controller") == []
    assert len(project.containers("agent")) == 2
    for node in ("agent-1", "agent-2"):
        fields = node_fields(prov.jenkins().node_config(node))
        assert fields["strategy"] == MANUAL_KEY_STRATEGY and fields["host"] == "127.0.0.1"
    assert emu.security_warnings == []

    time.sleep(0.5)
    emu.clear_requests()
    again = project.provisioner().apply(wait_timeout=60)
    time.sleep(0.5)
    assert again["changed"] == 0 and emu.posts() == []

    status = project.provisioner().status()
    assert status["controller"]["reachable"] and "state" not in status["controller"]
    assert [a["node_state"] for a in status["agents"]] == ["online", "online"]

    project.provisioner().down()
    assert sorted(emu.computers) == [] and emu.credentials == {}
    assert project.containers() == []


def test_external_controller_that_never_answers_fails_within_the_timeout(project_factory):
    with SilentServer() as silent:
        p = project_factory(emulator=False)
        p.external = silent.url
        cfg = p.config(timeout=1, ready_timeout=30)
        for action in ("plan", "apply", "status"):
            start = time.monotonic()
            if action == "status":
                st = p.provisioner(cfg).status()
                assert not st["controller"]["reachable"] and "did not answer" in st["controller"]["error"]
            else:
                with pytest.raises((Timeout, JenkinsError)) as err:
                    getattr(p.provisioner(cfg), action)()
                assert "did not answer" in err.value.message and "within 1s" in err.value.message
            assert time.monotonic() - start < 10, action
        # Nothing was started for a controller that never answered.
        assert p.containers() == []
        assert p.client.networks.list(filters={"label": f"io.jenkinsctl.project={p.name}"}) == []
