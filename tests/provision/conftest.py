"""Provisioning against the real engine: real agent containers (real sshd,
the real agent image), the controller emulator as a container on the
project network, or in-process for the external-controller mode.

Every test gets its own project name; whatever carries that project's
ownership label is removed at teardown, also after a failure.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
import uuid
from typing import Any, Iterator

import pytest
import yaml

from tests.fakejenkins.fixtures import docker_engine, emulator_image  # noqa: F401
from tests.support.agent import agent_image  # noqa: F401

# The controller container (the emulator image) is configured only by the
# CasC file and secret files jenkinsctl puts into it, as a real controller:
# the admin password is a fresh one per project, read from
# /run/secrets/jenkins-admin-password with ${readFile:}.
PASSWORD_ENV = "JCTEST_JENKINS_PASSWORD"
EMULATOR_PASSWORD = "external-admin-pw"  # the in-process external controller's admin


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def remove_project(client, project: str) -> None:
    """Remove every container, network and volume labelled with ``project``."""
    import docker.errors

    label = {"label": [f"io.jenkinsctl.project={project}"]}
    for c in client.containers.list(all=True, filters=label):
        try:
            c.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
    for n in client.networks.list(filters=label):
        try:
            n.remove()
        except docker.errors.APIError:
            pass
    for v in client.volumes.list(filters=label):
        try:
            v.remove(force=True)
        except docker.errors.APIError:
            pass


class Project:
    """One test project: its config file, a Provisioner, and readers for
    the emulator's request log and the engine's events."""

    def __init__(self, client, tmp_path, name: str, emulator_image: str | None, agent_image: str) -> None:
        self.client = client
        self.tmp = tmp_path
        self.name = name
        self.emulator_image = emulator_image
        self.agent_image = agent_image
        self.port = free_port()
        self.state_dir = tmp_path / "state"
        self.agents_root = tmp_path / "agents"
        self.agents_root.mkdir(mode=0o755)
        self.password = "pw-" + uuid.uuid4().hex[:12]
        self.env = {PASSWORD_ENV: self.password}
        self.external: str | None = None

    def doc(self, agents: list[dict[str, Any]] | None = None, **controller: Any) -> dict[str, Any]:
        ctl = {"image": self.emulator_image, "port": self.port, "username": "admin",
               "password": {"env": PASSWORD_ENV}, "timeout": 10, "ready_timeout": 60}
        if self.external:
            ctl = {"external": self.external, "username": "admin", "password": {"env": PASSWORD_ENV},
                   "timeout": 10, "ready_timeout": 10}
        ctl.update(controller)
        groups = agents if agents is not None else [{"name": "agent", "count": 2}]
        for g in groups:
            g.setdefault("remote_fs", str(self.agents_root / g["name"]))
            # The session's agent image, by reference: building it in each
            # apply would rebuild whenever jenkinsctl's source changes.
            g.setdefault("image", self.agent_image)
        return {"version": 1, "project": self.name, "state_dir": str(self.state_dir),
                "controller": ctl, "agents": groups}

    def write(self, doc: dict[str, Any]) -> str:
        path = self.tmp / "jenkinsctl.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return str(path)

    def config(self, agents: list[dict[str, Any]] | None = None, **controller: Any):
        from jenkinsctl.config import load_config

        return load_config(self.write(self.doc(agents, **controller)), env=self.env)

    def api(self):
        from jenkinsctl.jenkins_api import JenkinsAPI

        return JenkinsAPI(self.url, "admin", self.password, timeout=10)

    def provisioner(self, cfg=None, **kw):
        from jenkinsctl.provision import Provisioner

        return Provisioner(cfg or self.config(), environ=self.env, **kw)

    # --- reading back -----------------------------------------------------------

    @property
    def url(self) -> str:
        return self.external or f"http://127.0.0.1:{self.port}/"

    def emulator(self, path: str, method: str = "GET") -> Any:
        req = urllib.request.Request(self.url.rstrip("/") + "/_emulator/" + path, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def requests(self) -> list[dict]:
        time.sleep(0.3)  # the emulator logs a request after answering it
        return self.emulator("requests")

    def clear_requests(self) -> None:
        time.sleep(0.3)
        self.emulator("requests", "DELETE")

    def state(self) -> dict:
        return self.emulator("state")

    def containers(self, role: str | None = None) -> list:
        import docker.errors

        labels = [f"io.jenkinsctl.project={self.name}"] + ([f"io.jenkinsctl.role={role}"] if role else [])
        # containers.list inspects each container it lists; one that apply
        # removes in between (a replaced agent) raises NotFound: list again.
        for _ in range(10):
            try:
                return self.client.containers.list(all=True, filters={"label": labels})
            except docker.errors.NotFound:
                time.sleep(0.1)
        return self.client.containers.list(all=True, filters={"label": labels})

    def events_since(self, since: float) -> list[dict]:
        """Engine events about this project's containers, network and volume.
        The engine's own HEALTHCHECK runs (an exec every 10 s in the agent
        image) are left out: they are not something jenkinsctl did."""
        until = time.time() + 0.5
        time.sleep(0.6)
        names = {c.name for c in self.containers()} | {f"{self.name}-net", f"{self.name}-jenkins-home"}
        health = {"exec_create: " + " ".join(test[1:]) for c in self.containers()
                  for test in [((c.attrs.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []]
                  if test[:1] == ["CMD"]}
        health_execs: set[str] = set()
        out = []
        for ev in self.client.events(since=int(since), until=int(until) + 1, decode=True):
            attrs = (ev.get("Actor") or {}).get("Attributes") or {}
            if ev.get("timeNano", ev.get("time", 0) * 10**9) < since * 10**9:
                continue
            if ev.get("Action") in health and attrs.get("execID"):
                health_execs.add(attrs["execID"])
            if attrs.get("execID") in health_execs:
                continue
            if (attrs.get("name") in names or attrs.get("container") in {c.id for c in self.containers()}
                    or attrs.get("io.jenkinsctl.project") == self.name):
                out.append({"type": ev.get("Type"), "action": ev.get("Action"), "name": attrs.get("name")})
        return out


@pytest.fixture(scope="session")
def controller_image(docker_client, emulator_image) -> str:  # noqa: F811
    """The emulator image as the project's controller image.

    The emulator image carries io.jenkinsctl.test=1, and so would every
    container made from it: any test session's end-of-session cleanup on a
    shared engine would then remove our controller mid-test.  This child
    image blanks that label; the provisioner's containers are owned by
    their project's labels, and the tests remove them by those."""
    from tests.fakejenkins.image import without_test_label

    return without_test_label(docker_client, emulator_image, "jenkinsctl-test/provision-controller")


@pytest.fixture
def project_factory(docker_client, tmp_path_factory, agent_image, controller_image) -> Iterator:  # noqa: F811
    made: list[Project] = []

    def make(emulator: bool = True) -> Project:
        name = f"jct{uuid.uuid4().hex[:8]}"
        p = Project(docker_client, tmp_path_factory.mktemp(name), name, controller_image if emulator else None,
                    agent_image)
        made.append(p)
        return p

    yield make
    for p in made:
        remove_project(docker_client, p.name)


@pytest.fixture
def project(project_factory) -> Project:
    return project_factory()
