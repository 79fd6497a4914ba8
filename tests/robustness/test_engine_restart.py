"""Case 20: the docker engine restarts during an idle period.

Never the engine the suite runs on: the test starts a SECOND dockerd on its
own socket, data root and exec root (/tmp/jenkinsctl-dockerd2/), with no
default bridge and no iptables rules, points a project's engine.host at it,
and restarts that one.  The agent image is copied across once (docker save |
docker load) and kept in that data root for later runs, like the first
engine's content-hash image cache; every container and network is removed
at teardown and the daemon is stopped.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time

import pytest

from tests.robustness.test_provision_faults import PW_ENV, external_config
from tests.support.agent import agent_image  # noqa: F401

ROOT = pathlib.Path("/tmp/jenkinsctl-dockerd2")
SOCK = ROOT / "docker.sock"
HOST = f"unix://{SOCK}"


class SecondEngine:
    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.log = ROOT / "dockerd.log"

    def start(self, timeout: float = 60) -> None:
        ROOT.mkdir(exist_ok=True)
        for d in ("data", "exec"):
            (ROOT / d).mkdir(exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["dockerd", "--host", HOST, "--data-root", str(ROOT / "data"), "--exec-root", str(ROOT / "exec"),
                 "--pidfile", str(ROOT / "dockerd.pid"), "--bridge", "none", "--iptables=false",
                 "--ip-masq=false", "--containerd-namespace", "jenkinsctl-dockerd2",
                 "--containerd-plugins-namespace", "jenkinsctl-dockerd2-plugins"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"second dockerd exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            if self.ping():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"second dockerd not up in {timeout}s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def ping(self) -> bool:
        import docker

        try:
            c = docker.DockerClient(base_url=HOST, timeout=5)
            ok = c.ping()
            c.close()
            return ok
        except Exception:  # noqa: BLE001
            return False

    def stop(self, timeout: float = 60) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def client(self):
        import docker

        return docker.DockerClient(base_url=HOST, timeout=120)


@pytest.fixture
def engine2(docker_engine, agent_image):  # noqa: F811
    eng = SecondEngine()
    eng.start()
    client = eng.client()
    try:
        try:
            client.images.get(agent_image)
        except Exception:  # noqa: BLE001 - not there yet: copy it across once
            save = subprocess.Popen(["docker", "save", agent_image], stdout=subprocess.PIPE)
            load = subprocess.run(["docker", "-H", HOST, "load", "-q"], stdin=save.stdout, capture_output=True)
            save.stdout.close()
            assert save.wait() == 0 and load.returncode == 0, load.stderr
        yield eng
    finally:
        try:
            if eng.ping():
                c = eng.client()
                for ctr in c.containers.list(all=True):
                    ctr.remove(force=True, v=True)
                for net in c.networks.list():
                    if net.name not in ("bridge", "host", "none"):
                        net.remove()
                for vol in c.volumes.list():
                    vol.remove(force=True)
        finally:
            eng.stop()


@pytest.mark.case(20)
def test_engine_restart_while_idle_is_reported_and_apply_brings_all_back(engine2, fake_jenkins_factory, agent_image,  # noqa: F811
                                                                         project_name, cli, tmp_path, figure):
    import json

    emu = fake_jenkins_factory()
    cfg = external_config(tmp_path, project_name, emu.url, agent_image, engine={"host": HOST, "timeout": 30})
    up = cli("-c", cfg, "apply", "--wait-timeout", "120", env=PW_ENV, timeout=300)
    assert up.rc == 0, up.output[-3000:]
    c2 = engine2.client()
    label = {"label": f"io.jenkinsctl.project={project_name}"}
    assert len(c2.containers.list(filters=label)) == 2
    time.sleep(1)  # idle

    engine2.stop()
    start = time.monotonic()
    down = cli("-c", cfg, "-o", "json", "status", env=PW_ENV, timeout=60)
    status_s = time.monotonic() - start
    text = down.output
    assert HOST in text or str(SOCK) in text, text
    assert down.rc != 0 or '"unknown"' in text, text
    engine2.start()
    restarted = time.monotonic()
    after = cli("-c", cfg, "-o", "json", "status", env=PW_ENV, timeout=60)
    assert after.rc == 0, after.output
    seen = {a["node"]: (a["state"], a["node_state"]) for a in json.loads(after.stdout)["agents"]}

    again = cli("-c", cfg, "apply", "--wait-timeout", "120", env=PW_ENV, timeout=300)
    assert again.rc == 0, again.output[-3000:]
    back = time.monotonic() - restarted
    final = json.loads(cli("-c", cfg, "-o", "json", "status", env=PW_ENV, timeout=60).stdout)
    for a in final["agents"]:
        assert a["state"].startswith("running") and a["node_state"] == "online", a
    assert all(n["online"] for n in emu.state()["nodes"].values())
    assert len(c2.containers.list(all=True, filters=label)) == 2  # no duplicates
    # the nodes point at where the agents listen now (a published port may
    # change across an engine restart), and those agents answer SSH there
    from jenkinsctl.jenkins_api import JenkinsAPI, node_fields
    from tests.support.agent import wait_for_sshd

    api = JenkinsAPI(emu.url, "admin", PW_ENV["JENKINSCTL_JENKINS_PASSWORD"], timeout=10)
    ports = {}
    for ctr in c2.containers.list(filters=label):
        node = ctr.labels["io.jenkinsctl.node"]
        port = int(ctr.ports["22/tcp"][0]["HostPort"])
        assert node_fields(api.node_config(node))["port"] == str(port), node
        wait_for_sshd(port, timeout=10)
        ports[node] = port
    figure(status_engine_down_s=round(status_s, 2), status_exit=down.rc, after_restart=seen,
           back_online_s=round(back, 1))
