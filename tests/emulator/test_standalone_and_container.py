"""``python -m tests.fakejenkins`` on 127.0.0.1, and the emulator as a container
on a project network, reaching an sshd agent by container name."""
from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jenkins
import pytest
import requests

from emulator_helpers import CREDS, SSH, jenkins_post_xml, pinned, ssh_key_credential_xml
from tests.fakejenkins.fixtures import LABELS

ROOT = Path(__file__).resolve().parents[2]


def start_cli(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakejenkins", "--port", "0", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"on (127\.0\.0\.1):(\d+)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"no address in {line!r}; stderr: {proc.stderr.read()}")
    return proc, f"http://127.0.0.1:{m.group(2)}/"


@pytest.fixture
def cli():
    procs = []

    def run(*args):
        proc, url = start_cli(*args)
        procs.append(proc)
        return url

    yield run
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def test_cli_users_tokens_reader_startup(cli):
    url = cli("--user", "alice:pw", "--token", "alice:tok123", "--read-only-user", "bob:bobpw", "--startup-seconds", "0.5")
    assert requests.get(url + "api/json", auth=("alice", "pw"), timeout=5).status_code == 503
    time.sleep(0.6)
    alice = jenkins.Jenkins(url, "alice", "tok123", timeout=5)
    assert alice.get_whoami()["id"] == "alice"
    alice.create_node("a1", launcher=jenkins.LAUNCHER_JNLP)  # token: crumb not needed, but python-jenkins sends one
    bob = jenkins.Jenkins(url, "bob", "bobpw", timeout=5)
    assert bob.node_exists("a1")
    with pytest.raises(jenkins.JenkinsException, match="403"):
        bob.delete_node("a1")
    assert requests.get(url + "api/json", auth=("alice", "nope"), timeout=5).status_code == 401
    log = requests.get(url + "_emulator/requests", timeout=5).json()
    assert [(e["method"], e["user"], e["status"]) for e in log if e["method"] == "POST"] == [
        ("POST", "alice", 302), ("POST", "bob", 403)]


def test_cli_no_crumbs(cli):
    url = cli("--no-crumbs")
    assert requests.get(url + "crumbIssuer/api/json", auth=("admin", "admin"), timeout=5).status_code == 404


def test_cli_never_answer(cli):
    url = cli("--never-answer")
    with pytest.raises(requests.ReadTimeout):
        requests.get(url, timeout=0.5)


def test_cli_never_answer_listens_before_it_prints_its_address(monkeypatch):
    # The test above connects as soon as it reads the address; if the line came
    # before listen(), that connect was refused on a busy machine. Here the
    # connect happens inside the print itself, so the order is checked exactly.
    from tests.fakejenkins import __main__ as cli_main

    servers: list = []

    class Recorded(cli_main.SilentServer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            servers.append(self)

    class ConnectOnPrint(io.StringIO):
        outcome: str | None = None

        def write(self, text):
            m = re.search(r"on 127\.0\.0\.1:(\d+)", text)
            if m and self.outcome is None:
                try:
                    socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=2).close()
                    self.outcome = "connected"
                except OSError as exc:
                    self.outcome = f"refused: {exc}"
                servers[-1]._stop.set()
            return super().write(text)

    out = ConnectOnPrint()
    monkeypatch.setattr(cli_main, "SilentServer", Recorded)
    monkeypatch.setattr(sys, "stdout", out)
    assert cli_main.main(["--never-answer", "--port", "0"]) == 0
    assert out.outcome == "connected"


def test_cli_rejects_bad_user_spec():
    res = subprocess.run([sys.executable, "-m", "tests.fakejenkins", "--port", "0", "--user", "nocolon"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "NAME:" in res.stderr


@pytest.mark.engine
@pytest.mark.slow
def test_container_emulator_launches_agent_by_name(docker_engine, emulator_image, test_network, sshd_agent_factory,
                                                   client_key):
    agent = sshd_agent_factory(network=test_network)
    name = f"jenkinsctl-test-fakejenkins-{uuid.uuid4().hex[:10]}"
    container = docker_engine.containers.run(
        emulator_image, ["--user", "admin:pw", "--token", "admin:tok", "--time-scale", "0.01"],
        name=name, detach=True, labels=LABELS, network=test_network, ports={"8080/tcp": ("127.0.0.1", None)})
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url, timeout=2).headers.get("X-Jenkins"):
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, container.logs().decode(errors="replace")
            time.sleep(0.2)
        client = jenkins.Jenkins(url, "admin", "tok", timeout=10)
        jenkins_post_xml(client, CREDS + "createCredentials",
                         ssh_key_credential_xml("agent-key", "jenkins", client_key.private_openssh))
        client.create_node("by-name", remoteFS="/home/jenkins/agent", launcher=SSH, launcher_params={
            "host": agent.name, "port": 22, "credentialsId": "agent-key", "maxNumRetries": 3, "retryWaitTime": 15,
            "sshHostKeyVerificationStrategy": pinned(agent.host_key.pin)})
        deadline = time.monotonic() + 60
        while True:
            state = requests.get(url + "_emulator/state", timeout=5).json()["nodes"]["by-name"]
            if not state["launching"]:
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.3)
        info = client.get_node_info("by-name")
        assert (info["offline"], info["offlineCauseReason"]) == (False, ""), json.dumps(state, indent=1)
        assert agent.exec("test -f /home/jenkins/agent/remoting.jar")[0] == 0
        posts = [e for e in requests.get(url + "_emulator/requests", timeout=5).json() if e["method"] == "POST"]
        assert [(e["path"], e["auth"], e["status"]) for e in posts] == [
            ("/credentials/store/system/domain/_/createCredentials", "token", 200),
            ("/computer/doCreateItem", "token", 302)]
    finally:
        container.remove(force=True, v=True)
