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


def _wait_http(url: str, timeout: float = 30) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_external_controller_in_its_own_network_reaches_agents_on_the_advertised_address(
        project_factory, docker_client, controller_image):
    """The controller runs in a container on its own bridge network (its own
    network namespace): 127.0.0.1 there is not this host.  apply registers
    the agents at this host's address on the route to the controller, and
    publishes their sshd there."""
    import uuid

    from jenkinsctl.provision import advertise_address

    p = project_factory(emulator=False)
    own = {"io.jenkinsctl.project": p.name}
    net = docker_client.networks.create(f"{p.name}-ctl", driver="bridge", labels=own)
    pw = "ext-" + uuid.uuid4().hex[:10]
    ctl = docker_client.containers.run(controller_image, ["--user", f"admin:{pw}", "--time-scale", "0.01"],
                                       name=f"{p.name}-extctl", network=net.name, labels=own, detach=True)
    ctl.reload()
    ip = ctl.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
    gateway = ctl.attrs["NetworkSettings"]["Networks"][net.name]["Gateway"]
    p.external, p.password = f"http://{ip}:8080/", pw
    p.env[PASSWORD_ENV] = pw
    _wait_http(p.external)
    cfg = p.config(agents=[{"name": "agent", "count": 1}])
    # The default: this host's side of the bridge the controller is on.
    assert advertise_address(cfg.controller) == gateway
    prov = p.provisioner(cfg)
    result = prov.apply(wait_timeout=120)
    assert result["nodes"] == {"agent-1": {"online": True}}
    fields = node_fields(prov.jenkins().node_config("agent-1"))
    agent = p.client.containers.get(f"{p.name}-agent-1")
    published = agent.attrs["NetworkSettings"]["Ports"]["22/tcp"][0]
    assert fields["host"] == gateway == published["HostIp"]
    assert fields["port"] == published["HostPort"]
    # Without the advertise address the same controller could not reach the
    # agent: 127.0.0.1 is its own loopback.
    assert advertise_address(dataclasses_replace(cfg.controller, external="http://127.0.0.1:8080")) == "127.0.0.1"


def test_agent_address_is_taken_as_given():
    from jenkinsctl.config import load_config
    from jenkinsctl.provision import advertise_address

    cfg = load_config(None, env={})
    c = dataclasses_replace(cfg.controller, external="http://jenkins.example:8080", agent_address="10.9.8.7")
    assert advertise_address(c) == "10.9.8.7"
    c = dataclasses_replace(cfg.controller, external="http://jenkins.example:8080")
    assert advertise_address(c, resolve=lambda h: "192.0.2.5", route=lambda ip, port: f"via {ip}:{port}") \
        == "via 192.0.2.5:8080"
    assert advertise_address(c, resolve=lambda h: "::1") == "127.0.0.1"


def dataclasses_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)
