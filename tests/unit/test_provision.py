"""provision without an engine: names refused before anything is made, the
lock, the hash, and the text renderings of plan/apply/status."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from jenkinsctl.config import load_config
from jenkinsctl.errors import ConfigError, Timeout
from jenkinsctl.names import network_name, node_marker
from jenkinsctl.provision import Provisioner, _hash, agents, render_changes, render_status, validate


def config(tmp_path, **changes):
    cfg = load_config(None, env={"JENKINSCTL_STATE_DIR": str(tmp_path / "state")})
    return dataclasses.replace(cfg, **changes)


def test_names_come_from_project_and_groups(tmp_path):
    cfg = config(tmp_path, project="demo")
    assert [(a.node, a.container) for a in agents(cfg)] == [("agent-1", "demo-agent-1"), ("agent-2", "demo-agent-2")]
    assert network_name(cfg) == "demo-net"
    assert node_marker(cfg) == "jenkinsctl agent"


def test_too_long_container_names_are_refused_before_anything(tmp_path):
    cfg = config(tmp_path, project="p" * 40)
    long_group = dataclasses.replace(cfg.agents[0], name="g" * 30)
    cfg = dataclasses.replace(cfg, agents=(long_group,))
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert "63" in err.value.message


def test_two_groups_making_the_same_node_are_refused(tmp_path):
    cfg = config(tmp_path)
    a = dataclasses.replace(cfg.agents[0], name="x", count=2)
    b = dataclasses.replace(cfg.agents[0], name="x-1", count=0)
    validate(dataclasses.replace(cfg, agents=(a, b)))  # x-1 makes no node: fine
    c = dataclasses.replace(cfg.agents[0], name="x", count=1)
    with pytest.raises(ConfigError):
        validate(dataclasses.replace(cfg, agents=(a, c)))


def test_provisioner_refuses_bad_names_without_touching_the_engine(tmp_path):
    cfg = config(tmp_path)
    bad = dataclasses.replace(cfg.agents[0], name="a" * 70)

    def no_engine(host):
        raise AssertionError("the engine must not be contacted")

    with pytest.raises(ConfigError):
        Provisioner(dataclasses.replace(cfg, agents=(bad,)), docker_factory=no_engine)


def test_lock_serializes_runs_and_times_out(tmp_path):
    cfg = config(tmp_path)
    p1, p2 = Provisioner(cfg, docker_factory=lambda h: None), Provisioner(cfg, docker_factory=lambda h: None)
    order = []
    entered = threading.Event()

    def first():
        with p1.lock():
            entered.set()
            order.append("first-in")
            time.sleep(0.5)
            order.append("first-out")

    t = threading.Thread(target=first)
    t.start()
    entered.wait(5)
    with pytest.raises(Timeout):
        with p2.lock(timeout=0.1):
            pass
    with p2.lock(timeout=5):
        order.append("second-in")
    t.join()
    assert order == ["first-in", "first-out", "second-in"]
    assert (tmp_path / "state" / "provision.lock").stat().st_mode & 0o077 == 0


def test_hash_is_stable_and_order_independent():
    assert _hash({"a": 1, "b": [1, 2]}) == _hash({"b": [1, 2], "a": 1})
    assert _hash({"a": 1}) != _hash({"a": 2})


def test_render_changes_and_status():
    text = render_changes([{"kind": "container", "name": "p-agent-1", "action": "create", "detail": ""},
                           {"kind": "node", "name": "agent-1", "action": "unchanged", "detail": ""}])
    assert "+ create" in text and "1 create, 1 unchanged" in text
    assert render_changes([]) == "nothing to do"
    status = {"project": "p", "controller": {"url": "http://127.0.0.1:8080", "container": "p-controller",
                                             "state": "running", "reachable": True},
              "agents": [{"node": "agent-1", "group": "agent", "container": "p-agent-1", "state": "running",
                          "node_state": "offline", "offline_reason": "Host key verification failed",
                          "labels": ["docker"], "executors": 2}]}
    out = render_status(status)
    assert "NODE STATE" in out and "Host key verification failed" in out and "p-controller: running" in out


def test_the_casc_and_apply_give_a_node_the_same_host_description_and_credential(tmp_path):
    """A controller jenkinsctl runs re-applies its CasC at every restart:
    what apply registers must be what the CasC says, or each restart would
    look like a change."""
    from jenkinsctl import casc
    from jenkinsctl.names import credential_id, node_description

    cfg = config(tmp_path, project="demo")
    library = casc.LibrarySource("https://git.example.com/a/jenkinsctl.git", "v1", False, None)
    doc = casc.casc_document(cfg, {a.node: "ssh-ed25519 AAAA" for a in agents(cfg)}, library=library)
    for a, node in zip(agents(cfg), doc["jenkins"]["nodes"]):
        perm = node["permanent"]
        assert perm["name"] == a.node
        assert perm["nodeDescription"] == node_description(cfg, a.group)
        assert perm["launcher"]["ssh"]["host"] == a.container
        assert perm["launcher"]["ssh"]["credentialsId"] == credential_id(cfg)
