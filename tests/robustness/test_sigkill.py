"""Case 13: SIGKILL of jenkinsctl in the middle of a container deploy, then
a re-run of the same command.

The kill lands in the switch itself: the moment the final container
(NAME.next) exists, i.e. after the candidate passed its health gate and
around when the old container is being stopped.  The re-run must converge:
one running NAME with the new version, no candidate or .next left, the
host port served by it, and the old version kept for rollback.

The killed process leaves its deploy lock (a created container NAME.lock)
behind.  Its owner ran on this host and is gone, so the re-run breaks it at
once, without anyone removing it (it used to wait the target's whole
timeout and fail: docs/robustness.md, bug 4).
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tests.robustness.test_deploy_faults import (container_digest, deploy_config, project, ship,  # noqa: F401
                                                 wait_serving)
from tests.support.fixtures import registry  # noqa: F401
from tests.support.registry import free_port


@pytest.mark.case(13)
def test_sigkill_mid_deploy_then_rerun_converges(docker_engine, registry, project, cli, tmp_path, figure):  # noqa: F811
    name, repo = project
    port = free_port()
    cname = f"{name}-web"
    cfg = deploy_config(tmp_path, name, registry.url, {"web": (cname, port)})
    first = ship(cli, cfg, repo, registry, "--tag", "v1", "--build-arg", "APP_VERSION=1", "--to", "web")
    assert first.rc == 0, first.output[-3000:]
    second = ship(cli, cfg, repo, registry, "--tag", "v2", "--build-arg", "APP_VERSION=2")
    assert second.rc == 0, second.output[-3000:]
    killed_at: list[str] = []

    def kill_mid_switch(proc):
        def watch():
            import docker.errors

            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    state = docker_engine.api.inspect_container(f"{cname}.next")["State"]["Status"]
                except docker.errors.NotFound:
                    time.sleep(0.005)
                    continue
                os.kill(proc.pid, signal.SIGKILL)
                old = docker_engine.api.inspect_container(cname)["State"]["Status"]
                killed_at.append(f"{cname}.next {state}, {cname} {old}")
                return
        threading.Thread(target=watch, daemon=True).start()

    argv = ["-c", cfg, "deploy", "--image", f"{repo}:v2", "--to", "web", "--timeout", "60"]
    killed = cli(*argv, env=registry.env, timeout=180, on_start=kill_mid_switch)
    assert killed.rc == -signal.SIGKILL, f"not killed mid-deploy (exit {killed.rc}):\n{killed.output[-2000:]}"
    assert killed_at, "the kill never happened"
    down_while_killed = not _serves(port)
    lock = docker_engine.containers.get(f"{cname}.lock")   # left behind, and left there
    assert lock.status == "created"
    rerun = cli(*argv, env=registry.env, timeout=180)
    assert rerun.rc == 0, f"re-run after SIGKILL:\n{rerun.output[-3000:]}"
    assert "breaking the deploy lock" in rerun.stderr and "its process is gone" in rerun.stderr, rerun.stderr[-2000:]
    assert rerun.seconds < 30, f"the re-run took {rerun.seconds:.1f}s (the target's timeout is 60s)"
    assert wait_serving(f"http://127.0.0.1:{port}/version") == "2"
    mine = docker_engine.containers.list(all=True, filters={"label": f"io.jenkinsctl.project={name}"})
    names = sorted(c.name for c in mine)
    assert [c.name for c in mine if c.status == "running"] == [cname], names
    assert not [n for n in names if n.endswith((".next", ".candidate", ".lock"))], names
    assert names == sorted([cname, f"{cname}.v1"]), names
    figure(killed_with=killed_at[0], down_while_killed=down_while_killed, rerun_s=round(rerun.seconds, 1))


def _serves(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=2):
            return True
    except Exception:  # noqa: BLE001
        return False
