"""The engines a benchmark runs on, side by side in one run:

* ``host``: the machine's engine (/var/run/docker.sock; 20.10 with API 1.41
  on Debian 12), with a registry on 127.0.0.1;
* ``modern``: Debian 13's dockerd 26.1 refusing API < 1.44 as Docker 29
  does (tests/support/modern_engine.py: its own network namespace, its
  registry inside it, its Debian 13 CLI with buildx).

For each, the plain docker CLI to compare against is the one jenkinsctl
itself would pick for that engine (never one the engine refuses).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass, field
from typing import Callable, Iterator

from jenkinsctl.engine import DockerCLI, docker_clis, engine_version, pick_cli

NAMES = ("host", "modern")


@dataclass
class Engine:
    name: str
    env: dict[str, str]            # for jenkinsctl and the docker CLI: DOCKER_HOST, PATH, registry credentials
    registry: object               # tests.support.registry.Registry (url, username, password, port)
    cli: DockerCLI                 # the plain CLI, with BuildKit, that this engine accepts
    http_host: str                 # where ports published by this engine are reached from here
    version: str = ""
    load: Callable[[str], None] = field(default=lambda ref: None)

    def docker(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([self.cli.path, *args], env=self.env, capture_output=True, text=True, check=check, **kw)

    def plain_build(self, ref: str, ctx: str, *extra: str) -> tuple[list[str], dict[str, str]]:
        """The plain command: ``docker buildx build`` with buildx, else
        ``DOCKER_BUILDKIT=1 docker build``."""
        if self.cli.buildx:
            return [self.cli.path, "buildx", "build", "--progress=plain", "-t", ref, *extra, ctx], self.env
        return [self.cli.path, "build", "--progress=plain", "-t", ref, *extra, ctx], dict(self.env, DOCKER_BUILDKIT="1")

    def describe(self) -> str:
        return f"{self.name} engine {self.version}, CLI {self.cli.describe()}{' + buildx' if self.cli.buildx else ''}"


def _base_env() -> dict[str, str]:
    # An installed jenkinsctl runs from bytecode; PYTHONDONTWRITEBYTECODE (set
    # in some CI images) would recompile it on every run, so it is dropped.
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("JENKINSCTL_", "DOCKER_")) and k != "PYTHONDONTWRITEBYTECODE"}


def _pick(env: dict[str, str], host: str) -> tuple[DockerCLI, str]:
    v = engine_version(host=host)
    cli = pick_cli(docker_clis(env), v, buildkit=True)
    if cli is None:
        raise SystemExit(f"no docker CLI with BuildKit that the engine at {host} ({v.describe()}) accepts")
    return cli, v.version


@contextlib.contextmanager
def host_engine() -> Iterator[Engine]:
    from tests.support.registry import start_registry

    reg = start_registry(auth=True)
    try:
        env = dict(_base_env(), DOCKER_HOST="unix:///var/run/docker.sock", **reg.env)
        cli, version = _pick(env, env["DOCKER_HOST"])
        yield Engine("host", env, reg, cli, "127.0.0.1", version)
    finally:
        reg.stop()


@contextlib.contextmanager
def modern_engine() -> Iterator[Engine]:
    from tests.support.modern_engine import start_modern_engine, stop_modern_engine

    eng = start_modern_engine(log=lambda m: print(m, flush=True))
    try:
        env = dict(_base_env(), DOCKER_HOST=eng.host, **eng.registry.env)
        env["PATH"] = os.pathsep.join([os.path.dirname(eng.cli), env.get("PATH", "")])
        cli, version = _pick(env, eng.host)
        yield Engine("modern", env, eng.registry, cli, eng.ns_ip, version, load=eng.load_image)
    finally:
        stop_modern_engine(eng)


STARTERS = {"host": host_engine, "modern": modern_engine}


def engines_arg(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in NAMES]
    if bad or not names:
        raise SystemExit(f"--engines: unknown {', '.join(bad) or '(none)'}; use a comma list of {', '.join(NAMES)}")
    return names
