"""SSH launch against real sshd containers, as the ssh-slaves plugin does it."""
from __future__ import annotations

import time

import jenkins
import pytest

from emulator_helpers import CREDS, SSH, V, jenkins_post_xml, password_credential_xml, pinned, raw, ssh_key_credential_xml
from tests.fakejenkins.sshkeys import generate

pytestmark = [pytest.mark.engine, pytest.mark.slow]


@pytest.fixture(scope="module")
def agent(sshd_agent_factory):
    return sshd_agent_factory()


@pytest.fixture(scope="module")
def agent_without_java(sshd_agent_factory):
    return sshd_agent_factory(no_java=True)


@pytest.fixture
def client(jenkins_client, client_key):
    jenkins_post_xml(jenkins_client, CREDS + "createCredentials",
                     ssh_key_credential_xml("agent-key", "jenkins", client_key.private_openssh))
    return jenkins_client


def create(client, name, agent, strategy="pinned", remote_fs=None, cred="agent-key", retries=2, port=None, **extra):
    params = {"host": agent.host, "port": port or agent.port, "credentialsId": cred,
              "maxNumRetries": retries, "retryWaitTime": 15, "launchTimeoutSeconds": 20, **extra}
    if strategy == "pinned":
        params["sshHostKeyVerificationStrategy"] = pinned(agent.host_key.pin)
    elif strategy is not None:
        params["sshHostKeyVerificationStrategy"] = strategy
    client.create_node(name, remoteFS=remote_fs or f"/home/jenkins/{name}", launcher=SSH, launcher_params=params)


def settle(emu, client, name):
    emu.wait_for_launch(name, timeout=90)
    return client.get_node_info(name)


def test_launch_with_pinned_host_key_goes_online(fake_jenkins, client, agent):
    create(client, "ok", agent)
    info = settle(fake_jenkins, client, "ok")
    assert (info["offline"], info["offlineCause"], info["offlineCauseReason"]) == (False, None, "")
    assert info["icon"] == "symbol-computer"
    assert agent.exec("test -f /home/jenkins/ok/remoting.jar && stat -c %U /home/jenkins/ok/remoting.jar") == (0, "jenkins\n")
    comp = fake_jenkins.computer("ok")
    assert comp.launch_attempts == 1 and comp.security_warnings == []
    log = raw(fake_jenkins, "GET", "computer/ok/logText/progressiveText").text
    assert "has been verified" in log and "Agent successfully connected and online" in log
    # an online node: python-jenkins' disable/enable now work as meant
    client.disable_node("ok", "patching")
    assert client.get_node_info("ok")["temporarilyOffline"] is True
    client.enable_node("ok")
    assert client.get_node_info("ok")["offline"] is False


@pytest.mark.parametrize("strategy", [None, {"stapler-class": V + "NonVerifyingKeyVerificationStrategy"}],
                         ids=["no-strategy", "non-verifying"])
def test_non_verifying_connects_but_records_a_security_warning(fake_jenkins, client, agent, strategy):
    create(client, "nv", agent, strategy=strategy)
    assert settle(fake_jenkins, client, "nv")["offline"] is False
    [warning] = fake_jenkins.computer("nv").security_warnings
    assert "not verified" in warning and "man in the middle" in warning
    assert fake_jenkins.security_warnings[0]["node"] == "nv"
    assert fake_jenkins.state()["nodes"]["nv"]["securityWarnings"] == [warning]


def test_wrong_client_key_fails_without_retrying(fake_jenkins, jenkins_client, agent):
    jenkins_post_xml(jenkins_client, CREDS + "createCredentials",
                     ssh_key_credential_xml("stranger", "jenkins", generate().private_openssh))
    create(jenkins_client, "badkey", agent, cred="stranger")
    info = settle(fake_jenkins, jenkins_client, "badkey")
    assert info["offline"] is True and info["temporarilyOffline"] is False
    assert info["offlineCause"]["_class"] == "hudson.slaves.OfflineCause$LaunchFailed"
    assert "Authentication failed" in info["offlineCauseReason"]
    assert "authorized_keys" in info["offlineCauseReason"]
    assert fake_jenkins.computer("badkey").launch_attempts == 1


