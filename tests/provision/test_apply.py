"""apply / plan / status / down with the emulator as a container on the
project network and real agent containers."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from jenkinsctl.errors import ProvisionError
from jenkinsctl.jenkins_api import MANUAL_KEY_STRATEGY, JenkinsAPI, node_fields


def api_for(project) -> JenkinsAPI:
    return JenkinsAPI(project.url, "admin", "admin", timeout=10)


def test_apply_registers_pinned_agents_and_second_apply_changes_nothing(project):
    prov = project.provisioner()
    plan = prov.plan()
    assert {c.action for c in plan if c.kind in ("container", "node")} == {"create"}

    first = prov.apply(wait_timeout=120)
    assert first["nodes"] == {"agent-1": {"online": True}, "agent-2": {"online": True}}
    names = sorted(c.name for c in project.containers())
    assert names == sorted([f"{project.name}-controller", f"{project.name}-agent-1", f"{project.name}-agent-2"])

    # Each node pins its own agent's host key; none is non-verifying.
    api = api_for(project)
    for node in ("agent-1", "agent-2"):
        fields = node_fields(api.node_config(node))
        assert fields["strategy"] == MANUAL_KEY_STRATEGY
        assert f"{fields['keyAlgorithm']} {fields['key']}" == prov.keys.host_key(node).host_key_entry
        assert fields["host"] == f"{project.name}-{node}"
    state = project.state()
    assert state["securityWarnings"] == []
    assert all(n["online"] for n in state["nodes"].values())

    # A second apply: no POST to the controller, no event on the engine.
    project.clear_requests()
    time.sleep(1.1)
    since = time.time()
    again = project.provisioner().apply(wait_timeout=60)
    assert again["changed"] == 0, again["changes"]
    assert [r for r in project.requests() if r["method"] != "GET"] == []
    assert project.events_since(since) == []

    # plan agrees: everything unchanged.
    assert {c.action for c in project.provisioner().plan()} == {"unchanged"}

    # status, as text and as JSON, through the CLI.
    cfg_path = str(project.tmp / "jenkinsctl.yaml")
    env = {**__import__("os").environ, **project.env}
    out = subprocess.run([sys.executable, "-m", "jenkinsctl", "-c", cfg_path, "-o", "json", "status"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert [(a["node"], a["state"].split()[0], a["node_state"], a["labels"], a["executors"])
            for a in status["agents"]] == [("agent-1", "running", "online", ["docker"], 2),
                                           ("agent-2", "running", "online", ["docker"], 2)]
    text = subprocess.run([sys.executable, "-m", "jenkinsctl", "-c", cfg_path, "status"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert text.returncode == 0, text.stderr
    assert "agent-1" in text.stdout and "online" in text.stdout and "NODE STATE" in text.stdout
