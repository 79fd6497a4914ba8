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
