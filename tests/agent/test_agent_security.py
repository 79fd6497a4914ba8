"""Agent image security, against real sshd in real agent containers.

Every connection goes to sshd published on 127.0.0.1 and pins the host key
jenkinsctl generated for that agent (paramiko RejectPolicy), the way the
controller's ManuallyProvidedKeyVerificationStrategy does.
"""

from __future__ import annotations

import paramiko
import pytest

from tests.support.agent import connect, remove_quietly, start_agent
from tests.support.engine import TEST_LABELS

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def test_key_login_as_jenkins_with_the_pinned_host_key(agents):
    a = agents[0]
    code, out, err = a.ssh("id -un; id -u; echo $HOME; pwd")
    assert code == 0, err
    assert out.split() == ["jenkins", "1000", "/home/jenkins", "/home/jenkins"]


def test_the_agent_presents_exactly_the_host_key_jenkinsctl_generated(agents, keystore):
    a = agents[0]
    t = paramiko.Transport(("127.0.0.1", a.port))
    try:
        t.start_client(timeout=15)
        key = t.get_remote_server_key()
    finally:
        t.close()
    assert f"{key.get_name()} {key.get_base64()}" == keystore.host_key(a.node).host_key_entry


def test_a_client_pinning_another_agents_key_is_refused(agents):
    a, b = agents
    with pytest.raises(paramiko.BadHostKeyException):
        a.ssh("true", host_key_line=b.host_key_line)


def test_two_agents_have_different_host_keys(agents, keystore):
    a, b = agents
    assert a.host_key_line != b.host_key_line
    for agent in agents:
        code, out, _ = agent.ssh("cat /etc/ssh/ssh_host_ed25519_key.pub")
        assert code == 0
        assert out.split()[:2] == agent.host_key_line.split()
    assert keystore.host_key("agent-1").fingerprint != keystore.host_key("agent-2").fingerprint


def test_the_image_contains_no_host_keys(docker_client, agent_image):
    out = docker_client.containers.run(
        agent_image, entrypoint=["sh", "-c", "ls -A /etc/ssh/ /run/jenkinsctl/; ls /etc/ssh/ssh_host_* 2>&1; true"],
        remove=True, labels=TEST_LABELS).decode()
    assert "ssh_host_" not in out.replace("ls: cannot access '/etc/ssh/ssh_host_*'", "")
    assert "No such file" in out


def test_password_login_fails_and_only_publickey_is_offered(agents):
    a = agents[0]
    with pytest.raises(paramiko.AuthenticationException):
        connect(a.port, user="jenkins", host_key_line=a.host_key_line, password="jenkins")
    t = paramiko.Transport(("127.0.0.1", a.port))
    try:
        t.start_client(timeout=15)
        with pytest.raises(paramiko.BadAuthenticationType) as exc:
            t.auth_none("jenkins")
        assert exc.value.allowed_types == ["publickey"]
    finally:
        t.close()


def test_jenkins_has_no_password(agents):
    a = agents[0]
    code, out = a.container.exec_run(["getent", "shadow", "jenkins"])
    assert code == 0
    assert out.decode().split(":")[1] == "*"


def test_root_login_fails_even_with_an_authorized_key(agents):
    """The client key is installed for root too, so only PermitRootLogin no
    and AllowUsers can be what refuses it."""
    a = agents[0]
    code, out = a.container.exec_run(["sh", "-c", "set -e; mkdir -p /root/.ssh; "
                                      "cp /etc/ssh/authorized_keys.d/jenkins /root/.ssh/authorized_keys; "
                                      "cp /etc/ssh/authorized_keys.d/jenkins /etc/ssh/authorized_keys.d/root; "
                                      "chmod 700 /root/.ssh; chmod 600 /root/.ssh/authorized_keys"])
    assert code == 0, out
    with pytest.raises(paramiko.AuthenticationException):
        a.ssh("id", user="root")
    code, out, _ = a.ssh("id -un")  # the same key still works for jenkins
    assert (code, out.strip()) == (0, "jenkins")


def test_sudo_is_absent_and_builds_cannot_become_root(agents):
    a = agents[0]
    code, out, _ = a.ssh("command -v sudo; ls /usr/bin/sudo /etc/sudoers 2>&1")
    assert code != 0
    assert "No such file" in out
    # no-new-privileges: even a setuid binary cannot raise privileges.
    code, out, err = a.ssh("su -c id root </dev/null")
    assert code != 0
    code, out, _ = a.ssh("grep NoNewPrivs /proc/self/status")
    assert out.split() == ["NoNewPrivs:", "1"]


