"""How jenkinsctl reaches the deploy proxy's runtime API, on the real engine
and the real HAProxy: straight through the admin socket in the proxy's
volume when the engine runs here and the process may open it (root), and
through ``docker exec`` of socat in the proxy otherwise.  A rollback's
result says which one its switch used (``proxy_api``), so a direct path that
silently never engaged fails here rather than only making rollbacks slow."""

from __future__ import annotations

import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from jenkinsctl.deploy.proxy import Proxy, ProxySettings
from tests.deploy.helpers import PREFIX, result_of, run_cli, wait_http, write_config
from tests.deploy.load import Load
from tests.support.engine import IN_CI
from tests.support.registry import free_port

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def served(docker_client, example_images, registry):
    """A proxy-mode target that served v1 then v2 (v1 kept): (config, port,
    name, env)."""
    name = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    port = free_port()
    work = tempfile.mkdtemp(prefix="jenkinsctl-proxy-api-")
    cfg = write_config(pathlib.Path(work) / "j.yaml", {"web": {
        "strategy": "container", "target": name, "ports": [f"127.0.0.1:{port}:8080"],
        "proxy": {"watch": 0, "drain": 10},
        "health": {"http": f"http://127.0.0.1:{port}/health", "timeout": 30, "interval": 0.2}}})
    env = {**registry.env, "JENKINSCTL_REGISTRY_URL": registry.url}
    try:
        for v in ("v1", "v2"):
            result_of(run_cli("--config", cfg, "-o", "json", "deploy", "--image", example_images[v].pinned,
                              "--to", "web", env=env))
        assert wait_http("127.0.0.1", port) == "2.0.0"
        yield cfg, port, name, env
    finally:
        for c in docker_client.containers.list(all=True, filters={"name": name}):
            if c.name == name or c.name.startswith(name + "."):
                c.remove(force=True)
        Proxy(docker_client, name, {}, ProxySettings()).remove()
        shutil.rmtree(work, ignore_errors=True)


def _socket_path(docker_client, name: str) -> str:
    proxy = docker_client.containers.get(f"{name}.proxy")
    gen = proxy.labels["io.jenkinsctl.proxy-generation"]
    mountpoint = docker_client.api.inspect_volume(f"{name}.proxy-run")["Mountpoint"]
    return f"{mountpoint}/g{gen}.sock"


def _rollback_under_load(port: int, run):
    with Load(port, rate=100, threads=4) as load:
        time.sleep(0.3)
        out = run()
        returned = load.snapshot()
        time.sleep(0.3)
    return out, load, returned


def test_a_rollback_on_a_local_engine_switches_through_the_admin_socket(docker_client, served):
    cfg, port, name, env = served
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("the direct runtime API needs root (the engine's volume directory is root's)")
        pytest.skip("the direct runtime API needs root (the engine's volume directory is root's)")
    # The premise: this engine's networks are interfaces here.
    assert Proxy(docker_client, name, {}, ProxySettings()).reachable_from_here()
    result, load, returned = _rollback_under_load(port, lambda: result_of(run_cli(
        "--config", cfg, "-o", "json", "rollback", "--to", "web", "--version", "v1", env=env)))
    d = result["deploy"]["details"]
    assert d["mode"] == "proxy" and d["proxy_api"] == "socket", d
    assert not load.failures, load.failures[:5]
    assert set(load.versions_since(returned)) == {"1.0.0"}
    # One runtime-API call on the socket: milliseconds, not a docker exec.
    print(f"\nrollback through the admin socket: switch {d['switch_ms']} ms, serving after {d['serving_ms']} ms")


def test_a_rollback_that_cannot_open_the_admin_socket_switches_through_docker_exec(docker_client, served):
    """jenkinsctl where the engine's networks are reachable but its volume
    directory is not (a container on the host's network with the engine's
    socket mounted, say; here a mount namespace with an empty tmpfs over
    the proxy's volume): the rollback still works, through docker exec, and
    says so; its configuration is copied in through the engine.  The
    socket's permissions are what they were."""
    cfg, port, name, env = served
    if os.geteuid() != 0 or not shutil.which("unshare"):
        why = "needs root and unshare(1) to hide the proxy's volume from one command"
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)
    path = _socket_path(docker_client, name)
    volume_dir = os.path.dirname(os.path.dirname(path))   # .../volumes/NAME.proxy-run (holds _data)
    before = os.stat(path), os.stat(os.path.dirname(path))
    assert stat.S_IMODE(before[0].st_mode) == 0o600
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("JENKINSCTL_")}
    full_env.update(env)
    current = docker_client.containers.get(name).labels["io.jenkinsctl.deploy-seq"]
    back_to = "v2" if current == "1" else "v1"
    # The mount is private to the new mount namespace: the engine and every
    # other process still see the volume.
    hide = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs -o mode=700,size=1m jenkinsctl-test "$1" && shift && exec "$@"', "hide", volume_dir]

    def rollback() -> subprocess.CompletedProcess:
        return subprocess.run([*hide, sys.executable, "-m", "jenkinsctl", "--config", cfg, "-o", "json", "rollback",
                               "--to", "web", "--version", back_to], env=full_env, text=True, capture_output=True,
                              timeout=300)

    proc, load, returned = _rollback_under_load(port, rollback)
    d = result_of(proc)["deploy"]["details"]
    assert d["mode"] == "proxy" and d["proxy_api"] == "exec", d
    assert "admin socket cannot be opened from here" in proc.stderr and "is not visible" in proc.stderr, proc.stderr
    assert not load.failures, load.failures[:5]
    want = "2.0.0" if back_to == "v2" else "1.0.0"
    assert set(load.versions_since(returned)) == {want}
    assert os.path.exists(path), "the volume was hidden from the rollback only"
    # The configuration was rewritten through the engine too: a restarted
    # proxy serves the version rolled back to.
    docker_client.containers.get(f"{name}.proxy").restart(timeout=10)
    assert wait_http("127.0.0.1", port) == want
    after = os.stat(path), os.stat(os.path.dirname(path))
    for b, a in zip(before, after):
        assert (stat.S_IMODE(a.st_mode), a.st_uid, a.st_gid) == (stat.S_IMODE(b.st_mode), b.st_uid, b.st_gid)
    print(f"\nrollback through docker exec: switch {d['switch_ms']} ms, serving after {d['serving_ms']} ms")
