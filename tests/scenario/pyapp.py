"""Helpers for the examples/pyapp scenario tests: images, the Swarm, the
database secret, HTTP probes and cleanup by ownership.

Everything created here carries io.jenkinsctl.test=1, or belongs to a stack
whose name starts with ``jctest-`` (Swarm labels a stack's services,
networks and volumes with com.docker.stack.namespace=NAME), so cleanup never
touches anything else on a shared engine.
"""

from __future__ import annotations

import http.client
import os
import pathlib
import re
import secrets
import shutil
import subprocess
import time

from tests.support.engine import TEST_LABEL, TEST_LABELS

REPO = pathlib.Path(__file__).resolve().parents[2]
PYAPP = REPO / "examples" / "pyapp"
SECRET_NAME = "pyapp_db_password"  # examples/pyapp/compose.yaml's external secret
STACK_PREFIX = "jctest-"
# Ownership labels with a test project name, for what the scenario builds
# and deploys (see build()).
OWNER_LABELS = {"io.jenkinsctl.managed": "true", "io.jenkinsctl.project": "jctest"}


def docker_cli() -> str:
    """A docker CLI that can build with BuildKit: Debian's 20.10 has it
    built in; a newer client without the buildx plugin refuses
    DOCKER_BUILDKIT=1."""
    for path in ("/usr/bin/docker", shutil.which("docker") or "docker"):
        if os.access(path, os.X_OK):
            return path
    return "docker"


def run(argv: list[str], *, input: str | None = None, env: dict | None = None, check: bool = True,
        timeout: float = 600, cwd: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def build(context: pathlib.Path, tag: str, *, build_args: dict[str, str] | None = None,
          no_cache: bool = False) -> tuple[float, str]:
    """BuildKit build on the host engine: (seconds, plain progress output)."""
    # Not io.jenkinsctl.test=1: containers inherit image labels, and other
    # test sessions remove every container with that label when they end.
    argv = [docker_cli(), "build", "--progress=plain", "-t", tag]
    for k, v in OWNER_LABELS.items():
        argv += ["--label", f"{k}={v}"]
    for k, v in (build_args or {}).items():
        argv += ["--build-arg", f"{k}={v}"]
    if no_cache:
        argv.append("--no-cache")
    t0 = time.monotonic()
    proc = run(argv + [str(context)], env={"DOCKER_BUILDKIT": "1"}, timeout=420)
    return time.monotonic() - t0, proc.stderr + proc.stdout


def cached_steps(progress: str) -> tuple[int, int]:
    """(cached, total) build steps in BuildKit's plain progress output."""
    steps = set(re.findall(r"^#(\d+) \[[^\]]*\d+/\d+\]", progress, re.M))
    cached = set(re.findall(r"^#(\d+) CACHED", progress, re.M))
    return len(cached & steps), len(steps)


def push(client, ref: str, auth: dict | None) -> str:
    """Push with docker-py, parsing the stream (push does not raise); the digest."""
    repo, _, tag = ref.rpartition(":")
    digest = None
    for ev in client.api.push(repo, tag=tag, auth_config=auth, stream=True, decode=True):
        if "error" in ev or "errorDetail" in ev:
            raise AssertionError(f"push {ref}: {ev}")
        aux = ev.get("aux") or {}
        digest = aux.get("Digest", digest)
    assert digest, f"push {ref} reported no digest"
    return digest


# --- the Swarm --------------------------------------------------------------------


def ensure_swarm(client) -> bool:
    """Make this engine a single-node Swarm manager; True when this call
    created the Swarm.  Published ports use mode=host in the compose file:
    the ingress mesh needs IPVS, which this kernel lacks."""
    state = client.info().get("Swarm", {}).get("LocalNodeState")
    if state == "active":
        return False
    proc = run([docker_cli(), "swarm", "init", "--advertise-addr", "127.0.0.1"], check=False)
    if proc.returncode != 0 and "already part of a swarm" not in proc.stderr:
        raise AssertionError(f"docker swarm init failed: {proc.stderr}")
    return proc.returncode == 0


def create_db_secret(client) -> str:
    """The stack's external secret, with a password that needs quoting in
    SQL and shells.  Returns the password."""
    remove_db_secret(client)
    password = "db-" + secrets.token_urlsafe(10) + "'\"$\\"
    client.secrets.create(name=SECRET_NAME, data=password.encode(), labels=dict(TEST_LABELS))
    return password


def remove_db_secret(client) -> None:
    import docker.errors

    for s in client.secrets.list(filters={"name": SECRET_NAME}):
        if s.name == SECRET_NAME and (s.attrs["Spec"].get("Labels") or {}).get(TEST_LABEL) == "1":
            try:
                s.remove()
            except docker.errors.APIError:
                pass


def stack_name(tag: str) -> str:
    return f"{STACK_PREFIX}{tag}-{secrets.token_hex(3)}"


def remove_stack(client, name: str, timeout: float = 60) -> None:
    """docker stack rm, then wait until its tasks' containers are gone, then
    its volumes (stack rm keeps them)."""
    import docker.errors

    assert name.startswith(STACK_PREFIX), name
    label = f"com.docker.stack.namespace={name}"
    run([docker_cli(), "stack", "rm", name], check=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = client.containers.list(all=True, filters={"label": label})
        nets = client.networks.list(filters={"label": label})
        if not busy and not nets:
            break
        time.sleep(0.5)
    # A volume is in use until its last container is gone: retry a while.
    volumes = client.volumes.list(filters={"label": label})
    while volumes:
        for v in list(volumes):
            try:
                v.remove(force=True)
                volumes.remove(v)
            except docker.errors.NotFound:
                volumes.remove(v)
            except docker.errors.APIError:
                pass
        if time.monotonic() > deadline + 30:
            break
        if volumes:
            time.sleep(1)


def remove_all_test_stacks(client) -> None:
    seen = set()
    try:
        services = client.services.list()
    except Exception:  # noqa: BLE001 - no Swarm: nothing to remove
        return
    for s in services:
        ns = (s.attrs["Spec"].get("Labels") or {}).get("com.docker.stack.namespace", "")
        if ns.startswith(STACK_PREFIX) and ns not in seen:
            seen.add(ns)
            remove_stack(client, ns)


# --- looking at the running app ---------------------------------------------------


def get(port: int, path: str = "/", timeout: float = 3) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def page(port: int) -> dict[str, str]:
    status, body = get(port, "/")
    assert status == 200, f"GET / answered {status}: {body}"
    return dict(line.split(": ", 1) for line in body.strip().splitlines())


def wait_answering(port: int, version: str, timeout: float = 60) -> None:
    """Until /health answers 200 for ``version``."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            status, body = get(port, "/health")
            last = f"{status} {body.strip()}"
            if status == 200 and f"version {version}," in body:
                return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise AssertionError(f"pyapp {version} not answering on 127.0.0.1:{port} within {timeout}s; last: {last}")


def service_task(client, service: str) -> dict:
    """The one running task of a service (ID, container id, image)."""
    tasks = [t for t in client.api.tasks(filters={"service": service, "desired-state": "running"})
             if t["Status"]["State"] == "running"]
    assert len(tasks) == 1, f"{service}: expected one running task, got {[t['Status'] for t in tasks]}"
    t = tasks[0]
    return {"task": t["ID"], "container": t["Status"]["ContainerStatus"]["ContainerID"],
            "image": t["Spec"]["ContainerSpec"]["Image"]}


def container_volumes(client, container_id: str) -> list[str]:
    attrs = client.api.inspect_container(container_id)
    return sorted(m["Name"] for m in attrs["Mounts"] if m.get("Type") == "volume")
