"""Case 20: the docker engine restarts during an idle period.

Never the engine the suite runs on: the test starts a SECOND dockerd on its
own socket, data root and exec root (/tmp/jenkinsctl-dockerd2/), points a
project's engine.host at it, and restarts that one.

That dockerd runs in its own network namespace (``ip netns``), and so do the
controller emulator and every jenkinsctl command of the test: a second
dockerd in the host's namespace deletes the host's docker0 at start-up
whenever its own bridge is not docker0 (``--bridge none`` or a custom
``--bridge``), which breaks the first engine's default network for everyone
on it.  In the namespace it has a docker0 of its own, and the agents'
127.0.0.1 ports and the emulator's are that namespace's loopback.

The agent image is copied across once (docker save | docker load over the
unix socket) and kept in that data root for later runs, like the first
engine's content-hash image cache; containers, networks and volumes are
removed at teardown, the daemon and the emulator are stopped and the
namespace deleted.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.robustness.conftest import ADMIN, ADMIN_PASSWORD, REPO, clean_env
from tests.robustness.test_provision_faults import PW_ENV, external_config
from tests.support.agent import agent_image  # noqa: F401

ROOT = pathlib.Path("/tmp/jenkinsctl-dockerd2")
SOCK = ROOT / "docker.sock"
HOST = f"unix://{SOCK}"
NETNS = "jenkinsctl-dockerd2"
# nsenter switches only the network namespace; "ip netns exec" would also
# remount /sys and hide the cgroup mounts dockerd needs.
IN_NS = ["nsenter", f"--net=/run/netns/{NETNS}"]


def _docker0() -> str | None:
    """The host's docker0 as "ifindex" (None when absent): deleted and
    recreated shows as a new index."""
    out = subprocess.run(["ip", "-o", "link", "show", "docker0"], capture_output=True, text=True).stdout
    return out.split(":", 1)[0] if out else None


class SecondEngine:
    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.log = ROOT / "dockerd.log"

    def start(self, timeout: float = 60) -> None:
        for d in ("data", "exec"):
            (ROOT / d).mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                IN_NS + ["dockerd", "--host", HOST, "--data-root", str(ROOT / "data"),
                         "--exec-root", str(ROOT / "exec"), "--pidfile", str(ROOT / "dockerd.pid"),
                         "--iptables=false", "--ip-masq=false",
                         "--containerd-namespace", "jenkinsctl-dockerd2",
                         "--containerd-plugins-namespace", "jenkinsctl-dockerd2-plugins"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.proc.poll() is not None:
                raise RuntimeError(f"second dockerd exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
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


def ns_python(code: str) -> str:
    """Run Python inside the namespace (to reach its 127.0.0.1)."""
    out = subprocess.run(IN_NS + [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=REPO, env=clean_env())
    assert out.returncode == 0, out.stderr
    return out.stdout


def ns_jenkinsctl(*args: str) -> subprocess.CompletedProcess:
    start = time.monotonic()
    out = subprocess.run(IN_NS + [sys.executable, "-m", "jenkinsctl", *args], capture_output=True, text=True,
                         timeout=300, cwd=REPO, env=clean_env(PW_ENV))
    out.seconds = time.monotonic() - start  # type: ignore[attr-defined]
    return out


@pytest.fixture
def engine2(docker_engine, agent_image):  # noqa: F811
    before = _docker0()
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    emulator = None
    eng = SecondEngine()
    try:
        subprocess.run(IN_NS + ["ip", "link", "set", "lo", "up"], check=True)
        eng.start()
        client = eng.client()
        try:
            client.images.get(agent_image)
        except Exception:  # noqa: BLE001 - not there yet: copy it across once
            save = subprocess.Popen(["docker", "save", agent_image], stdout=subprocess.PIPE)
            load = subprocess.run(["docker", "-H", HOST, "load", "-q"], stdin=save.stdout, capture_output=True)
            save.stdout.close()
            assert save.wait() == 0 and load.returncode == 0, load.stderr
        with socket.socket() as s:  # any free port number; the namespace's ports are all free
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        emulator = subprocess.Popen(IN_NS + [sys.executable, "-m", "tests.fakejenkins", "--port", str(port),
                                             "--user", f"{ADMIN}:{ADMIN_PASSWORD}", "--time-scale", "0.01"],
                                    cwd=REPO, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/"
        ns_python("import time, urllib.request\nfor _ in range(100):\n    try:\n"
                  f"        urllib.request.urlopen('{url}_emulator/state', timeout=1); break\n"
                  "    except Exception: time.sleep(0.1)\n")
        yield eng, url
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
            if emulator is not None:
                emulator.terminate()
                emulator.wait(10)
            subprocess.run(["ip", "netns", "del", NETNS])
    assert _docker0() == before, "the host's docker0 was deleted or replaced during the test"


@pytest.mark.case(20)
def test_engine_restart_while_idle_is_reported_and_apply_brings_all_back(engine2, agent_image, project_name,  # noqa: F811
                                                                         tmp_path, figure):
    eng, url = engine2
    cfg = external_config(tmp_path, project_name, url, agent_image, engine={"host": HOST, "timeout": 30})
    up = ns_jenkinsctl("-c", cfg, "apply", "--wait-timeout", "120")
    assert up.returncode == 0, up.stdout + up.stderr
    c2 = eng.client()
    label = {"label": f"io.jenkinsctl.project={project_name}"}
    assert len(c2.containers.list(filters=label)) == 2
    time.sleep(1)  # idle

    eng.stop()
    down = ns_jenkinsctl("-c", cfg, "-o", "json", "status")
    text = down.stdout + down.stderr
    assert str(SOCK) in text, text
    assert down.returncode != 0 or '"unknown"' in text, text
    eng.start()
    restarted = time.monotonic()
    after = ns_jenkinsctl("-c", cfg, "-o", "json", "status")
    assert after.returncode == 0, after.stdout + after.stderr
    seen = {a["node"]: (a["state"], a["node_state"]) for a in json.loads(after.stdout)["agents"]}

    again = ns_jenkinsctl("-c", cfg, "apply", "--wait-timeout", "120")
    assert again.returncode == 0, again.stdout + again.stderr
    back = time.monotonic() - restarted
    final = json.loads(ns_jenkinsctl("-c", cfg, "-o", "json", "status").stdout)
    for a in final["agents"]:
        assert a["state"].startswith("running") and a["node_state"] == "online", a
    assert len(c2.containers.list(all=True, filters=label)) == 2  # no duplicates
    # the nodes point at where the agents listen now (a published port may
    # change across an engine restart), and sshd answers there
    ports = {}
    for ctr in c2.containers.list(filters=label):
        ports[ctr.labels["io.jenkinsctl.node"]] = int(ctr.ports["22/tcp"][0]["HostPort"])
    check = ns_python(
        "import json, socket\nfrom jenkinsctl.jenkins_api import JenkinsAPI, node_fields\n"
        f"api = JenkinsAPI('{url}', '{ADMIN}', '{ADMIN_PASSWORD}', timeout=10)\nout = {{}}\n"
        f"for node, port in {ports!r}.items():\n"
        "    s = socket.create_connection(('127.0.0.1', port), timeout=5); banner = s.recv(8); s.close()\n"
        "    out[node] = [node_fields(api.node_config(node))['port'], banner.decode()]\n"
        "print(json.dumps(out))\n")
    for node, (node_port, banner) in json.loads(check).items():
        assert node_port == str(ports[node]) and banner.startswith("SSH-"), (node, node_port, ports[node], banner)
    figure(status_engine_down_s=round(down.seconds, 2), status_exit=down.returncode, after_restart=seen,
           back_online_s=round(back, 1))
