"""jenkinsctl doctor: is this machine ready to build, push and deploy?

One line per check, PASS or FAIL, with a hint on every failure.  Checks run
independently, so one failure does not hide the others.
"""

from __future__ import annotations

import os
import shutil
import stat
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Callable

from jenkinsctl.engine import DEFAULT_DOCKER_HOST, client
from jenkinsctl.errors import CheckFailed, EngineError, JenkinsctlError
from jenkinsctl.jenkins_api import JenkinsAPI
from jenkinsctl.registry import engine_login, registry_auth

# The engine, registry and Jenkins modules are imported by the checks that
# use them: `jenkinsctl doctor --help` imports this module.

DESCRIPTION = ("Check the Docker engine, access to its socket, BuildKit, the registry and the Jenkins "
               "controller. Exits non-zero if any check fails.")
CHECKS = ("engine", "socket", "buildkit", "registry", "controller")
# BuildKit needs the session API, which engines have had since API 1.39.
BUILDKIT_MIN_API = (1, 39)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    hint: str | None = None


def add_arguments(p) -> None:
    p.add_argument("--check", action="append", choices=CHECKS, metavar="NAME",
                   help=f"run only these checks (repeatable): {', '.join(CHECKS)}")


def _engine_host(cfg) -> str:
    return cfg.engine.host or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


def check_engine(cfg, state: dict) -> Check:
    host = _engine_host(cfg)
    c = client(host, timeout=min(cfg.engine.timeout, 15), tls=cfg.engine.tls)
    v = c.version()
    state["client"], state["api"] = c, v.get("ApiVersion", "0")
    return Check("engine", True, f"{host}: engine {v.get('Version')}, API {v.get('ApiVersion')}")


def check_socket(cfg, state: dict) -> Check:
    host = _engine_host(cfg)
    if not host.startswith("unix://"):
        return Check("socket", True, f"{host} is not a local socket; access is governed by its TLS or SSH setup")
    path = host[len("unix://"):]
    try:
        st = os.stat(path)
    except OSError as exc:
        return Check("socket", False, f"{path}: {exc.strerror}", "start dockerd, or set DOCKER_HOST")
    if not stat.S_ISSOCK(st.st_mode):
        return Check("socket", False, f"{path} is not a socket", "point DOCKER_HOST at the engine's socket")
    detail = f"{path}: owner uid {st.st_uid}, group id {st.st_gid}, mode {stat.S_IMODE(st.st_mode):o}"
    if os.access(path, os.R_OK | os.W_OK):
        warn = "; note: anyone who can use this socket is root on the host"
        return Check("socket", True, detail + warn)
    return Check("socket", False, detail + f"; uid {os.getuid()} may not use it",
                 f"add this user to a group with id {st.st_gid} (e.g. 'usermod -aG docker USER', then log in "
                 "again); in an agent container, create a group with that id for the jenkins user. Never "
                 "chmod 666 the socket: access to it is root on the host")


def check_buildkit(cfg, state: dict) -> Check:
    cli = shutil.which("docker")
    api = state.get("api")
    if api is None:
        return Check("buildkit", False, "engine not reachable", "fix the engine check first")
    version = tuple(int(x) for x in api.split(".")[:2])
    if version < BUILDKIT_MIN_API:
        return Check("buildkit", False, f"engine API {api} predates BuildKit",
                     "upgrade the engine to 18.09 or later; builds use the classic builder meanwhile")
    if not cli:
        return Check("buildkit", False, "no docker CLI on PATH; builds fall back to the classic builder "
                     "(a separate, colder cache)", "install the docker CLI (Debian: docker.io)")
    return Check("buildkit", True, f"DOCKER_BUILDKIT=1 with {cli} on engine API {api}")