def test_password_credential_against_key_only_sshd(fake_jenkins, jenkins_client, agent):
    jenkins_post_xml(jenkins_client, CREDS + "createCredentials", password_credential_xml("pw", "jenkins", "x"))
    create(jenkins_client, "pw", agent, cred="pw")
    reason = settle(fake_jenkins, jenkins_client, "pw")["offlineCauseReason"]
    assert "Authentication failed" in reason and "password" in reason


def test_wrong_host_key_fails_after_retries(fake_jenkins, client, agent):
    create(client, "mitm", agent, strategy=pinned(generate().pin), retries=2)
    info = settle(fake_jenkins, client, "mitm")
    assert info["offline"] is True
    assert "Host key verification failed" in info["offlineCauseReason"]
    assert fake_jenkins.computer("mitm").launch_attempts == 3  # first try + maxNumRetries
    assert agent.exec("test -e /home/jenkins/mitm")[0] != 0  # never logged in


def test_fixing_the_pin_with_reconfig_relaunches_online(fake_jenkins, client, agent):
    create(client, "fixme", agent, strategy=pinned(generate().pin), retries=0)
    assert settle(fake_jenkins, client, "fixme")["offline"] is True
    xml = client.get_node_config("fixme")
    wrong = xml.split("<rawKey>")[1].split("</rawKey>")[0]
    fixed = xml.replace(wrong.split()[1], agent.host_key.b64).replace("<rawKey>" + wrong + "</rawKey>", "")
    client.reconfig_node("fixme", fixed)
    assert settle(fake_jenkins, client, "fixme")["offline"] is False


def test_relaunch_of_an_online_agent_is_already_launched_and_disconnect_then_launch_reconnects(
        fake_jenkins, client, agent):
    create(client, "again", agent)
    settle(fake_jenkins, client, "again")
    # SlaveComputer.doLaunchSlaveAgent with a channel: the already-launched page, nothing changes.
    r = raw(fake_jenkins, "POST", "computer/again/launchSlaveAgent")
    assert r.status_code == 200 and "Already launched" in r.text
    comp = fake_jenkins.computer("again")
    assert comp.launches == 1 and comp.connected
    # Reconfiguring an online node keeps its connection (no relaunch).
    client.reconfig_node("again", client.get_node_config("again").replace("<numExecutors>1<", "<numExecutors>2<"))
    assert comp.launches == 1 and comp.connected and comp.channel is not None
    r = raw(fake_jenkins, "POST", "computer/again/doDisconnect", params={"offlineMessage": "rekey"})
    assert r.status_code == 302
    info = client.get_node_info("again")
    assert info["offline"] is True and info["temporarilyOffline"] is False
    assert info["offlineCause"]["_class"] == "hudson.slaves.OfflineCause$UserCause"
    assert info["offlineCauseReason"] == "rekey"
    # The agent process ended with its session.
    # (the [.] keeps pgrep from matching the shell that runs it)
    deadline = time.monotonic() + 5
    while agent.exec("pgrep -f 'java.*-jar remoting[.]jar' || true")[1].strip() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert agent.exec("pgrep -f 'java.*-jar remoting[.]jar' || true")[1].strip() == ""
    assert raw(fake_jenkins, "POST", "computer/again/launchSlaveAgent").status_code == 302
    assert settle(fake_jenkins, client, "again")["offline"] is False
    assert fake_jenkins.computer("again").launches == 2


