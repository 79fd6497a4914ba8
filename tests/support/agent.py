"""Real agent containers for tests: the agent image (built once per session),
agents started the way the provisioner starts them, and SSH with the host
key pinned.

Any test directory can use the session fixture by importing it into its
conftest.py::

    from tests.support.agent import agent_image  # noqa: F401

Agents are reached only through sshd published on 127.0.0.1.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import pathlib
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import pytest

from tests.support.engine import TEST_LABELS


@pytest.fixture(scope="session")
def agent_image(docker_client) -> str:
    """The agent image's reference.  Built at most once per session; the
    content-hash tag makes later sessions reuse it when nothing changed."""
    from jenkinsctl.agent_image import build_agent_image

    lines: list[str] = []
    try:
        return build_agent_image(docker_client, project="jenkinsctl-test", log=lines.append)
    except Exception:
        print("\n".join(lines))
        raise


def agent_group(remote_fs: str, **changes):
    """An AgentGroup as the config would make it, with ``remote_fs`` (a host
    path the test owns) as the group's root."""
    from jenkinsctl.config import load_config

    group = load_config(None, env={}).agents[0]
    return dataclasses.replace(group, remote_fs=remote_fs, **changes)


@dataclass
class Agent:
    container: object
    node: str
    port: int
    host_key_line: str          # "ssh-ed25519 BASE64"
    client_key_path: pathlib.Path
    remote_fs: str              # the node's remoteFS, same path on host and agent

    def ssh(self, command: str, *, user: str = "jenkins", timeout: float = 120,
            host_key_line: str | None = None) -> tuple[int, str, str]:
        """Run ``command`` over SSH with the client key, the host key pinned."""
        client = connect(self.port, user=user, key_path=self.client_key_path,
                         host_key_line=host_key_line or self.host_key_line)
        try:
            _, out, err = client.exec_command(command, timeout=timeout)
            code = out.channel.recv_exit_status()
            return code, out.read().decode(), err.read().decode()
        finally:
            client.close()


def connect(port: int, *, user: str, host_key_line: str, key_path: pathlib.Path | None = None,
            password: str | None = None):
    """A paramiko client that accepts only ``host_key_line`` from the agent."""
    import paramiko

    client = paramiko.SSHClient()
    algo, blob = host_key_line.split()[:2]
    key = paramiko.PKey.from_type_string(algo, base64.b64decode(blob))
    client.get_host_keys().add(f"[127.0.0.1]:{port}", algo, key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    pkey = paramiko.Ed25519Key.from_private_key_file(str(key_path)) if key_path else None
    client.connect("127.0.0.1", port=port, username=user, pkey=pkey, password=password,
                   look_for_keys=False, allow_agent=False, timeout=15, banner_timeout=15, auth_timeout=15)
    return client


def remove_quietly(container) -> None:
    """Remove a test container; gone already (or going) is fine."""
    import docker.errors

    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:
            raise


def wait_for_sshd(port: int, timeout: float = 60, container=None) -> None:
    """Wait for sshd's banner; with ``container``, fail at once when it
    stops or disappears instead of waiting out the timeout."""
    import docker.errors

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if container is not None:
            try:
                container.reload()
            except docker.errors.NotFound:
                raise AssertionError(f"agent container {container.name} was removed while starting (on a shared "
                                     "engine, another test session's label cleanup can do this)") from None
            if container.status in ("exited", "dead"):
                raise AssertionError(f"agent container {container.name} exited:\n"
                                     + container.logs().decode(errors="replace"))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(2)
                if s.recv(64).startswith(b"SSH-2.0-"):
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"sshd on 127.0.0.1:{port} did not answer within {timeout}s: {last}")


def start_agent(client, image: str, keystore, node: str, *, root: pathlib.Path, socket_path: str | None = None,
                name_prefix: str = "jenkinsctl-test-agent") -> Agent:
    """Create, key and start one agent as the provisioner does, publishing
    sshd on a free port of 127.0.0.1, and wait until sshd answers."""
    from jenkinsctl.agent_image import agent_container_kwargs, install_agent_keys

    changes = {"docker_socket": socket_path} if socket_path else {}
    group = agent_group(str(root), **changes)
    kwargs = agent_container_kwargs(image=image, name=f"{name_prefix}-{node}-{uuid.uuid4().hex[:6]}", node=node,
                                    group=group, labels=TEST_LABELS, publish_ssh=0)
    kwargs["restart_policy"] = {"Name": "no"}  # a test agent that fails should stay failed
    container = client.containers.create(**kwargs)
    install_agent_keys(container, keystore, node)
    container.start()
    container.reload()
    port = int(container.ports["22/tcp"][0]["HostPort"])
    try:
        wait_for_sshd(port, container=container)
    except TimeoutError as exc:
        raise AssertionError(f"agent {node} did not start: {exc}\n"
                             + container.logs().decode(errors="replace")) from None
    return Agent(container=container, node=node, port=port,
                 host_key_line=keystore.host_key(node).host_key_entry,
                 client_key_path=keystore.client_key().private_path,
                 remote_fs=kwargs["environment"]["JENKINS_AGENT_WORKDIR"])


class SocketProxy:
    """A unix socket on the host that forwards every connection to the real
    engine socket.  Its group can be anything (chgrp), which is how a test
    gets a docker socket whose gid matches no group in the agent image."""

    def __init__(self, path: pathlib.Path, target: str = "/var/run/docker.sock", gid: int = 0,
                 mode: int = 0o660) -> None:
        self.path, self.target = path, target
        self._srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._srv.bind(str(path))
        os.chown(path, 0, gid)
        os.chmod(path, mode)
        self._srv.listen(64)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                conn.close()
                continue
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        self._stop = True
        try:
            self._srv.close()
        finally:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


def unused_gid(client, image: str, start: int = 54321) -> int:
    """A gid that no group in ``image`` has (checked in the image itself)."""
    out = client.containers.run(image, entrypoint=["getent", "group"], remove=True, labels=TEST_LABELS)
    used = {int(line.split(b":")[2]) for line in out.splitlines() if line.count(b":") >= 3}
    gid = start
    while gid in used:
        gid += 1
    return gid

