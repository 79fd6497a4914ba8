"""Helpers for the deploy tests: an HTTP probe loop, the CLI as a user runs
it, and configs."""

from __future__ import annotations

import collections
import http.client
import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import yaml

from tests.support.engine import TEST_LABEL

# Not TEST_LABELS ("1"): other test sessions on a shared engine remove
# everything labelled io.jenkinsctl.test=1 when they end, which would pull
# containers out from under a deploy in progress.  Containers inherit the
# label from the test images; tests/deploy/conftest.py cleans up its own.
DEPLOY_TEST_LABELS = {TEST_LABEL: "deploy"}
PREFIX = "jcdeploy-"   # names of containers, networks and services made here

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "webapp"


class ProbeLoop:
    """GET a URL every ``interval`` seconds in a thread; record what answered.

    ``versions`` is the answer sequence with repeats collapsed, so a clean
    switch reads ["1.0.0", "2.0.0"]; ``failures`` counts refused, reset or
    non-200 probes; ``longest_gap_ms`` is the longest run of failures."""

    def __init__(self, host: str, port: int, path: str = "/version", interval: float = 0.01) -> None:
        self.host, self.port, self.path, self.interval = host, port, path, interval
        self.results: list[tuple[float, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _once(self) -> str | None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=1)
        try:
            conn.request("GET", self.path)
            resp = conn.getresponse()
            body = resp.read().decode().strip()
            return body if resp.status == 200 else None
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.results.append((time.monotonic(), self._once()))
            time.sleep(self.interval)

    def __enter__(self) -> "ProbeLoop":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def answers(self) -> collections.Counter:
        return collections.Counter(v for _, v in self.results if v is not None)

    @property
    def failures(self) -> int:
        return sum(1 for _, v in self.results if v is None)

    @property
    def versions(self) -> list[str | None]:
        out: list[str | None] = []
        for _, v in self.results:
            if v is not None and (not out or out[-1] != v):
                out.append(v)
        return out

    @property
    def longest_gap_ms(self) -> float:
        longest, start, last_ok = 0.0, None, None
        for t, v in self.results:
            if v is None and start is None:
                start = last_ok if last_ok is not None else t
            elif v is not None:
                if start is not None:
                    longest = max(longest, t - start)
                    start = None
                last_ok = t
        if start is not None and self.results:   # still failing when the loop stopped
            longest = max(longest, self.results[-1][0] - start)
        return round(longest * 1000, 1)


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("JENKINSCTL_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "jenkinsctl", *args], env=full_env, cwd=cwd, text=True,
                          capture_output=True, timeout=timeout)


def write_config(path: pathlib.Path, targets: dict, project: str = "jctest") -> str:
    doc = {"version": 1, "project": project, "deploy": {"targets": targets}}
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return str(path)


def result_of(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return json.loads(proc.stdout)


def wait_http(host: str, port: int, path: str = "/version", timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        conn = http.client.HTTPConnection(host, port, timeout=1)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read().decode().strip()
            if resp.status == 200:
                return body
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        if time.monotonic() > deadline:
            raise AssertionError(f"http://{host}:{port}{path} did not answer within {timeout}s")
        time.sleep(0.1)