def test_the_container_environment_does_not_reach_logins(agents):
    a = agents[0]
    code, out, _ = a.ssh("env; cat /etc/environment 2>/dev/null")
    assert code == 0
    assert "JENKINS_AGENT_WORKDIR" not in out and "SSH_PORT" not in out


def test_jenkins_cannot_change_its_authorized_keys(agents):
    a = agents[0]
    code, out, err = a.ssh("echo 'ssh-ed25519 AAAA x' >> /etc/ssh/authorized_keys.d/jenkins")
    assert code != 0 and "Permission denied" in err


def test_an_agent_without_a_provisioned_host_key_refuses_to_start(docker_client, agent_image, tmp_path):
    from jenkinsctl.agent_image import agent_container_kwargs

    from tests.support.agent import agent_group

    kwargs = agent_container_kwargs(image=agent_image, name=f"jenkinsctl-test-nokey-{tmp_path.name[-6:]}",
                                    node="agent-x", group=agent_group(str(tmp_path)), labels=TEST_LABELS)
    kwargs["restart_policy"] = {"Name": "no"}
    c = docker_client.containers.run(**kwargs)
    try:
        assert c.wait(timeout=60)["StatusCode"] == 1
        assert "no host key at /run/jenkinsctl/ssh_host_ed25519_key" in c.logs().decode()
    finally:
        remove_quietly(c)


def test_healthcheck_reports_healthy(agents):
    import time

    a = agents[1]
    deadline = time.monotonic() + 60
    status = None
    while time.monotonic() < deadline:
        a.container.reload()
        status = a.container.attrs["State"].get("Health", {}).get("Status")
        if status == "healthy":
            break
        time.sleep(1)
    assert status == "healthy"


def test_keys_from_a_restart_are_kept(docker_client, agent_image, keystore, tmp_path):
    """A restarted agent keeps its provisioned host key: the entrypoint
    never generates one."""
    agent = start_agent(docker_client, agent_image, keystore, "agent-restart", root=tmp_path)
    try:
        agent.container.restart(timeout=5)
        agent.container.reload()
        from tests.support.agent import wait_for_sshd

        # A port published as 0 may change across a restart.
        agent.port = int(agent.container.ports["22/tcp"][0]["HostPort"])
        wait_for_sshd(agent.port)
        code, out, _ = agent.ssh("id -un")
        assert (code, out.strip()) == (0, "jenkins")
    finally:
        remove_quietly(agent.container)


# --- no forwarding, no user rc files, no group root, no host user's directory --


def test_sshd_disables_all_forwarding_and_user_rc(agents):
    """The effective configuration for a jenkins login, as sshd computes it."""
    a = agents[0]
    code, out = a.container.exec_run(["/usr/sbin/sshd", "-T", "-C", "user=jenkins,host=ci,addr=127.0.0.1"])
    assert code == 0, out
    effective = dict(line.split(" ", 1) for line in out.decode().splitlines() if " " in line)
    assert effective["disableforwarding"] == "yes"
    assert effective["permituserrc"] == "no"
    for key in ("allowtcpforwarding", "allowstreamlocalforwarding", "allowagentforwarding", "x11forwarding",
                "permittunnel"):
        assert effective[key] == "no", key


