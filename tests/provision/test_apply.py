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
    return project.api()


def test_apply_registers_pinned_agents_and_second_apply_changes_nothing(project):
    prov = project.provisioner()
    plan = prov.plan()
    assert {c.action for c in plan if c.kind in ("container", "node")} == {"create"}

    first = prov.apply(wait_timeout=120)
    assert first["nodes"] == {"agent-1": {"online": True}, "agent-2": {"online": True}}
    # The controller booted with the generated CasC: its nodes and the agents'
    # credential already matched what apply wants, so apply wrote neither.
    node_actions = {c["action"] for c in first["changes"] if c["kind"] == "node"}
    assert node_actions <= {"unchanged", "relaunch"} and "unchanged" in node_actions, first["changes"]
    assert [c["action"] for c in first["changes"] if c["kind"] == "credential"] == ["unchanged"]
    assert not [r for r in project.requests() if r["method"] == "POST" and (
        "doCreateItem" in r["path"] or "config.xml" in r["path"] or "createCredentials" in r["path"])]
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

    # The controller got its CasC and secrets as files, none in its environment.
    ctl = project.client.containers.get(f"{project.name}-controller")
    code, out = ctl.exec_run(["sh", "-c", "stat -c '%U %a %n' /run/secrets/* /run/jenkinsctl/casc/jenkins.yaml"])
    assert code == 0 and sorted(out.decode().split("\n")[:3]) == sorted([
        "jenkins 400 /run/secrets/jenkins-admin-password", "jenkins 400 /run/secrets/jenkins-agent-key",
        "jenkins 400 /run/jenkinsctl/casc/jenkins.yaml"])
    assert not [e for e in ctl.attrs["Config"]["Env"] if "PASSWORD" in e.split("=")[0]]
    assert "PRIVATE KEY" not in json.dumps([c.attrs["Config"] for c in project.containers()])

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


def test_agent_recreated_with_another_host_key_is_refused(project, tmp_path):
    from jenkinsctl import agent_image
    from jenkinsctl.keys import KeyStore

    prov = project.provisioner()
    prov.apply(wait_timeout=120)
    # Someone replaces agent-1 with a container that presents another host
    # key (a rebuilt host, or an impostor on the network).
    project.client.containers.get(f"{project.name}-agent-1").remove(force=True)
    impostor_keys = KeyStore(tmp_path / "impostor")
    impostor_keys.client_key()
    # It authorizes the project's client key, so only the host key differs.
    import shutil
    shutil.rmtree(impostor_keys.root / "client")
    shutil.copytree(prov.keys.root / "client", impostor_keys.root / "client")
    group = prov.cfg.agents[0]
    kw = agent_image.agent_container_kwargs(image=project.agent_image, name=f"{project.name}-agent-1", node="agent-1",
                                            group=group, labels={"io.jenkinsctl.project": project.name},
                                            network=f"{project.name}-net")
    c = project.client.containers.create(**kw)
    agent_image.install_agent_keys(c, impostor_keys, "agent-1")
    c.start()
    api = api_for(project)
    time.sleep(2)  # sshd up
    api.relaunch("agent-1")
    with pytest.raises(Exception) as err:
        api.wait_online("agent-1", 8)
    assert "Host key verification failed" in " ".join(err.value.details["log"]) + err.value.message
    node = api.get_node("agent-1")
    assert not node.online
    # agent-2 is untouched and online.
    assert api.get_node("agent-2").online


def test_unlabelled_container_with_a_colliding_name_is_refused(project):
    squatter = project.client.containers.create(project.agent_image, name=f"{project.name}-agent-2",
                                                labels={"io.jenkinsctl.test": "1"})
    try:
        with pytest.raises(ProvisionError) as err:
            project.provisioner().apply(wait_timeout=30)
        assert f"{project.name}-agent-2" in err.value.message and "not managed" in err.value.message
        assert "docker container rm" in err.value.hint
        # Nothing was created, and the squatter is untouched.
        assert [c.name for c in project.containers()] == []
        assert project.client.networks.list(names=[f"{project.name}-net"]) == []
        squatter.reload()
        assert squatter.status == "created"
    finally:
        squatter.remove(force=True)


@pytest.fixture(scope="module")
def broken_image(docker_client, agent_image):  # noqa: F811
    """The agent image with an entrypoint that exits at once."""
    import io

    tag = "jenkinsctl-test/broken-agent:" + agent_image.rsplit(":", 1)[1]
    dockerfile = f'FROM {agent_image}\nLABEL io.jenkinsctl.test="1"\nENTRYPOINT ["/bin/sh", "-c", "echo no such luck >&2; exit 3"]\n'
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, pull=False)
    return tag