def test_java_off_the_login_path_fails_at_start_and_javapath_fixes_it(fake_jenkins, client, agent_without_java):
    create(client, "nojava", agent_without_java)
    info = settle(fake_jenkins, client, "nojava")
    assert info["offline"] is True
    reason = info["offlineCauseReason"]
    assert "Agent JVM has terminated. Exit code=127" in reason and "java: command not found" in reason, reason
    log = fake_jenkins.computer("nojava").log
    assert any('Starting agent process: cd "/home/jenkins/nojava" && java  -jar remoting.jar -workDir '
               '/home/jenkins/nojava -jar-cache /home/jenkins/nojava/remoting/jarCache' in line for line in log)
    # remoting.jar was copied before the start failed, as the plugin does.
    assert agent_without_java.exec("test -f /home/jenkins/nojava/remoting.jar")[0] == 0
    java = agent_without_java.exec("ls /usr/lib/jvm/*/bin/java")[1].split()[0]
    create(client, "javapath", agent_without_java, javaPath=java)
    assert settle(fake_jenkins, client, "javapath")["offline"] is False


def test_java17_agent_fails_with_unsupported_class_version(fake_jenkins, client, sshd_agent_factory):
    old = sshd_agent_factory(java=17)
    create(client, "java17", old)
    info = settle(fake_jenkins, client, "java17")
    assert info["offline"] is True
    log = "\n".join(fake_jenkins.computer("java17").log)
    assert ("java.lang.UnsupportedClassVersionError: Main has been compiled by a more recent version of the Java "
            "Runtime (class file version 65.0), this version of the Java Runtime only recognizes class file "
            "versions up to 61.0") in log
    assert "Agent JVM has terminated. Exit code=1" in info["offlineCauseReason"]


def test_chatty_login_shell_aborts_the_launch(fake_jenkins, client, sshd_agent_factory):
    chatty = sshd_agent_factory(chatty=True)
    create(client, "chatty", chatty)
    info = settle(fake_jenkins, client, "chatty")
    assert info["offline"] is True and "garbage before a command execution" in info["offlineCauseReason"]
    log = fake_jenkins.computer("chatty").log
    assert "The received junk text is as follows:" in log and any(line.startswith("Welcome to ") for line in log)
    # Nothing was copied: the check runs before SFTP.
    assert chatty.exec("test -e /home/jenkins/chatty")[0] != 0


def test_without_sftp_the_jar_goes_over_scp(fake_jenkins, client, sshd_agent_factory):
    nosftp = sshd_agent_factory()
    code, out = nosftp.exec("sed -i '/^Subsystem/d' /etc/ssh/sshd_config && kill -HUP 1")
    assert code == 0, out
    time.sleep(0.5)
    create(client, "scp", nosftp)
    assert settle(fake_jenkins, client, "scp")["offline"] is False
    log = fake_jenkins.computer("scp").log
    assert any("SFTP failed. Copying via SCP." in line for line in log)
    assert nosftp.exec("stat -c '%a %U' /home/jenkins/scp/remoting.jar")[1] == "644 jenkins\n"


def test_read_only_remote_fs(fake_jenkins, client, agent):
    create(client, "ro", agent, remote_fs="/srv/readonly-root")
    info = settle(fake_jenkins, client, "ro")
    assert info["offline"] is True
    assert "Could not copy remoting.jar into '/srv/readonly-root' on agent" in info["offlineCauseReason"]


def test_missing_credential(fake_jenkins, jenkins_client, agent):
    create(jenkins_client, "nocred", agent, cred="nope")
    reason = settle(fake_jenkins, jenkins_client, "nocred")["offlineCauseReason"]
    assert "Cannot find SSH User credentials with id: nope" in reason


def test_connection_refused_retries_then_gives_up(fake_jenkins, client, agent):
    import socket

    with socket.socket() as s:  # a port on 127.0.0.1 that nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    create(client, "down", agent, port=closed, retries=3)
    info = settle(fake_jenkins, client, "down")
    assert "Cannot connect to 127.0.0.1" in info["offlineCauseReason"]
    comp = fake_jenkins.computer("down")
    assert comp.launch_attempts == 4
    assert sum("retrying in 15 seconds" in line for line in comp.log) == 3


def test_deleting_a_launching_node_stops_its_launch(fake_jenkins, client, agent):
    create(client, "gone", agent, port=9, retries=50)
    client.delete_node("gone")
    assert not client.node_exists("gone")
    assert "gone" not in fake_jenkins.computers
