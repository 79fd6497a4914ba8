"""The whole story, end to end, as one test (issue 7).

From a bare engine to a redeployed Python + MariaDB app:

1. bootstrap: `jenkinsctl apply` brings up the controller (the emulator
   image, through the config's controller.image) and two SSH agents
   labelled docker, registered with pinned host keys;
2. the operator's one-off steps: a Swarm, the database password as a Docker
   secret, the database image in the registry;
3. examples/pyapp/Jenkinsfile runs on the Groovy 2.4 harness, its `sh`
   inside an agent container as user jenkins; jenkinsctl there builds
   through the host socket, pushes to the real registry with auth and
   deploys the stack `stack:NAME`;
4. run 1: version 1 serves, the counter counts and is stored;
5. run 2 (VERSION changed, on the other agent): web moves to the new digest,
   db keeps its task, container and volume, the counter goes on; the build
   reuses the host's cache (figures printed, against a --no-cache build);
6. run 3 (BREAK_HEALTH): Swarm rolls back, version 2 keeps answering, the
   build fails with the health output;
7. docker-outside-of-docker is checked, not assumed: the agent's engine is
   the host's, the image is in the host's image list, the app's containers
   are the host's (siblings of the agents).

Everything is owned by a per-run project name (stack jctest-story-*, the
project's ownership labels) and removed at the end, also after a failure.
Figures go to stdout (pytest -s) and to $JENKINSCTL_STORY_OUT when set.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
import yaml

from tests.scenario import pyapp
from tests.support.registry import free_port

pytestmark = [pytest.mark.engine, pytest.mark.slow]

PASSWORD_ENV = "JCTEST_JENKINS_PASSWORD"
GROOVY_CP = f"{pyapp.REPO}/tests/groovy/lib:{pyapp.REPO}/tests/groovy/stubs"


def java_home() -> str | None:
    for j in ("/usr/lib/jvm/java-17-openjdk-amd64", "/usr/lib/jvm/java-17-openjdk-arm64", "/usr/lib/jvm/default-java"):
        if os.path.exists(f"{j}/bin/java"):
            return j
    return os.environ.get("JAVA_HOME")


@pytest.fixture(scope="session")
def controller_image(docker_client, emulator_image) -> str:  # noqa: F811
    """The emulator image without io.jenkinsctl.test=1: containers inherit
    image labels, and other sessions remove containers with that label."""
    from tests.fakejenkins.image import without_test_label

    return without_test_label(docker_client, emulator_image, "jenkinsctl-test/story-controller")


class Story:
    """The per-run names, paths and the commands a person would type."""

    def __init__(self, client, registry, tmp: pathlib.Path, controller_image: str, agent_image: str) -> None:
        self.client = client
        self.registry = registry
        self.tmp = tmp
        self.project = "jctstory" + secrets.token_hex(3)
        self.stack = pyapp.stack_name("story")
        self.app_port = free_port()
        self.jenkins_port = free_port()
        self.agents_root = tmp / "agents"
        self.agents_root.mkdir(mode=0o755)
        self.source = tmp / "source"  # what `checkout scm` gets: this repository's pyapp
        shutil.copytree(pyapp.PYAPP, self.source / "examples" / "pyapp")
        self.config = tmp / "jenkinsctl.yaml"
        self.config.write_text(yaml.safe_dump({
            "version": 1, "project": self.project, "state_dir": str(tmp / "state"),
            "controller": {"image": controller_image, "port": self.jenkins_port, "username": "admin",
                           "password": {"env": PASSWORD_ENV}, "timeout": 10, "ready_timeout": 90},
            "agents": [{"name": "agent", "count": 2, "labels": ["docker"], "image": agent_image,
                        "remote_fs": str(self.agents_root / "agent")}],
        }, sort_keys=False))
        self.env = {**os.environ, PASSWORD_ENV: "admin"}
        self.transcript: list[str] = []
        self.figures: dict = {}

    def jenkinsctl(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "jenkinsctl", "-c", str(self.config), *argv]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=timeout)
        self.transcript.append(f"$ jenkinsctl {' '.join(argv)}\n{proc.stdout}{proc.stderr}")
        return proc

    def page(self, path: str = "/") -> dict[str, str]:
        """GET the app like `curl -s 127.0.0.1:PORT/`, into the transcript."""
        status, body = pyapp.get(self.app_port, path)
        self.transcript.append(f"$ curl -s 127.0.0.1:{self.app_port}{path}\n{body}")
        assert status == 200, f"GET {path} answered {status}: {body}"
        return dict(line.split(": ", 1) for line in body.strip().splitlines())

    def agent_container(self, node: str) -> str:
        return f"{self.project}-{node}"

    def pipeline(self, build: int, node: str, **params) -> dict:
        """One build of examples/pyapp/Jenkinsfile on ``node``."""
        remote_fs = self.agents_root / "agent" / node
        tmpdir = remote_fs / "harness"
        tmpdir.mkdir(parents=True, exist_ok=True)
        out = self.tmp / f"build-{build}.json"
        spec = {
            "jenkinsfile": str(self.source / "examples" / "pyapp" / "Jenkinsfile"),
            "source": str(self.source), "container": self.agent_container(node), "node": node,
            "docker": pyapp.docker_cli(),
            "env": {"BUILD_NUMBER": str(build), "PYAPP_REGISTRY": self.registry.url,
                    "PYAPP_STACK": self.stack, "PYAPP_PORT": str(self.app_port)},
            "params": {"BREAK_HEALTH": False, **params},
            "credentials": {"registry": {"type": "usernamePassword", "username": self.registry.username,
                                         "password": self.registry.password}},
            "out": str(out),
        }
        spec_file = self.tmp / f"build-{build}-spec.json"
        spec_file.write_text(json.dumps(spec))
        os.chmod(spec_file, 0o600)
        env = {**os.environ, "JAVA_OPTS": f"-Djava.io.tmpdir={tmpdir} -Djenkinsctl.repo={pyapp.REPO} "
                                          "-Xshare:auto --add-opens=java.base/java.lang=ALL-UNNAMED"}
        if java_home():
            env["JAVA_HOME"] = java_home()
        t0 = time.monotonic()
        proc = subprocess.run(["groovy", "-cp", GROOVY_CP, str(pyapp.REPO / "tests/scenario/RunJenkinsfile.groovy"),
                               str(spec_file)], capture_output=True, text=True, env=env, timeout=900)
        seconds = time.monotonic() - t0
        assert out.exists(), f"the harness wrote no result:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        result = json.loads(out.read_text())
        result["wall"] = round(seconds, 1)
        log = "\n".join(result["log"])
        self.transcript.append(f"--- build #{build} on {node}: {result['result']} ({seconds:.0f}s)\n{log}")
        assert self.registry.password not in log + proc.stdout + proc.stderr
        return result


def test_story(docker_client, registry, swarm, controller_image, agent_image, tmp_path_factory, capsys):
    assert shutil.which("groovy"), "groovy is not installed (scripts/bootstrap installs it)"
    client = docker_client
    # Under /tmp with a short path; owned by root, entered by the agents' jenkins.
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="jctstory-"))
    os.chmod(tmp, 0o755)
    s = Story(client, registry, tmp, controller_image, agent_image)
    started = time.monotonic()
    try:
        _story(s, client, registry)
    finally:
        s.figures["seconds"] = round(time.monotonic() - started, 1)
        report = "\n\n".join(s.transcript) + "\n\nfigures: " + json.dumps(s.figures, indent=2)
        if os.environ.get("JENKINSCTL_STORY_OUT"):
            pathlib.Path(os.environ["JENKINSCTL_STORY_OUT"]).write_text(report)
        with capsys.disabled():
            print("\n" + json.dumps(s.figures, indent=2))
        pyapp.remove_stack(client, s.stack)
        s.jenkinsctl("down", "--volumes", timeout=180)
        for img in client.images.list(name=f"{registry.url}/pyapp/*"):
            for ref in img.tags or [img.id]:  # deployed by digest: some have no tag left
                try:
                    client.images.remove(ref)
                except Exception:  # noqa: BLE001 - still in use by a container being removed
                    pass
        shutil.rmtree(tmp, ignore_errors=True)


def _story(s: Story, client, registry) -> None:
    # --- 1. bootstrap ----------------------------------------------------------------
    t0 = time.monotonic()
    proc = s.jenkinsctl("apply", "--wait-timeout", "180")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    s.figures["apply_seconds"] = round(time.monotonic() - t0, 1)
    status = s.jenkinsctl("-o", "json", "status")
    assert status.returncode == 0, status.stderr
    agents = json.loads(status.stdout)["agents"]
    assert [(a["node"], a["node_state"], a["labels"]) for a in agents] == [
        ("agent-1", "online", ["docker"]), ("agent-2", "online", ["docker"])]
    s.jenkinsctl("status")  # the table, for the transcript

    # --- 2. the operator's one-off steps: Swarm (fixture), secret, db image -----------
    pyapp.create_db_secret(client)
    db_ref = f"{registry.url}/pyapp/db:10.11"
    pyapp.build(pyapp.PYAPP / "db", db_ref)
    pyapp.push(client, db_ref, registry.auth)

    # docker-outside-of-docker: the agents' docker talks to this very engine.
    host_engine = client.info()["ID"]
    for node in ("agent-1", "agent-2"):
        out = subprocess.run([pyapp.docker_cli(), "exec", "-u", "jenkins", s.agent_container(node), "docker", "info",
                              "--format", "{{.ID}}"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == host_engine

    web, db = f"{s.stack}_web", f"{s.stack}_db"

    # --- 3./4. build #1: version 1 ---------------------------------------------------
    b1 = s.pipeline(1, "agent-1")
    assert b1["result"] == "SUCCESS", "\n".join(b1["log"])[-6000:]
    assert any("jenkinsctl" in c for c in b1["sh"]), b1
    pyapp.wait_answering(s.app_port, "1")
    assert [s.page()["visits"] for _ in range(3)] == ["1", "2", "3"]
    page = s.page()
    assert (page["version"], page["visits"]) == ("1", "4")
    web1 = pyapp.service_task(client, web)
    db1 = pyapp.service_task(client, db)
    volumes = pyapp.container_volumes(client, db1["container"])
    assert volumes == [f"{s.stack}_db-data"]
    # The image built from inside the agent is in the host engine's list.
    host_image = client.images.get(f"{registry.url}/pyapp/web:1-1")
    assert web1["image"].split("@")[1] in [d.split("@")[1] for d in host_image.attrs["RepoDigests"]]
    # The app's containers are the host's: siblings of the agents, not children.
    names = {c.name: c for c in client.containers.list()}
    assert s.agent_container("agent-1") in names and s.agent_container("agent-2") in names
    app_containers = [n for n in names if n.startswith(f"{s.stack}_")]
    assert len(app_containers) == 2, app_containers
    s.page("/health")
    s.figures["docker_ps"] = subprocess.run(
        [pyapp.docker_cli(), "ps", "--format", "{{.Names}}\t{{.Image}}\t{{.Status}}", "--filter",
         f"label=com.docker.stack.namespace={s.stack}"], capture_output=True, text=True).stdout.splitlines() + \
        subprocess.run([pyapp.docker_cli(), "ps", "--format", "{{.Names}}\t{{.Image}}\t{{.Status}}", "--filter",
                        f"label=io.jenkinsctl.project={s.project}"], capture_output=True, text=True).stdout.splitlines()
    inside = subprocess.run([pyapp.docker_cli(), "exec", s.agent_container("agent-1"), "sh", "-c",
                             "command -v dockerd || echo no-dockerd"],
                            capture_output=True, text=True, timeout=60).stdout
    assert "no-dockerd" in inside

    # --- 5. build #2: version 2 with a one-line code change, on the other agent -------
    (s.source / "examples" / "pyapp" / "VERSION").write_text("2\n")
    app_py = s.source / "examples" / "pyapp" / "app.py"
    code = app_py.read_text()
    assert code.count('server_version = "pyapp"') == 1
    # The run's own token in the line: a cache of an earlier run cannot hit.
    app_py.write_text(code.replace('server_version = "pyapp"', f'server_version = "pyapp/2-{s.project}"'))
    b2 = s.pipeline(2, "agent-2")
    log2 = "\n".join(b2["log"])
    assert b2["result"] == "SUCCESS", log2[-6000:]
    pyapp.wait_answering(s.app_port, "2")
    page = s.page()
    assert (page["version"], page["visits"]) == ("2", "5"), page  # the counter goes on: no data lost
    web2 = pyapp.service_task(client, web)
    assert web2["image"] != web1["image"]
    assert web2["image"].split("@")[1] == client.images.get(f"{registry.url}/pyapp/web:2-2").attrs[
        "RepoDigests"][0].split("@")[1]
    assert pyapp.service_task(client, db) == db1  # same task, same container
    assert pyapp.container_volumes(client, db1["container"]) == volumes

    # The host's build cache, shared by both agents: figures against --no-cache.
    m = re.search(r"built \S+ with (\w+) in ([0-9.]+)s \((\d+)/(\d+) steps cached\)", log2)
    assert m, "jenkinsctl ship printed no build summary:\n" + log2[-3000:]
    builder, warm, cached, total = m.group(1), float(m.group(2)), int(m.group(3)), int(m.group(4))
    nocache, progress = pyapp.build(s.source / "examples" / "pyapp", f"{registry.url}/pyapp/web:nocache",
                                    build_args={"APP_VERSION": "2"}, no_cache=True)
    s.figures["rebuild"] = {"builder": builder, "cached_steps": cached, "total_steps": total,
                            "warm_build_seconds": warm, "no_cache_build_seconds": round(nocache, 1),
                            "ratio": round(warm / nocache, 3)}
    # The dependency layer (apt) is reused; the changed source is rebuilt.
    assert 1 <= cached < total, s.figures["rebuild"]
    assert warm < nocache / 4, s.figures["rebuild"]

    # --- 6./7. build #3: a version whose health check fails ---------------------------
    (s.source / "examples" / "pyapp" / "VERSION").write_text("3\n")
    b3 = s.pipeline(3, "agent-1", BREAK_HEALTH=True)
    log3 = "\n".join(b3["log"])
    assert b3["result"] == "FAILURE", log3[-6000:]
    assert b3["error"].startswith("[dockerBuildPush] "), b3["error"]
    assert "rolled back" in b3["error"], b3["error"]
    assert "APP_HEALTH=fail" in log3, log3[-6000:]  # the health output is in the build's log
    pyapp.wait_answering(s.app_port, "2")
    page = s.page()
    assert (page["version"], page["visits"]) == ("2", "6"), page
    assert pyapp.service_task(client, web)["image"] == web2["image"]
    assert pyapp.service_task(client, db) == db1
    s.figures["builds"] = {f"#{i}": {"result": b["result"], "seconds": b["wall"]} for i, b in
                           ((1, b1), (2, b2), (3, b3))}
