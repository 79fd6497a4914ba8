"""Cases 4, 5, 6, 7, 8 and 15: nodes that exist or race, two applies at once,
hostile names, a disconnected node, host keys, and ownership on down.

The controller is the emulator in-process on 127.0.0.1, used as
``controller.external``: agents are real containers from the real agent
image with sshd published on 127.0.0.1, and the emulator's SSH launcher
connects to them with the pinned host key.  Each test has its own project;
everything with its ownership label is removed at teardown.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import yaml

from jenkinsctl.errors import ConfigError
from jenkinsctl.jenkins_api import (MANUAL_KEY_STRATEGY, NON_VERIFYING_STRATEGY, HostKey, JenkinsAPI, NodeSpec,
                                    node_fields)
from tests.fakejenkins import sshkeys
from tests.robustness.conftest import ADMIN, ADMIN_PASSWORD, RecordingProxy
from tests.support.agent import agent_image  # noqa: F401
from tests.support.engine import TEST_LABELS

PW_ENV = {"JENKINSCTL_JENKINS_PASSWORD": ADMIN_PASSWORD}


def external_config(tmp_path, project: str, url: str, agent_image: str, groups=None, **extra) -> str:  # noqa: F811
    root = tmp_path / "agents"
    root.mkdir(exist_ok=True, mode=0o755)
    groups = groups if groups is not None else [{"name": "agent", "count": 2}]
    for g in groups:
        g.setdefault("image", agent_image)
        g.setdefault("remote_fs", str(root / g["name"]))
    doc = {"version": 1, "project": project, "state_dir": str(tmp_path / "state"),
           "controller": {"external": url, "username": ADMIN, "password": {"env": "JENKINSCTL_JENKINS_PASSWORD"},
                          "timeout": 10, "ready_timeout": 30},
           "agents": groups, **extra}
    path = tmp_path / "jenkinsctl.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def spec(name: str, host_key: str | None = None) -> NodeSpec:
    return NodeSpec(name=name, host="127.0.0.1", port=1, credentials_id="robust-cred",
                    host_key=HostKey.parse(host_key or sshkeys.generate().public_line),
                    remote_fs="/home/jenkins/agent", labels=("docker",), executors=1, max_retries=0, retry_wait=0)


def settle() -> None:
    time.sleep(0.2)


def project_containers(docker_engine, project: str) -> list:
    return docker_engine.containers.list(all=True, filters={"label": f"io.jenkinsctl.project={project}"})


# --- case 4 -------------------------------------------------------------------------


@pytest.mark.case(4)
def test_existing_identical_node_costs_no_post(fake_jenkins, figure):
    api = JenkinsAPI(fake_jenkins.url, ADMIN, ADMIN_PASSWORD, timeout=5)
    s = spec("robust-same")
    assert api.ensure_node(s) == "created"
    settle()
    fake_jenkins.clear_requests()
    for _ in range(5):
        assert api.ensure_node(s) == "unchanged"
    settle()
    assert fake_jenkins.posts() == []
    figure(ensure_calls=5, posts=0, gets=len(fake_jenkins.requests))


class RaceProxy(RecordingProxy):
    """Pairs up the two clients' GETs under computer/NAME/ (the config.xml
    lookup, then the api/json existence check python-jenkins' create_node
    makes): each waits at a barrier for the other one, so both see "missing"
    at every step and both POST: the race, every time, however busy the
    machine is.  A GET with no partner goes on after ``wait`` s."""

    def __init__(self, upstream_port: int, wait: float = 5.0) -> None:
        super().__init__(upstream_port)
        self.barrier = threading.Barrier(2)
        handler = self._httpd.RequestHandlerClass
        relay = handler.do_GET
        proxy = self

        def paired_get(h):
            path = h.path.split("?")[0]
            if path.startswith("/computer/") and not path.startswith("/computer/api"):
                try:
                    proxy.barrier.wait(wait)
                except threading.BrokenBarrierError:
                    proxy.barrier.reset()
            relay(h)

        handler.do_GET = paired_get


@pytest.mark.case(4)
def test_a_concurrent_creator_wins_the_race_and_jenkinsctl_carries_on(fake_jenkins, figure):
    proxy = RaceProxy(fake_jenkins.port)
    try:
        key = sshkeys.generate().public_line
        apis = [JenkinsAPI(proxy.url, ADMIN, ADMIN_PASSWORD, timeout=10) for _ in range(2)]
        for a in apis:
            a.wait_ready()
        outcomes: list[str] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def go(api):
            barrier.wait()
            try:
                outcomes.append(api.ensure_node(spec("robust-race", key)))
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=go, args=(a,)) for a in apis]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        settle()
        assert errors == [], errors
        creates = [r for r in fake_jenkins.requests if r["path"].startswith("/computer/doCreateItem")]
        assert sorted(r["status"] for r in creates) == [302, 400], creates  # both POSTed: a real race
        assert sorted(outcomes) == ["created", "unchanged"], outcomes
        assert list(fake_jenkins.state()["nodes"]) == ["robust-race"]
        # a racer with a *different* config updates the winner's node to its own
        other = JenkinsAPI(fake_jenkins.url, ADMIN, ADMIN_PASSWORD, timeout=10)
        changed = spec("robust-race", key)
        changed = NodeSpec(**{**changed.__dict__, "executors": 3})
        assert other.ensure_node(changed) == "updated"
        assert node_fields(other.node_config("robust-race"))["numExecutors"] == "3"
        figure(create_posts=len(creates), outcomes=sorted(outcomes))
    finally:
        proxy.close()


# --- case 5 -------------------------------------------------------------------------


@pytest.mark.case(5)
def test_two_applies_at_once_make_one_node_and_one_container_per_agent(fake_jenkins_factory, docker_engine,
                                                                       agent_image, project_name, cli,  # noqa: F811
                                                                       tmp_path, figure):
    emu = fake_jenkins_factory()
    cfg = external_config(tmp_path, project_name, emu.url, agent_image)
    runs = {}

    def go(i):
        runs[i] = cli("-c", cfg, "apply", "--wait-timeout", "120", env=PW_ENV, timeout=300)

    threads = [threading.Thread(target=go, args=(i,)) for i in (1, 2)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(320)
    took = time.monotonic() - start
    for i, run in runs.items():
        assert run.rc == 0, f"apply {i}:\n{run.output[-3000:]}"
    names = sorted(c.name for c in project_containers(docker_engine, project_name))
    assert names == [f"{project_name}-agent-1", f"{project_name}-agent-2"], names
    nodes = emu.state()["nodes"]
    assert sorted(nodes) == ["agent-1", "agent-2"], nodes
    assert all(n["online"] for n in nodes.values()), nodes
    creates = [r for r in emu.requests if r["path"].startswith("/computer/doCreateItem")]
    assert len(creates) == 2, creates  # one per node: the second apply waited and found nothing to do
    waited = [r for r in runs.values() if "waiting for another jenkinsctl run" in r.stderr]
    assert len(waited) == 1, [r.stderr[-500:] for r in runs.values()]
    figure(seconds=round(took, 1), containers=len(names), nodes=len(nodes), create_posts=len(creates))


# --- case 6 -------------------------------------------------------------------------


@pytest.mark.case(6)
def test_hostile_names_are_encoded_or_refused_before_anything_is_created(fake_jenkins, docker_engine, cli,
                                                                         project_name, tmp_path, figure):
    api = JenkinsAPI(fake_jenkins.url, ADMIN, ADMIN_PASSWORD, timeout=5)
    api.wait_ready()
    # valid Jenkins names: percent-encoded, stored and found under the exact name
    good = ["robust agent 1", "robust+plus", "röbust-ünïcode-节点", "a" * 100]
    key = sshkeys.generate().public_line
    for name in good:
        assert api.ensure_node(spec(name, key)) == "created", name
        assert api.get_node(name) is not None, name
        assert api.ensure_node(spec(name, key)) == "unchanged", name
    assert sorted(fake_jenkins.state()["nodes"]) == sorted(good)
    # names Jenkins cannot store, or that walk out of computer/: refused with no request
    bad = ["../escape", "..", "a/../../b", "x" * 101, "trailing ", "semi;colon", "tab\tname"]
    settle()
    fake_jenkins.clear_requests()
    for name in bad:
        with pytest.raises(ConfigError):
            api.ensure_node(spec(name))
        with pytest.raises(ConfigError):
            api.delete_node(name)
    settle()
    assert fake_jenkins.requests == [], fake_jenkins.requests
    # through the CLI: agent group names that would make such nodes are
    # rejected at config load, before any container, network or request
    rejected = {}
    for gname in ["my agent", "a+b", "ünï", "../x", "g" * 101]:
        cfg = external_config(tmp_path, project_name, fake_jenkins.url, "unused:image", groups=[{"name": gname}])
        run = cli("-c", cfg, "apply", "--no-wait", env=PW_ENV, timeout=60)
        rejected[gname[:12]] = run.rc
        assert run.rc == 2, f"{gname!r}: {run.output}"
        assert "agents[0].name" in run.stderr and "jenkinsctl.yaml:" in run.stderr, run.stderr
    settle()
    assert fake_jenkins.requests == []
    assert project_containers(docker_engine, project_name) == []
    assert docker_engine.networks.list(filters={"label": f"io.jenkinsctl.project={project_name}"}) == []
    figure(encoded=len(good), refused_by_api=len(bad), refused_by_config=len(rejected))


# --- case 7 and 8 (one provisioned project) -----------------------------------------


@pytest.fixture
def online_project(fake_jenkins_factory, docker_engine, agent_image, project_name, cli, tmp_path):  # noqa: F811
    emu = fake_jenkins_factory()
    cfg = external_config(tmp_path, project_name, emu.url, agent_image)
    run = cli("-c", cfg, "apply", "--wait-timeout", "120", env=PW_ENV, timeout=300)
    assert run.rc == 0, run.output[-3000:]
    return emu, cfg


def status_json(cli, cfg) -> dict:
    run = cli("-c", cfg, "-o", "json", "status", env=PW_ENV, timeout=60)
    assert run.rc == 0, run.output
    return {a["node"]: a for a in json.loads(run.stdout)["agents"]}


@pytest.mark.case(7)
def test_disconnected_node_is_reported_and_enable_disable_act_on_it(online_project, cli, figure):
    emu, cfg = online_project
    emu.set_connected("agent-1", False)  # the agent dropped: offline, not temporarily offline
    before = status_json(cli, cfg)
    assert before["agent-1"]["node_state"] == "offline", before["agent-1"]
    # (the emulator's set_connected(False) gives no offlineCause, so there is no reason to show)
    assert before["agent-1"]["state"].startswith("running"), before["agent-1"]  # the container is fine
    assert before["agent-2"]["node_state"] == "online"
    api = JenkinsAPI(emu.url, ADMIN, ADMIN_PASSWORD, timeout=5)
    node = api.get_node("agent-1")
    assert not node.online and not node.temporarily_offline
    assert api.enable_node("agent-1") is False  # it is not disabled: nothing to enable
    settle()
    assert not emu.state()["nodes"]["agent-1"]["temporarilyOffline"]
    assert api.disable_node("agent-1", "maintenance") is True  # python-jenkins' own would do nothing here
    settle()
    assert emu.state()["nodes"]["agent-1"]["temporarilyOffline"]
    disabled = status_json(cli, cfg)["agent-1"]
    assert "maintenance" in disabled["offline_reason"] or "temporarily" in disabled["node_state"], disabled
    assert api.disable_node("agent-1") is False
    assert api.enable_node("agent-1") is True
    settle()
    assert not emu.state()["nodes"]["agent-1"]["temporarilyOffline"]
    figure(reported=before["agent-1"]["node_state"], why=before["agent-1"]["offline_reason"][:100],
           after_disable=f"{disabled['node_state']}: {disabled['offline_reason']}"[:100])


@pytest.mark.case(8)
def test_changed_host_key_is_refused_and_no_node_is_ever_non_verifying(online_project, docker_engine,
                                                                       project_name, figure):
    emu, _ = online_project
    api = JenkinsAPI(emu.url, ADMIN, ADMIN_PASSWORD, timeout=5)
    stored = {}
    for name in ("agent-1", "agent-2"):
        f = node_fields(api.node_config(name))
        stored[name] = f["strategy"]
        assert f["strategy"] == MANUAL_KEY_STRATEGY, f
        assert f["strategy"] != NON_VERIFYING_STRATEGY
    # the agent's host key changes (a man in the middle, or a rebuilt host)
    agent = docker_engine.containers.get(f"{project_name}-agent-1")
    code, out = agent.exec_run(["sh", "-c", "rm -f /etc/ssh/ssh_host_ed25519_key* && "
                                "ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && "
                                "pkill -HUP -x sshd || kill -HUP $(cat /run/sshd.pid)"], user="root")
    assert code == 0, out
    time.sleep(1)
    emu.set_connected("agent-1", False)
    emu.relaunch("agent-1")
    c = emu.wait_for_launch("agent-1", timeout=60)
    state = emu.state()
    node = state["nodes"]["agent-1"]
    assert not node["online"], node
    text = (node["offlineCauseReason"] + "\n".join(node["log"])).lower()
    assert "key" in text, node
    assert state["securityWarnings"] == [] and node["securityWarnings"] == []
    for entry in emu.requests:
        if entry["path"].startswith("/computer/doCreateItem"):
            pass  # forms are checked by the emulator's strict binding
    figure(strategies=sorted(set(stored.values())), refusal=node["offlineCauseReason"][:120],
           launch_attempts=node["launchAttempts"])


# --- case 15 ------------------------------------------------------------------------


@pytest.mark.case(15)
def test_down_removes_only_labelled_and_apply_refuses_a_foreign_name(fake_jenkins_factory, docker_engine,
                                                                     agent_image, project_name, cli,  # noqa: F811
                                                                     tmp_path, figure):
    emu = fake_jenkins_factory()
    cfg = external_config(tmp_path, project_name, emu.url, agent_image, groups=[{"name": "agent", "count": 1}])
    # someone else's container holds the name the project's agent would take
    foreign = docker_engine.containers.create(agent_image, name=f"{project_name}-agent-1", labels=dict(TEST_LABELS),
                                              entrypoint=["sleep", "3600"])
    foreign_net = docker_engine.networks.create(f"{project_name}-other-net", labels=dict(TEST_LABELS))
    try:
        refused = cli("-c", cfg, "apply", "--no-wait", env=PW_ENV, timeout=120)
        assert refused.rc == 8, refused.output
        assert "not managed by jenkinsctl" in refused.stderr and "hint:" in refused.stderr, refused.stderr
        assert f"{project_name}-agent-1" in refused.stderr
        settle()
        assert emu.posts() == []
        assert docker_engine.networks.list(filters={"label": f"io.jenkinsctl.project={project_name}"}) == []
        # with another group name the project provisions next to it ...
        cfg = external_config(tmp_path, project_name, emu.url, agent_image, groups=[{"name": "builder", "count": 1}])
        run = cli("-c", cfg, "apply", "--wait-timeout", "120", env=PW_ENV, timeout=300)
        assert run.rc == 0, run.output[-3000:]
        owned = sorted(c.name for c in project_containers(docker_engine, project_name))
        assert owned == [f"{project_name}-builder-1"]
        # ... and down removes exactly what it labelled
        down = cli("-c", cfg, "down", env=PW_ENV, timeout=120)
        assert down.rc == 0, down.output
        assert project_containers(docker_engine, project_name) == []
        assert docker_engine.networks.list(filters={"label": f"io.jenkinsctl.project={project_name}"}) == []
        assert emu.state()["nodes"] == {}
        foreign.reload()
        foreign_net.reload()  # both still there
        figure(refused_exit=refused.rc, foreign_kept=2)
    finally:
        # other test sessions on a shared engine may have cleaned up
        # io.jenkinsctl.test=1 resources already
        for thing in (foreign, foreign_net):
            try:
                thing.remove(force=True) if thing is foreign else thing.remove()
            except Exception:  # noqa: BLE001
                pass
