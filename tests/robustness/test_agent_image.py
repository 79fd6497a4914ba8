"""Case 9: the agent image, attacked from outside as an SSH client would.

Two agents from the real agent image, keyed by jenkinsctl's KeyStore and
started as the provisioner starts them (tests/support/agent.py).  The docker
socket they get is a proxy of the real one owned by a gid that matches no
group in the image.  tests/agent/ has one test per property; this is the
suite's single end-to-end check with its figures.
"""

from __future__ import annotations

import time

import paramiko
import pytest

from tests.support.agent import SocketProxy, agent_image, connect, remove_quietly, start_agent, unused_gid  # noqa: F401
from tests.support.engine import TEST_LABELS


@pytest.mark.case(9)
def test_agent_image_refuses_passwords_root_and_sudo_and_uses_a_foreign_socket_gid(
        docker_engine, agent_image, tmp_path_factory, figure):  # noqa: F811
    from jenkinsctl.keys import KeyStore

    keystore = KeyStore(tmp_path_factory.mktemp("state"))
    gid = unused_gid(docker_engine, agent_image)
    sock_dir = tmp_path_factory.mktemp("sock")
    sock_dir.chmod(0o755)
    proxy = SocketProxy(sock_dir / "docker.sock", gid=gid, mode=0o660)
    root = tmp_path_factory.mktemp("agents")
    root.chmod(0o755)
    started = []
    try:
        start = time.monotonic()
        for node in ("robust-a1", "robust-a2"):
            started.append(start_agent(docker_engine, agent_image, keystore, node, root=root,
                                       socket_path=str(proxy.path), name_prefix="jenkinsctl-test-robust"))
        startup = time.monotonic() - start
        a, b = started
        refused = 0
        # password logins fail, whatever the password
        for user, password in (("jenkins", "jenkins"), ("jenkins", ""), ("root", "root"), ("root", "jenkins")):
            with pytest.raises(paramiko.AuthenticationException):
                connect(a.port, user=user, host_key_line=a.host_key_line, password=password or "x")
            refused += 1
        # root with the very key jenkins logs in with: refused by sshd
        with pytest.raises(paramiko.AuthenticationException):
            a.ssh("id", user="root")
        refused += 1
        code, out, _ = a.ssh("id -un")
        assert (code, out.strip()) == (0, "jenkins")
        # no sudo, and no way up through setuid binaries
        code, out, _ = a.ssh("command -v sudo || ls /usr/bin/sudo /etc/sudoers 2>&1; su -c id root </dev/null 2>&1")
        assert "No such file" in out and "uid=0" not in out, out
        # host keys: one per agent, the one jenkinsctl generated, none in the image
        assert a.host_key_line != b.host_key_line
        for agent in started:
            code, out, _ = agent.ssh("cat /etc/ssh/ssh_host_ed25519_key.pub")
            assert out.split()[:2] == agent.host_key_line.split()[:2]
        with pytest.raises(paramiko.BadHostKeyException):
            a.ssh("true", host_key_line=b.host_key_line)
        out = docker_engine.containers.run(agent_image, entrypoint=["sh", "-c", "ls /etc/ssh/ssh_host_* 2>&1; true"],
                                           remove=True, labels=TEST_LABELS).decode()
        assert "No such file" in out, out
        # the socket: gid matches no group in the image; jenkins reaches the engine through it
        code, out, err = a.ssh("stat -c '%a %g' /var/run/docker.sock && docker version --format '{{.Server.Version}}'")
        assert code == 0, err
        mode_gid, version = out.split("\n")[:2]
        assert mode_gid == f"660 {gid}", mode_gid  # never chmod 666
        assert version.strip() == docker_engine.version()["Version"]
        figure(logins_refused=refused, socket_gid=gid, agents=len(started), start_s=round(startup, 1))
    finally:
        for agent in started:
            remove_quietly(agent.container)
        proxy.close()