def test_partial_failure_then_fixed_config_converges_without_duplicates(project, broken_image):
    groups = [{"name": "good", "count": 1}, {"name": "bad", "count": 2, "image": broken_image}]
    cfg = project.config(agents=[dict(g) for g in groups])
    with pytest.raises(ProvisionError) as err:
        project.provisioner(cfg).apply(wait_timeout=60)
    not_done = {f["resource"] for f in err.value.details["not_done"]}
    assert {"agent bad-1", "agent bad-2"} <= not_done
    assert "agent good-1" not in not_done
    done = {(c["kind"], c["name"]) for c in err.value.details["done"]}
    assert ("node", "good-1") in done and ("container", f"{project.name}-good-1") in done
    assert "did not stay up" in err.value.message and "no such luck" in err.value.message

    fixed = project.config(agents=[{"name": "good", "count": 1}, {"name": "bad", "count": 2}])
    result = project.provisioner(fixed).apply(wait_timeout=120)
    assert all(n["online"] for n in result["nodes"].values()) and len(result["nodes"]) == 3
    names = sorted(c.name for c in project.containers("agent"))
    assert names == [f"{project.name}-bad-1", f"{project.name}-bad-2", f"{project.name}-good-1"]
    api = api_for(project)
    assert sorted(n.name for n in api.list_nodes() if n.name != "Built-In Node" and n.description) == \
        ["bad-1", "bad-2", "good-1"]


def test_concurrent_applies_make_one_set(project):
    import os

    path = project.write(project.doc(agents=[{"name": "agent", "count": 3}]))
    env = {**os.environ, **project.env}
    cmd = [sys.executable, "-m", "jenkinsctl", "-c", path, "-o", "json", "apply", "--wait-timeout", "120"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    results = [json.loads(o[0]) for o in outs]
    # One did the work, the other waited for the lock and found nothing to do.
    assert sorted(r["changed"] for r in results)[0] == 0
    assert any("waiting for another jenkinsctl run" in o[1] for o in outs)
    assert len(project.containers("agent")) == 3 and len(project.containers("controller")) == 1
    assert len(project.client.networks.list(filters={"label": f"io.jenkinsctl.project={project.name}"})) == 1
    nodes = [n["displayName"] for n in api_for(project)._get_json("computer/api/json")["computer"]]
    assert sorted(n for n in nodes if n.startswith("agent-")) == ["agent-1", "agent-2", "agent-3"]


def test_down_removes_only_the_projects_labelled_resources(project, project_factory):
    other = project_factory()
    bystander = project.client.containers.create(project.agent_image, name=f"{project.name}-bystander",
                                                 labels={"io.jenkinsctl.test": "1"})
    try:
        project.provisioner(project.config(agents=[{"name": "agent", "count": 1}])).apply(wait_timeout=120)
        # Another project on the same engine, not applied: only its name differs.
        other_net = project.client.networks.create(f"{other.name}-net", labels={
            "io.jenkinsctl.managed": "true", "io.jenkinsctl.project": other.name})
        plan = project.provisioner().plan()
        assert not any(c.action == "remove" for c in plan)

        result = project.provisioner().down()
        removed = {(c["kind"], c["name"]) for c in result["removed"]}
        assert ("container", f"{project.name}-agent-1") in removed
        assert ("container", f"{project.name}-controller") in removed
        assert ("network", f"{project.name}-net") in removed
        assert project.containers() == []
        # Kept: the volume (no --volumes), the unlabelled bystander, the other project.
        assert project.client.volumes.get(f"{project.name}-jenkins-home")
        bystander.reload()
        other_net.reload()
        result = project.provisioner().down(volumes=True)
        assert ("volume", f"{project.name}-jenkins-home") in {(c["kind"], c["name"]) for c in result["removed"]}
        assert project.provisioner().down()["removed"] == []
    finally:
        bystander.remove(force=True)


def test_sigkill_mid_apply_then_rerun_converges_without_duplicates(project):
    import os
    import signal

    path = project.write(project.doc(agents=[{"name": "agent", "count": 3}]))
    env = {**os.environ, **project.env}
    proc = subprocess.Popen([sys.executable, "-m", "jenkinsctl", "-c", path, "apply"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not project.containers("agent"):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # The lock died with the process; a re-run finishes the job.
    out = subprocess.run([sys.executable, "-m", "jenkinsctl", "-c", path, "-o", "json", "apply"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert all(n["online"] for n in json.loads(out.stdout)["nodes"].values())
    assert sorted(c.name for c in project.containers("agent")) == [f"{project.name}-agent-{i}" for i in (1, 2, 3)]
    assert all(c.status == "running" for c in project.containers())
    nodes = [n.name for n in api_for(project).list_nodes() if n.name.startswith("agent-")]
    assert sorted(nodes) == ["agent-1", "agent-2", "agent-3"]
