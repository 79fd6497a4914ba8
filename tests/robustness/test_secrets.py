"""Case 10: the registry password is absent from process argv during a
ship (build with the docker CLI, push, deploy), from `docker inspect` Env and
Cmd of the image and the deployed container, from `docker history
--no-trunc`, from the command's output, and from ~/.docker/config.json and
any per-run DOCKER_CONFIG afterwards.

The password is looked for in every form it could leak in: as is, its
unique core (so JSON- or shell-escaped copies count too), and base64 of
"user:password" (the form docker login writes).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import uuid

import pytest

from tests.robustness.conftest import REPO, remove_project, write_config
from tests.support.fixtures import registry  # noqa: F401
from tests.support.registry import free_port


class ArgvSampler:
    """Reads every process's /proc/PID/cmdline in a loop until stopped."""

    def __init__(self, needles: list[bytes]) -> None:
        self.needles = needles
        self.samples = 0
        self.processes: set[int] = set()
        self.hits: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                        argv = fh.read()
                except OSError:
                    continue
                self.processes.add(int(entry.name))
                if any(n in argv for n in self.needles):
                    self.hits.append(argv.replace(b"\0", b" ").decode(errors="replace")[:300])
            self.samples += 1

    def __enter__(self) -> "ArgvSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.mark.case(10)
@pytest.mark.parametrize("source", ["env", "file"])
def test_registry_secret_leaks_nowhere(source, docker_engine, registry, cli, tmp_path, figure):  # noqa: F811
    project = f"robust-secret-{uuid.uuid4().hex[:6]}"
    repo = f"{registry.url}/robust/{project}"
    port = free_port()
    cname = f"{project}-web"
    home = tmp_path / "home"
    home.mkdir()
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    cfg = write_config(tmp_path / "c.yaml", "\n".join([
        f"project: {project}", f"state_dir: {tmp_path}/state", f"registry: {{url: \"{registry.url}\"}}",
        "deploy:", "  targets:", "    web:", "      strategy: container", f"      target: {cname}",
        f"      ports: [\"127.0.0.1:{port}:8080\"]",
        # Proxy mode (the default with ports): the proxy's inspect and argv
        # are searched too; no watch window, the secret search needs none.
        "      proxy: {watch: 0}",
        f"      health: {{http: \"http://127.0.0.1:{port}/health\", interval: 0.2}}", ""]))
    password = registry.password
    env = {"HOME": str(home), "TMPDIR": str(tmpdir), "JENKINSCTL_REGISTRY_USERNAME": registry.username}
    if source == "env":
        env["JENKINSCTL_REGISTRY_PASSWORD"] = password
    else:
        pw_file = tmp_path / "registry-password"
        pw_file.write_text(password + "\n")
        pw_file.chmod(0o600)
        env["JENKINSCTL_REGISTRY_PASSWORD_FILE"] = str(pw_file)
    core = password[:15].encode()  # "pw-" + 12 random characters
    userpass = base64.b64encode(f"{registry.username}:{password}".encode())
    needles = [password.encode(), core, userpass]
    try:
        with ArgvSampler(needles) as sampler:
            # positive control: a process that does carry the secret is seen
            control = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1)", "control", core.decode()])
            control.wait()
            seen_control = [h for h in sampler.hits if " control " in h]
            sampler.hits = [h for h in sampler.hits if " control " not in h]
            run = cli("-c", cfg, "ship", str(REPO / "examples" / "webapp"), "--image", repo, "--tag", "s1",
                      "--build-arg", "APP_VERSION=secret-test", "--to", "web", env=env, timeout=240)
        assert run.rc == 0, run.output[-3000:]
        places: dict[str, str] = {"stdout+stderr": run.output}
        img = docker_engine.images.get(f"{repo}:s1")
        places["image Env+Cmd+Labels"] = json.dumps([img.attrs["Config"].get(k) for k in ("Env", "Cmd", "Labels")])
        places["docker history --no-trunc"] = json.dumps(docker_engine.api.history(img.id))
        ctr = docker_engine.containers.get(cname)
        places["container Env+Cmd+Args"] = json.dumps([ctr.attrs["Config"].get("Env"), ctr.attrs["Config"].get("Cmd"),
                                                      ctr.attrs.get("Args"), ctr.attrs["Config"].get("Labels")])
        for f in [p for p in home.rglob("*") if p.is_file()] + [p for p in tmpdir.rglob("*") if p.is_file()]:
            places[str(f)] = f.read_text(errors="replace")
        for where, text in places.items():
            for n in needles:
                assert n.decode() not in text, f"the registry secret leaked into {where}"
        assert seen_control, "the argv sampler missed the control process"
        assert sampler.hits == [], f"secret in process argv: {sampler.hits[:3]}"
        docker_config = home / ".docker" / "config.json"
        assert not docker_config.exists() or "auths" not in json.loads(docker_config.read_text() or "{}") or \
            registry.url not in json.loads(docker_config.read_text())["auths"]
        leftovers = sorted(str(p.relative_to(tmpdir)) for p in tmpdir.iterdir())
        assert leftovers == [], f"per-run files left in TMPDIR: {leftovers}"
        figure(source=source, argv_samples=sampler.samples, processes_seen=len(sampler.processes),
               places_checked=len(places) + 1)
    finally:
        # The app, its proxy, the proxy's network and volume: each run's
        # network would otherwise take one of the engine's ~30 address pools.
        remove_project(docker_engine, project)
        for i in docker_engine.images.list(name=repo, all=True):
            try:
                docker_engine.images.remove(i.id, force=True)
            except Exception:  # noqa: BLE001
                pass