def test_the_docker_socket_cannot_be_forwarded_over_ssh(agents, tmp_path):
    """With streamlocal forwarding a login could hand the agent's docker
    socket (root on the host) to the client side.  OpenSSH's own client asks
    for it; sshd must refuse the channel, so nothing answers on the local end."""
    import socket
    import subprocess
    import time

    a = agents[0]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{a.port} {a.host_key_line}\n")
    local = tmp_path / "forwarded.sock"
    no_config = tmp_path / "ssh_config"  # empty: no user or system ssh_config can change the test
    no_config.write_text("")
    ssh = subprocess.Popen(
        ["ssh", "-F", str(no_config), "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
         "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-i", str(a.client_key_path), "-p", str(a.port),
         "-N", "-L", f"{local}:/var/run/docker.sock", "jenkins@127.0.0.1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not local.exists():
            assert ssh.poll() is None, ssh.stderr.read().decode()
            assert time.monotonic() < deadline, "ssh did not open the local end of the forward"
            time.sleep(0.1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(15)
            s.connect(str(local))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            try:
                answer = s.recv(4096)
            except ConnectionResetError:
                answer = b""
        assert answer == b"", answer  # a forwarded socket would answer "HTTP/1.0 200 OK ... OK"
    finally:
        ssh.terminate()
        try:
            _, err = ssh.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            # A loaded machine can leave ssh mid-teardown of its channel; its
            # stderr so far still tells whether sshd refused the forward.
            ssh.kill()
            _, err = ssh.communicate(timeout=15)
    assert b"administratively prohibited" in err or b"open failed" in err, err


def test_a_users_ssh_rc_is_not_run_at_login(agents):
    """A build can write ~/.ssh/rc; with PermitUserRC it would run at every
    later login, the controller's included."""
    a = agents[0]
    code, _, err = a.ssh("mkdir -p ~/.ssh && printf 'touch $HOME/rc-ran\\n' > ~/.ssh/rc && rm -f ~/rc-ran")
    assert code == 0, err
    try:
        code, out, err = a.ssh("test -e ~/rc-ran && echo ran || echo not-run")
        assert (code, out.strip()) == (0, "not-run"), err
    finally:
        a.ssh("rm -rf ~/.ssh/rc ~/rc-ran")


def _agent_that_must_not_start(client, image, keystore, node, *, root, socket_path=None) -> str:
    """Create, key and start an agent, expect it to exit 1, return its log."""
    from jenkinsctl.agent_image import agent_container_kwargs, install_agent_keys

    from tests.support.agent import agent_group

    changes = {"docker_socket": socket_path} if socket_path else {}
    kwargs = agent_container_kwargs(image=image, name=f"jenkinsctl-test-{node}-{root.name[-6:]}", node=node,
                                    group=agent_group(str(root), **changes), labels=TEST_LABELS)
    kwargs["restart_policy"] = {"Name": "no"}
    c = client.containers.create(**kwargs)
    try:
        install_agent_keys(c, keystore, node)
        c.start()
        status = c.wait(timeout=60)["StatusCode"]
        logs = c.logs().decode()
        assert status == 1, logs
        return logs
    finally:
        remove_quietly(c)


def test_a_docker_socket_of_group_root_is_refused_with_a_hint(docker_client, agent_image, keystore,
                                                              tmp_path_factory):
    """jenkins would have to join group root, which opens every root-group
    file in the agent to builds: the agent refuses to start and says how
    to give the socket its own group."""
    from tests.support.agent import SocketProxy

    sock_dir = tmp_path_factory.mktemp("sock0")
    sock_dir.chmod(0o755)
    proxy = SocketProxy(sock_dir / "docker.sock", gid=0, mode=0o660)
    root = tmp_path_factory.mktemp("agents-gid0")
    try:
        logs = _agent_that_must_not_start(docker_client, agent_image, keystore, "agent-gid0", root=root,
                                          socket_path=str(proxy.path))
    finally:
        proxy.close()
    assert "error: /var/run/docker.sock belongs to group 0 (root)" in logs
    assert "hint: give the socket a group of its own on the host" in logs


def test_a_workspace_a_host_user_owns_is_not_taken_over(docker_client, agent_image, keystore, tmp_path_factory):
    """The entrypoint takes only the empty root-owned directory the engine
    creates for a missing bind source.  A directory that already belongs to
    someone on the host keeps its owner, and the agent refuses to start."""
    import os

    root = tmp_path_factory.mktemp("agents-owned")
    root.chmod(0o755)
    node_dir = root / "agent-owned"
    node_dir.mkdir()
    (node_dir / "notes.txt").write_text("a host user's file\n")
    os.chown(node_dir, 4242, 4242)
    logs = _agent_that_must_not_start(docker_client, agent_image, keystore, "agent-owned", root=root)
    assert f"error: the agent root {node_dir} belongs to uid 4242 on the host" in logs
    assert "hint: jenkinsctl does not take over a directory that already has an owner" in logs
    st = node_dir.stat()
    assert (st.st_uid, st.st_gid) == (4242, 4242)
    assert (node_dir / "notes.txt").stat().st_uid == 0
