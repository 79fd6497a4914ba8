"""pytest fixtures for the Jenkins emulator and its sshd agent hosts.

Import them from a conftest: ``from tests.fakejenkins.fixtures import *``.

Engine fixtures never skip: without a Docker engine they fail, so CI cannot
silently lose the launch tests.  Everything they create carries the label
``io.jenkinsctl.test=1`` and is removed at teardown, failed test or not.
Images are kept, tagged by a content hash, so the next run reuses them.
"""
from __future__ import annotations

import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

from .server import FakeJenkins, User
from .silent import SilentServer
from . import sshkeys

ADMIN = "admin"
ADMIN_PASSWORD = "admin-password"
ADMIN_TOKEN = "11c0ffee0ddba11c0ffee0ddba11c0ff"
READER = "reader"
READER_PASSWORD = "reader-password"
LABELS = {"io.jenkinsctl.test": "1"}

__all__ = [
    "ADMIN", "ADMIN_PASSWORD", "ADMIN_TOKEN", "READER", "READER_PASSWORD", "LABELS", "SshAgent",
    "fake_jenkins_factory", "fake_jenkins", "jenkins_client", "silent_server", "client_key",
    "docker_engine", "sshd_image", "sshd_agent_factory", "emulator_image", "test_network",
]


def default_users() -> list[User]:
    return [User(ADMIN, ADMIN_PASSWORD, tokens=(ADMIN_TOKEN,)), User(READER, READER_PASSWORD, role="read")]


@pytest.fixture
def fake_jenkins_factory() -> Iterator[Callable[..., FakeJenkins]]:
    """``factory(**kwargs)`` starts a FakeJenkins on 127.0.0.1 (ephemeral
    port) with the default users and ``time_scale=0.01`` unless overridden."""
    started: list[FakeJenkins] = []

    def make(**kwargs) -> FakeJenkins:
        kwargs.setdefault("time_scale", 0.01)
        users = kwargs.pop("users", None) or default_users()
        emu = FakeJenkins(users, **kwargs).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def fake_jenkins(fake_jenkins_factory) -> FakeJenkins:
    """A ready emulator with crumbs on, users ``admin`` (password and token)
    and ``reader`` (Overall/Read only)."""
    return fake_jenkins_factory()


@pytest.fixture
def jenkins_client(fake_jenkins):
    """The real python-jenkins client, as admin with a password, 10 s timeout."""
    import jenkins

    return jenkins.Jenkins(fake_jenkins.url, ADMIN, ADMIN_PASSWORD, timeout=10)


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """Accepts TCP connections on 127.0.0.1 and never answers."""
    with SilentServer() as srv:
        yield srv


@pytest.fixture(scope="session")
def client_key() -> sshkeys.KeyPair:
    """The SSH key pair agents authorize (the credential's private key)."""
    return sshkeys.generate("jenkins@fakejenkins")


# --- engine -------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_engine():
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # fail, never skip
        pytest.fail(f"no Docker engine answers ({exc}); run scripts/bootstrap", pytrace=False)
    yield client
    client.close()


@pytest.fixture(scope="session")
def sshd_image(docker_engine) -> str:
    """An agent host with Java 21, as agents of the pinned Jenkins need."""
    from .image import build_sshd_image

    return build_sshd_image(docker_engine, java=21)


@pytest.fixture(scope="session")
def sshd_image_java17(docker_engine) -> str:
    from .image import build_sshd_image

    return build_sshd_image(docker_engine, java=17)


@pytest.fixture(scope="session")
def emulator_image(docker_engine) -> str:
    from .image import build_image

    return build_image(docker_engine)


@pytest.fixture
def test_network(docker_engine) -> Iterator[str]:
    """A labelled user-defined bridge network, removed at teardown."""
    net = docker_engine.networks.create(f"jenkinsctl-test-{uuid.uuid4().hex[:10]}", driver="bridge", labels=LABELS)
    try:
        yield net.name
    finally:
        try:
            net.reload()
            for c in net.containers:
                net.disconnect(c, force=True)
            net.remove()
        except Exception:
            pass


@dataclass
class SshAgent:
    """An sshd container.  ``host``/``port`` reach it from this machine
    (127.0.0.1 only); ``name`` reaches it from containers on its network."""

    container: object
    name: str
    host: str
    port: int
    host_key: sshkeys.KeyPair

    def exec(self, cmd: str) -> tuple[int, str]:
        res = self.container.exec_run(["sh", "-c", cmd])
        return res.exit_code, res.output.decode("utf-8", "replace")


def _wait_for_ssh(host: str, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.settimeout(2)
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"sshd on {host}:{port} did not answer within {timeout}s ({last})")


@pytest.fixture(scope="module")
def sshd_agent_factory(docker_engine, sshd_image, client_key, tmp_path_factory,
                       request) -> Iterator[Callable[..., SshAgent]]:
    """``factory(no_java=False, network=None, authorized_key=None, java=21,
    chatty=False)`` starts an sshd agent host with a freshly generated host
    key mounted in, its port published on 127.0.0.1 only, and waits until
    sshd answers."""
    started = []

    def make(no_java: bool = False, network: Optional[str] = None,
             authorized_key: Optional[sshkeys.KeyPair] = None, java: int = 21, chatty: bool = False) -> SshAgent:
        image = sshd_image if java == 21 else request.getfixturevalue("sshd_image_java17")
        host_key = sshkeys.generate("agent-host-key")
        keydir: Path = tmp_path_factory.mktemp("agent-keys")
        host_key.write(keydir, "ssh_host_ed25519_key")
        (keydir / "authorized_keys").write_text((authorized_key or client_key).public_line + "\n")
        name = f"jenkinsctl-test-agent-{uuid.uuid4().hex[:10]}"
        container = docker_engine.containers.run(
            image, name=name, detach=True, labels=LABELS, network=network,
            environment={"AGENT_NO_JAVA": "1" if no_java else "0", "AGENT_CHATTY": "1" if chatty else "0"},
            volumes={str(keydir): {"bind": "/run/agent-keys", "mode": "ro"}},
            ports={"22/tcp": ("127.0.0.1", None)},
        )
        started.append(container)
        container.reload()
        port = int(container.attrs["NetworkSettings"]["Ports"]["22/tcp"][0]["HostPort"])
        try:
            _wait_for_ssh("127.0.0.1", port)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\ncontainer log:\n{container.logs().decode(errors='replace')}") from None
        return SshAgent(container, name, "127.0.0.1", port, host_key)

    yield make
    for c in started:
        try:
            c.remove(force=True, v=True)
        except Exception:
            pass
