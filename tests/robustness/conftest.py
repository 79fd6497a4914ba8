"""The robustness and security suite (issue 8): shared fixtures and the
figures file.

Every test is marked ``@pytest.mark.case(N)`` with its case number and
records its figures with the ``figure`` fixture (tests/support/report.py,
where tests in other directories mark their cases too).

Everything a test creates on an engine carries ``io.jenkinsctl.test=1`` (or
the ownership labels of a throw-away test project) and is removed at
teardown, failed test or not.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import pytest

from tests.fakejenkins.fixtures import (  # noqa: F401
    ADMIN, ADMIN_PASSWORD, ADMIN_TOKEN, client_key, docker_engine, emulator_image, fake_jenkins,
    fake_jenkins_factory, jenkins_client, silent_server, sshd_agent_factory, sshd_image, sshd_image_java17, test_network,
)

REPO = pathlib.Path(__file__).resolve().parents[2]
PYTHON = sys.executable


# --- running the CLI as a user would ----------------------------------------------


@dataclass
class Run:
    argv: list[str]
    rc: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_kib: int
    pid: int = 0

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment minus anything that could steer jenkinsctl from outside
    the test (a developer's JENKINSCTL_* or DOCKER_HOST)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("JENKINSCTL_") and k not in ("DOCKER_HOST", "DOCKER_CONFIG")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def jenkinsctl(*args: str, env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None,
               timeout: float = 300, on_start=None) -> Run:
    """Run ``python -m jenkinsctl ARGS`` and measure it: wall time and the
    process's peak RSS (VmHWM, sampled every 20 ms until it exits).  ``on_start``
    gets the Popen object while the command runs (for sampling /proc)."""
    argv = [PYTHON, "-m", "jenkinsctl", *args]
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=clean_env(env), cwd=cwd or REPO, text=True)
    out: list[str] = []
    err: list[str] = []
    readers = [threading.Thread(target=lambda s, b: b.append(s.read()), args=(proc.stdout, out), daemon=True),
               threading.Thread(target=lambda s, b: b.append(s.read()), args=(proc.stderr, err), daemon=True)]
    for t in readers:
        t.start()
    if on_start is not None:
        on_start(proc)
    deadline = start + timeout
    status = None
    peak = 0
    while True:
        # VmHWM of the exec'd image, sampled until exit.  (wait4's ru_maxrss
        # would also count the forked copy of this pytest process.)
        peak = max(peak, _vm_hwm(proc.pid))
        pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            _, status, _ = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    seconds = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in readers:
        t.join(10)
    timed_out = time.monotonic() > deadline
    run = Run(argv, proc.returncode, "".join(out), "".join(err), seconds, peak, proc.pid)
    if timed_out:
        raise AssertionError(f"jenkinsctl {' '.join(args)} still ran after {timeout}s:\n{run.output[-3000:]}")
    return run


def _vm_hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@pytest.fixture
def cli():
    return jenkinsctl


def write_config(path: pathlib.Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def remove_project(client, project: str) -> None:
    """Remove every container, network and volume with ``project``'s
    ownership label (and nothing else)."""
    label = {"label": [f"io.jenkinsctl.project={project}"]}
    for c in client.containers.list(all=True, filters=label):
        try:
            c.remove(force=True, v=True)
        except Exception:  # noqa: BLE001 - gone already
            pass
    for n in client.networks.list(filters=label):
        try:
            n.remove()
        except Exception:  # noqa: BLE001
            pass
    for v in client.volumes.list(filters=label):
        try:
            v.remove(force=True)
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture
def project_name(docker_engine):
    """A fresh test project name; whatever carries its ownership label is
    removed at teardown."""
    import uuid

    name = f"robust-{uuid.uuid4().hex[:8]}"
    yield name
    remove_project(docker_engine, name)


# --- an HTTP proxy that can drop cookies, and records headers ----------------------


class RecordingProxy:
    """A plain HTTP/1.1 forwarder on 127.0.0.1 in front of another 127.0.0.1
    server.  It records each request's method, path and headers, and with
    ``drop_cookies`` strips the Cookie header, the way a misconfigured
    reverse proxy loses the Jenkins session (and so every crumb)."""

    def __init__(self, upstream_port: int, drop_cookies: bool = False) -> None:
        import http.client
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        proxy = self
        self.drop_cookies = drop_cookies
        self.requests: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def _relay(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                if proxy.drop_cookies:
                    headers = {k: v for k, v in headers.items() if k.lower() != "cookie"}
                proxy.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers)})
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response_only(resp.status, resp.reason)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _relay

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    def posts(self) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST"]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def recording_proxy():
    made: list[RecordingProxy] = []

    def make(upstream_port: int, drop_cookies: bool = False) -> RecordingProxy:
        p = RecordingProxy(upstream_port, drop_cookies)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()