def check_registry(cfg, state: dict) -> Check:
    url = cfg.registry.url
    local = url.split(":")[0] in ("localhost", "127.0.0.1", "::1")
    base = f"{'http' if local else 'https'}://{url}/v2/"
    try:
        urllib.request.urlopen(base, timeout=10).close()
        status = 200
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check("registry", False, f"{base}: {reason}",
                     "start the registry, or set registry.url / JENKINSCTL_REGISTRY_URL")
    if status not in (200, 401):
        return Check("registry", False, f"{base} answered {status}; not a registry API",
                     "registry.url must be host[:port] of a Docker registry (v2 API)")
    auth = registry_auth(cfg, os.environ)
    if not auth:
        note = " (it requires auth; none configured)" if status == 401 else ""
        return Check("registry", status == 200, f"{url} reachable{note}",
                     None if status == 200 else "set JENKINSCTL_REGISTRY_USERNAME and JENKINSCTL_REGISTRY_PASSWORD")
    c = state.get("client")
    if c is None:
        return Check("registry", False, f"{url} reachable; auth not checked: engine not reachable",
                     "fix the engine check first")
    try:
        engine_login(c, auth, url)
    except EngineError as exc:
        return Check("registry", False, f"{url}: login as {auth['username']} failed: "
                     f"{getattr(exc, 'explanation', None) or exc.message}",
                     "check JENKINSCTL_REGISTRY_USERNAME / JENKINSCTL_REGISTRY_PASSWORD(_FILE)")
    return Check("registry", True, f"{url} reachable, login as {auth['username']} works")


def check_controller(cfg, state: dict) -> Check:
    url = cfg.controller.url
    timeout = min(cfg.controller.timeout, 15)
    # Every Jenkins answer carries X-Jenkins, the 403 of a secured one too,
    # so reachability needs no credentials.
    try:
        resp = urllib.request.urlopen(url.rstrip("/") + "/", timeout=timeout)
        headers, status = resp.headers, resp.status
        resp.close()
    except urllib.error.HTTPError as exc:
        headers, status = exc.headers, exc.code
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check("controller", False, f"{url}: {reason}",
                     "run 'jenkinsctl apply', or set controller.external to your controller's URL")
    version = headers.get("X-Jenkins")
    if not version:
        hint = "wait for it to finish starting" if status == 503 else "is controller.external a Jenkins URL?"
        return Check("controller", False, f"{url} answered {status} without an X-Jenkins header", hint)
    ctl = cfg.controller
    password = ctl.password.resolve() if ctl.password is not None else None
    if password is None:
        return Check("controller", True, f"{url}: Jenkins {version}; auth not checked (no password set)")
    try:
        api = JenkinsAPI(url, ctl.username, password, timeout=ctl.timeout, ready_timeout=ctl.ready_timeout)
        who = api.whoami()
    except JenkinsctlError as exc:
        return Check("controller", False, f"{url}: Jenkins {version}; auth as {cfg.controller.username} "
                     f"failed: {exc.message}", exc.hint or "check the controller password reference")
    return Check("controller", True, f"{url}: Jenkins {version}, authenticated as {who.get('id')}")


RUNNERS: dict[str, Callable] = {"engine": check_engine, "socket": check_socket, "buildkit": check_buildkit,
                                "registry": check_registry, "controller": check_controller}


def run(args, ctx):
    cfg = ctx.config
    state: dict = {}
    results = []
    for name in args.check or CHECKS:
        try:
            results.append(RUNNERS[name](cfg, state))
        except JenkinsctlError as exc:
            results.append(Check(name, False, exc.message, exc.hint))
    state.pop("client", None)
    result = {"ok": all(c.ok for c in results), "checks": [asdict(c) for c in results]}
    if not result["ok"]:
        failed = [c.name for c in results if not c.ok]
        err = CheckFailed(f"{len(failed)} check(s) failed: {', '.join(failed)}",
                          hint="fix the first failure; later checks may depend on it")
        err.result = result
        raise err
    return result


def render(result) -> str:
    lines = []
    for c in result["checks"]:
        lines.append(f"{'PASS' if c['ok'] else 'FAIL'}  {c['name']:<10}  {c['detail']}")
        if not c["ok"] and c.get("hint"):
            lines.append(f"      {'':<10}  hint: {c['hint']}")
    return "\n".join(lines)
