"""Build, tag and push images on the host engine.

* Tags: an immutable tag per build (see ``default_tags``), and moving tags
  (``latest``, a branch name) set only after the immutable tag is pushed
  (see ``moving_tags``).
* Build: BuildKit through the docker CLI, on the engine's own builder so the
  host's cache is shared, or docker-py's classic builder.  Output is
  streamed line by line; a failure raises BuildError with the failing step's
  output.
* Push: the engine's push stream is parsed (docker-py never raises on a
  failed push: the error is an entry in the stream), transient registry
  errors are retried with a bounded backoff, permanent ones fail at once,
  and the pushed digest is reported.

Library functions take the engine client as an argument; they never read
argv and never exit.  Registry credentials reach the engine only in the
X-Registry-Auth header of the push request: never in argv, build args,
labels, a config file on disk, or an error message.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import fnmatch
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from jenkinsctl.errors import BuildError, EngineError, RegistryError, UsageError
from jenkinsctl.refs import Reference, parse, parse_repository, validate_tag
from jenkinsctl.secrets import check_secret, redact, sensitive, sensitive_basic

LineSink = Callable[[str], None]

OCI = "org.opencontainers.image."
SHA_LEN = 12  # fixed, so one commit gets the same tag in every clone
JOB_PART_MAX = 48  # the branch/job part of a default tag; keeps the tag far below 128 characters
TAIL_LINES = 25  # lines of the failing step shown in a BuildError
# Waits between push attempts: crane-like (1 s, 3 s, ...), capped, so the
# default 4 attempts wait at most 1 + 3 + 6 = 10 s in all.
PUSH_BACKOFF = (1.0, 3.0, 6.0, 10.0)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\r")


def stderr_sink(strip_ansi: bool | None = None) -> LineSink:
    """A line sink writing to stderr, without terminal escapes unless
    stderr is a terminal (Jenkins' console is not)."""
    if strip_ansi is None:
        strip_ansi = not sys.stderr.isatty()

    def sink(line: str) -> None:
        if strip_ansi:
            line = _ANSI.sub("", line)
        sys.stderr.write(redact(line) + "\n")  # a RUN step may echo a secret
        sys.stderr.flush()

    return sink


def _discard(line: str) -> None:
    pass


# --- git and the Jenkins environment -----------------------------------------------


def _git(context: str, *args: str) -> subprocess.Popen | None:
    if shutil.which("git") is None:
        return None
    return subprocess.Popen(["git", "-C", context, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)


def _out(proc: subprocess.Popen | None) -> str | None:
    if proc is None:
        return None
    out, _ = proc.communicate()
    return out.strip() if proc.returncode == 0 and out.strip() else None


@dataclass(frozen=True)
class GitFacts:
    sha: str | None = None          # full commit id
    dirty: bool = False             # the context differs from the commit
    branch: str | None = None       # None when detached
    remote: str | None = None       # origin's URL, credentials removed


def git_facts(context: str, *, want_dirty: bool = True, want_branch: bool = False,
              want_remote: bool = True) -> GitFacts:
    """What git knows about ``context``, asked with concurrent git calls.
    Outside a work tree (or without git) every field is empty."""
    procs = {"sha": _git(context, "rev-parse", "--verify", "-q", "HEAD")}
    if want_dirty:
        procs["dirty"] = _git(context, "status", "--porcelain", "--", ".")
    if want_branch:
        procs["branch"] = _git(context, "symbolic-ref", "--short", "-q", "HEAD")
    if want_remote:
        procs["remote"] = _git(context, "config", "--get", "remote.origin.url")
    out = {k: _out(p) for k, p in procs.items()}
    sha = out["sha"]
    return GitFacts(sha=sha, dirty=bool(sha and out.get("dirty")), branch=out.get("branch"),
                    remote=_clean_url(out.get("remote")))


def _clean_url(url: str | None) -> str | None:
    """A remote URL without user:token@ (Jenkins checkouts often embed one)."""
    if not url:
        return None
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", url)


def _now(now: _dt.datetime | None, environ: Mapping[str, str]) -> _dt.datetime:
    if now is not None:
        return now.astimezone(_dt.timezone.utc)
    sde = environ.get("SOURCE_DATE_EPOCH", "")
    if sde.isdigit():
        return _dt.datetime.fromtimestamp(int(sde), _dt.timezone.utc)
    return _dt.datetime.now(_dt.timezone.utc)


def _stamp(t: _dt.datetime) -> str:
    return t.strftime("%Y%m%dT%H%M%SZ")


def default_tags(context: str, environ: Mapping[str, str], *, now: _dt.datetime | None = None,
                 facts: GitFacts | None = None) -> list[str]:
    """The immutable tag of a build, when no --tag is given:

    ==============================  ====================================  ===================================
    where                           tag                                   example
    ==============================  ====================================  ===================================
    git, in Jenkins (BUILD_NUMBER)  SHA12-JOB-bBUILD_NUMBER               3f2a9c1b7d4e-feature-x-b42
    git, clean, not in Jenkins      SHA12                                 3f2a9c1b7d4e
    git, uncommitted changes        SHA12-dirty-YYYYMMDDTHHMMSSZ (UTC)    3f2a9c1b7d4e-dirty-20250102T030405Z
    no git, in Jenkins              JOB-bBUILD_NUMBER                     feature-x-b42
    no git, not in Jenkins          YYYYMMDDTHHMMSSZ (UTC)                20250102T030405Z
    ==============================  ====================================  ===================================

    SHA12 is the first 12 hex digits of the commit of the context (12, not
    git's variable --short length, so every clone names a commit the same).
    In Jenkins the build number is part of the tag because a re-run of the
    same commit is a new image (new ``created`` label) and must not overwrite
    the tag of an image that may already be deployed.  JOB is BRANCH_NAME
    (multibranch pipelines), else JOB_NAME, made tag-safe (``feature/x`` ->
    ``feature-x``; longer than JOB_PART_MAX: cut, plus 6 hex digits of the
    name's sha256): every branch job of a multibranch pipeline counts its
    builds from 1, so two branches at one commit would otherwise both build
    ``SHA12-b7``, and two concurrent ships would push over each other's tag.
    Without BRANCH_NAME and JOB_NAME it is left out (``SHA12-bBUILD_NUMBER``).
    A dirty tree gets a timestamp for the same reason as the build number.
    Outside git, GIT_COMMIT (set by Jenkins' git plugin) stands in for the
    commit.  "UTC" is the build's start time, or SOURCE_DATE_EPOCH when set.
    The tag is checked against the reference grammar.
    """
    build_number = (environ.get("BUILD_NUMBER") or "").strip()
    if facts is None:
        facts = git_facts(context, want_dirty=not build_number, want_remote=False)
    sha = facts.sha or (environ.get("GIT_COMMIT") or "").strip() or None
    job = _job_part(environ) if build_number else None
    jenkins = "-".join(p for p in (job, f"b{build_number}") if p)
    if sha and build_number:
        tag = f"{sha[:SHA_LEN]}-{jenkins}"
    elif sha and facts.dirty:
        tag = f"{sha[:SHA_LEN]}-dirty-{_stamp(_now(now, environ))}"
    elif sha:
        tag = sha[:SHA_LEN]
    elif build_number:
        tag = jenkins
    else:
        tag = _stamp(_now(now, environ))
    return [validate_tag(tag)]


def _job_part(environ: Mapping[str, str]) -> str | None:
    """The branch (BRANCH_NAME) or else the job (JOB_NAME) of a Jenkins
    build as a tag part; None when neither is set."""
    name = (environ.get("BRANCH_NAME") or "").strip() or (environ.get("JOB_NAME") or "").strip()
    if not name:
        return None
    part = _branch_tag(name)
    if len(part) > JOB_PART_MAX:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:6]
        part = f"{part[:JOB_PART_MAX - 7].rstrip('.-')}-{digest}"
    return part


def current_branch(context: str, environ: Mapping[str, str]) -> str | None:
    """BRANCH_NAME (multibranch pipelines), else GIT_BRANCH without its
    remote prefix, else git's current branch; None when detached."""
    if environ.get("BRANCH_NAME"):
        return environ["BRANCH_NAME"]
    gb = environ.get("GIT_BRANCH")
    if gb:
        for prefix in ("refs/heads/", "refs/remotes/origin/", "origin/"):
            if gb.startswith(prefix):
                return gb[len(prefix):]
        return gb
    return git_facts(context, want_dirty=False, want_branch=True, want_remote=False).branch


def _branch_tag(branch: str) -> str:
    t = re.sub(r"[^A-Za-z0-9_.-]+", "-", branch).lstrip(".-")[:128]
    return t or "branch"


def moving_tags(branch: str | None, moving: Mapping[str, Sequence[str]]) -> list[str]:
    """The moving tags this branch may set.  ``moving`` maps a tag to the
    branch patterns allowed to set it (shell globs: ``main``, ``release/*``);
    a tag ``{branch}`` stands for the branch name made tag-safe
    (``feature/x`` -> ``feature-x``).  No branch (detached HEAD) sets none."""
    if not branch:
        return []
    out: list[str] = []
    for tag, patterns in moving.items():
        if any(fnmatch.fnmatchcase(branch, p) for p in patterns):
            t = tag.replace("{branch}", _branch_tag(branch)) if "{branch}" in tag else tag
            validate_tag(t)
            if t not in out:
                out.append(t)
    return out


def oci_labels(context: str, environ: Mapping[str, str], *, version: str | None = None,
               now: _dt.datetime | None = None, facts: GitFacts | None = None) -> dict[str, str]:
    """org.opencontainers.image.{revision,source,created,version} from git
    and the Jenkins environment; keys whose value is unknown are left out.
    ``version`` defaults to the default immutable tag.  No credentials:
    the source URL is stripped of any user:token@."""
    if facts is None:
        facts = git_facts(context, want_dirty=version is None and not environ.get("BUILD_NUMBER"))
    labels: dict[str, str] = {}
    revision = facts.sha or (environ.get("GIT_COMMIT") or "").strip()
    if revision:
        labels[OCI + "revision"] = revision
    source = facts.remote or _clean_url((environ.get("GIT_URL") or "").strip())
    if source:
        labels[OCI + "source"] = source
    labels[OCI + "created"] = _now(now, environ).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels[OCI + "version"] = version or default_tags(context, environ, now=now, facts=facts)[0]
    return labels


@dataclass(frozen=True)
class TagPlan:
    immutable: list[str]   # pushed first; at least one
    moving: list[str]      # pushed only after every immutable tag is


def plan_tags(context: str, environ: Mapping[str, str], *, explicit: Sequence[str] = (),
              moving: Mapping[str, Sequence[str]] | None = None, branch: str | None = None,
              now: _dt.datetime | None = None, facts: GitFacts | None = None) -> TagPlan:
    """--tag values when given (they replace the default immutable tag),
    else ``default_tags``; plus the moving tags the branch may set."""
    immutable = [validate_tag(t) for t in explicit] or default_tags(context, environ, now=now, facts=facts)
    mov: list[str] = []
    if moving:
        if branch is None:
            branch = current_branch(context, environ)
        mov = [t for t in moving_tags(branch, moving) if t not in immutable]
    return TagPlan(immutable=list(dict.fromkeys(immutable)), moving=mov)


# --- the engine ---------------------------------------------------------------------


class LazyEngine:
    """An engine address that becomes a docker-py client on first use.

    A BuildKit build needs only the engine's address and one ping, so the
    ``build`` command passes this instead of a client and never pays for
    importing docker-py (about 0.4 s here, several times an unchanged
    BuildKit build).  Any attribute a DockerClient has is forwarded.
    """

    def __init__(self, host: str | None = None, *, timeout: int = 120, tls: bool = False) -> None:
        self.host = host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self.timeout = timeout
        self.tls = tls or bool(os.environ.get("DOCKER_TLS_VERIFY"))
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from jenkinsctl.engine import client

            self._client = client(self.host, timeout=self.timeout, tls=self.tls)
        return self._client

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.client, name)


class EngineAPIError(Exception):
    """An engine API answer >= 400 (the shape of docker.errors.APIError)."""

    def __init__(self, status_code: int, explanation: str) -> None:
        super().__init__(f"{status_code}: {explanation}")
        self.status_code = status_code
        self.explanation = explanation


class EngineAPI:
    """The four engine calls a push needs (inspect, tag, list, push), with
    docker-py's method signatures, over http.client on a unix or plain TCP
    socket.  ``jenkinsctl push`` uses it so a push of an unchanged image is
    not dominated by importing docker-py; everything else uses docker-py."""

    def __init__(self, host: str, timeout: float = 120) -> None:
        self.host, self.timeout = host, timeout
        self._prefix: str | None = None

    def _version_prefix(self) -> str:
        """``/vX.Y`` with the engine's own API version (from /_ping), as
        docker-py's version="auto" does: one client for 20.10 (1.41 at most)
        and engines that refuse anything below 1.44.  Unversioned paths are
        deprecated by the engine and would be its choice, not ours."""
        if self._prefix is None:
            headers = _raw_ping(self.host, timeout=self.timeout)
            api = (headers or {}).get("api-version", "")
            self._prefix = f"/v{api}" if re.fullmatch(r"\d+\.\d+", api) else ""
        return self._prefix

    @staticmethod
    def supports(host: str | None, tls: bool = False) -> bool:
        return bool(host) and not tls and (host.startswith("unix://") or host.startswith("tcp://"))

    def _connection(self):
        import http.client

        if self.host.startswith("unix://"):
            path, timeout = self.host[len("unix://"):], self.timeout

            class UnixConnection(http.client.HTTPConnection):
                def connect(self) -> None:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.settimeout(timeout)
                    sock.connect(path)
                    self.sock = sock

            return UnixConnection("localhost", timeout=timeout)
        hp = self.host[len("tcp://"):].rstrip("/")
        h, _, p = hp.rpartition(":")
        return http.client.HTTPConnection(h.strip("[]"), int(p), timeout=self.timeout)

    def _call(self, method: str, path: str, query: Mapping[str, str] | None = None,
              headers: Mapping[str, str] | None = None):
        import json
        from urllib.parse import quote, urlencode

        from jenkinsctl.engine import engine_unreachable

        url = quote(self._version_prefix() + path, safe="/:@") + ("?" + urlencode(query) if query else "")
        conn = self._connection()
        try:
            conn.request(method, url, headers=dict(headers or {}))
            resp = conn.getresponse()
        except OSError as exc:
            conn.close()
            raise engine_unreachable(self.host, exc) from None
        if resp.status >= 400:
            body = resp.read()
            conn.close()
            try:
                message = json.loads(body).get("message") or ""
            except (ValueError, AttributeError):
                message = body.decode("utf-8", "replace").strip()
            from jenkinsctl.engine import version_refusal

            refused = version_refusal(message, client="jenkinsctl's push client", host=self.host)
            if refused is not None:
                raise refused
            raise EngineAPIError(resp.status, message or resp.reason)
        return conn, resp

    def _json(self, method: str, path: str, query=None):
        import json

        conn, resp = self._call(method, path, query)
        try:
            data = resp.read()
        finally:
            conn.close()
        return json.loads(data) if data.strip() else None

    def inspect_image(self, image: str) -> dict:
        return self._json("GET", f"/images/{image}/json")

    def tag(self, image: str, repository: str, tag: str | None = None) -> bool:
        self._json("POST", f"/images/{image}/tag", {"repo": repository, **({"tag": tag} if tag else {})})
        return True

    def images(self, name: str | None = None) -> list:
        import json

        return self._json("GET", "/images/json", {"filters": json.dumps({"reference": [name]})} if name else None)

    def push(self, repository: str, tag: str | None = None, stream: bool = True, decode: bool = True,
             auth_config: Mapping[str, str] | None = None):
        import base64
        import json

        headers = {}
        if auth_config:  # the same header docker-py sends
            headers["X-Registry-Auth"] = base64.urlsafe_b64encode(json.dumps(dict(auth_config)).encode()).decode()
        conn, resp = self._call("POST", f"/images/{repository}/push", {"tag": tag} if tag else None, headers)

        def entries():
            buf = b""
            try:
                while True:
                    chunk = resp.read1(65536)
                    if not chunk:
                        break
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        if line.strip():
                            yield json.loads(line)
                if buf.strip():
                    yield json.loads(buf)
            finally:
                conn.close()

        return entries()


def engine_api(client, auth: Mapping[str, str] | None = None):
    """The API object a push uses: the light EngineAPI for a LazyEngine on
    a plain socket when credentials are given; docker-py otherwise (it also
    knows the user's ~/.docker/config.json and credential helpers)."""
    if isinstance(client, LazyEngine) and auth and EngineAPI.supports(client.host, client.tls):
        return EngineAPI(client.host, client.timeout)
    return client.api


def docker_host(client) -> str | None:
    """The DOCKER_HOST value that reaches the same engine as ``client``."""
    if isinstance(client, LazyEngine):
        return client.host
    api = getattr(client, "api", client)
    adapter = getattr(api, "_custom_adapter", None)
    if getattr(adapter, "socket_path", None):
        return "unix://" + adapter.socket_path
    if getattr(adapter, "ssh_host", None):
        return "ssh://" + adapter.ssh_host
    base = getattr(api, "base_url", "") or ""
    for scheme in ("http://", "https://"):
        if base.startswith(scheme):
            return "tcp://" + base[len(scheme):]
    return os.environ.get("DOCKER_HOST")


def _raw_ping(host: str, timeout: float = 5.0) -> dict[str, str] | None:
    """GET /_ping's headers over a plain socket (unix:// or tcp:// without
    TLS); None when that is not possible, so the caller asks docker-py."""
    try:
        if host.startswith("unix://"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(host[len("unix://"):])
        elif host.startswith("tcp://"):
            hp = host[len("tcp://"):].rstrip("/")
            h, _, p = hp.rpartition(":")
            s = socket.create_connection((h.strip("[]"), int(p)), timeout=timeout)
        else:
            return None
        with s:
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except (OSError, ValueError):
        return None
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    if not head or " 200 " not in head[0] + " ":
        return None
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}


def _engine_version(client):
    """The engine's versions (API range and OS): over a plain socket for a
    LazyEngine, so a BuildKit build never imports docker-py."""
    from jenkinsctl.engine import engine_version

    host = docker_host(client) if isinstance(client, LazyEngine) and not client.tls else None
    return engine_version(client, host=host)


def _engine_api(client) -> tuple[str, str]:
    """(API version, OS type) of the engine."""
    v = _engine_version(client)
    return v.api, v.os


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


_cli_cache: dict[str, str | None] = {}


def find_buildkit_cli(environ: Mapping[str, str] | None = None) -> str | None:
    """The first docker CLI that can build with BuildKit at all, whatever
    the engine: one with the buildx plugin, else one older than 23 (BuildKit
    built in).  ``resolve_builder`` also checks the engine accepts it."""
    from jenkinsctl.engine import docker_clis, pick_cli

    environ = os.environ if environ is None else environ
    key = environ.get("JENKINSCTL_DOCKER_CLI", "") + "|" + environ.get("PATH", "")
    if key not in _cli_cache:
        cli = pick_cli(docker_clis(environ), None, buildkit=True)
        _cli_cache[key] = cli.path if cli else None
    return _cli_cache[key]


def _cli_has_buildkit(cli: str) -> bool:
    from jenkinsctl.engine import probe_cli

    probed = probe_cli(cli)
    return bool(probed and probed.can_buildkit)


def resolve_builder(client, builder: str = "auto", environ: Mapping[str, str] | None = None,
                    log: LineSink = _discard) -> tuple[str, Any]:
    """("buildkit", DockerCLI) or ("classic", None) for ``builder``.

    Every ``docker`` on PATH (or JENKINSCTL_DOCKER_CLI alone) is probed:
    its API version, and whether it has buildx.  A CLI whose newest API is
    below the engine's MinAPIVersion is never picked (Docker 29 would
    refuse it); among the others the first with buildx wins, a pre-23 CLI
    with built-in BuildKit is the fallback.  When only refused CLIs can
    build with BuildKit, an explicit choice (--builder buildkit,
    JENKINSCTL_DOCKER_CLI) is an EngineVersionError and auto falls back to
    the classic builder, whose docker-py negotiates the version.
    """
    from jenkinsctl.engine import api_tuple, cli_refused, docker_clis, pick_cli

    if builder not in ("auto", "buildkit", "classic"):
        raise UsageError(f"unknown builder '{builder}'", hint="use auto, buildkit or classic")
    if builder == "classic":
        return "classic", None
    environ = os.environ if environ is None else environ
    capable = [c for c in docker_clis(environ) if c.can_buildkit]
    if not capable:
        if builder == "buildkit":
            raise UsageError("--builder buildkit: no docker CLI that can use BuildKit was found",
                             hint="install Docker's CLI (with the buildx plugin for CLI 23+), set "
                                  "JENKINSCTL_DOCKER_CLI to one, or use --builder classic")
        return "classic", None
    engine = _engine_version(client)
    if engine.os.lower() != "linux" or api_tuple(engine.api) < (1, 31):
        if builder == "buildkit":
            raise UsageError(f"--builder buildkit: the engine (API {engine.api}, {engine.os}) has no BuildKit",
                             hint="BuildKit needs a Linux engine with API 1.31 or later; use --builder classic")
        return "classic", None
    cli = pick_cli(capable, engine, buildkit=True)
    if cli is None:
        refused = cli_refused(max(capable, key=lambda c: api_tuple(c.api)), engine, docker_host(client))
        if builder == "buildkit" or environ.get("JENKINSCTL_DOCKER_CLI"):
            raise refused
        log(f"note: {refused.message}; building with the classic builder instead")
        return "classic", None
    return "buildkit", cli


# --- build ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    refs: list[str]
    builder: str
    cached_steps: int
    total_steps: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_BK_LINE = re.compile(r"^#(\d+) (.*)$")
_BK_VERTEX_ID = re.compile(r"^#\d+ sha256:[0-9a-f]{64}$")
_BK_STEP = re.compile(r"^\[(?:[^\]\s]+ )?(\d+)/(\d+)\] (.*)$")


class BuildKitProgress:
    """Follows ``--progress=plain`` output: which vertex is which step,
    which were cached, and each vertex's lines for the error report."""

    def __init__(self) -> None:
        self.steps: dict[int, str] = {}       # vertex -> "[2/3] RUN ..."
        self.cached: set[int] = set()
        self.errored: list[int] = []
        self.lines: dict[int, list[str]] = {}
        self.other: list[str] = []            # lines outside any vertex

    def feed(self, line: str) -> None:
        m = _BK_LINE.match(line)
        if not m:
            if line.strip():
                self.other.append(line)
            return
        v, text = int(m.group(1)), m.group(2)
        if v not in self.steps and text.startswith("["):
            step = _BK_STEP.match(text)
            if step:
                self.steps[v] = text
        if text == "CACHED":
            self.cached.add(v)
        elif text.startswith("ERROR"):
            self.errored.append(v)
        if not text.startswith("sha256:"):
            self.lines.setdefault(v, []).append(text)

    def _counted(self) -> list[int]:
        return [v for v, t in self.steps.items() if not _BK_STEP.match(t).group(3).startswith("FROM ")]

    @property
    def total_steps(self) -> int:
        return len(self._counted())

    @property
    def cached_steps(self) -> int:
        return sum(1 for v in self._counted() if v in self.cached)

    def failure(self) -> tuple[str, list[str], str]:
        """(step, its output tail, the error line) for a failed build."""
        summary = next((ln for ln in reversed(self.other)
                        if ln.strip() and not ln.startswith("------") and not ln.startswith(" >")), "")
        summary = summary.removeprefix("ERROR: ").strip()
        if self.errored:
            v = self.errored[0]
            step = self.steps.get(v) or (self.lines.get(v, ["?"])[0])
            out = [re.sub(r"^\d+\.\d+ ", "", ln) for ln in self.lines.get(v, [])[1:]
                   if ln != "CACHED" and not ln.startswith(("DONE", "ERROR"))]
            return step, out[-TAIL_LINES:], summary or (out[-1] if out else "")
        return "", self.other[-TAIL_LINES:], summary


class ClassicProgress:
    """Follows docker-py's decoded classic build stream."""

    _STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
    FS_STEPS = ("RUN", "COPY", "ADD", "WORKDIR")

    def __init__(self, added_labels: Iterable[str] = ()) -> None:
        self.step: str = ""
        self.step_lines: list[str] = []
        self.cached = 0
        self.non_from = 0
        # The engine turns each label passed to the build into a "LABEL k=v"
        # step of its own; those are not the Dockerfile's steps.
        self._added = tuple(f"LABEL {k}=" for k in added_labels)
        self._counting = False
        self.image_id: str | None = None
        self.error: str | None = None
        self._last_status: dict[str, str] = {}

    def feed(self, entry: Mapping[str, Any]) -> list[str]:
        """Consume one stream entry; return the lines to show."""
        shown: list[str] = []
        if "stream" in entry:
            for line in str(entry["stream"]).splitlines():
                m = self._STEP.match(line)
                if m:
                    self.step, self.step_lines = f"[{m.group(1)}/{m.group(2)}] {m.group(3)}", []
                    instruction = m.group(3)
                    # Count what BuildKit shows as steps: instructions that
                    # change the file system, not FROM or metadata (ARG, ENV...).
                    self._counting = (instruction.split(" ", 1)[0].upper() in self.FS_STEPS
                                      and not instruction.startswith(self._added))
                    self.non_from += self._counting
                elif line.strip() == "---> Using cache":
                    self.cached += self._counting
                else:
                    self.step_lines.append(line)
                if line.strip():
                    shown.append(line)
        if "aux" in entry and isinstance(entry["aux"], dict) and entry["aux"].get("ID"):
            self.image_id = entry["aux"]["ID"]
        if "status" in entry:
            ident = entry.get("id", "")
            status = str(entry["status"])
            if self._last_status.get(ident) != status:
                self._last_status[ident] = status
                shown.append(f"{ident}: {status}" if ident else status)
        if "errorDetail" in entry or "error" in entry:
            detail = entry.get("errorDetail") or {}
            self.error = str(detail.get("message") or entry.get("error") or "unknown error")
            shown.append(f"ERROR: {self.error}")
        return shown


def _kv_list(pairs: Mapping[str, str | None]) -> list[str]:
    return [k if v is None else f"{k}={v}" for k, v in pairs.items()]


def _check_build_inputs(context: str, dockerfile: str | None) -> tuple[str, str | None]:
    if not os.path.isdir(context):
        what = "does not exist" if not os.path.exists(context) else "is not a directory"
        raise UsageError(f"build context '{context}' {what}", hint="give the directory holding the Dockerfile")
    ctx = os.path.abspath(context)
    df = None
    if dockerfile:
        df = os.path.abspath(dockerfile)  # relative to the working directory, as with docker build -f
        if not os.path.isfile(df):
            raise UsageError(f"--file '{dockerfile}' does not exist",
                             hint="--file is relative to the current directory, as with docker build -f")
    elif not os.path.isfile(os.path.join(ctx, "Dockerfile")):
        raise UsageError(f"no Dockerfile in the build context '{context}'",
                         hint="add one, or name it with --file")
    return ctx, df


def build(client, *, context: str, repository: str, tags: Sequence[str], dockerfile: str | None = None,
          build_args: Mapping[str, str | None] = {}, target: str | None = None,  # noqa: B006 - never mutated
          labels: Mapping[str, str] = {}, pull: bool = False, no_cache: bool = False,  # noqa: B006
          cache_from: Sequence[str] = (), builder: str = "auto", log: LineSink = _discard,
          environ: Mapping[str, str] | None = None) -> BuildResult:
    """Build ``context`` and tag the image ``repository:tag`` for each tag.

    ``labels`` are used as given (merge ``oci_labels`` in first).  Build args
    end up in the image's history: they are not for secrets.  A build arg
    given as None takes its value from the environment, as ``--build-arg K``
    does with docker.  Raises BuildError with the failing step's output.
    """
    environ = os.environ if environ is None else environ
    repo = parse_repository(repository)
    if not tags:
        raise UsageError("no tags to build", hint="give at least one --tag, or leave --tag out for the default")
    for t in tags:
        validate_tag(t)
    refs = [f"{repo.repository}:{t}" for t in dict.fromkeys(tags)]
    for c in cache_from:
        parse(c)
    ctx, df = _check_build_inputs(context, dockerfile)
    args = {k: (environ.get(k) if v is None else v) for k, v in build_args.items()}
    kind, cli = resolve_builder(client, builder, environ, log)
    started = time.monotonic()
    if kind == "buildkit":
        # Bare names stay bare: the CLI reads their values from its
        # environment, so they never show on its argv (ps, /proc/PID/cmdline).
        image_id, cached, total = _build_buildkit(cli, client, ctx, df, refs, dict(build_args), target, labels,
                                                  pull, no_cache, cache_from, log, environ)
    else:
        image_id, cached, total = _build_classic(client, ctx, df, refs, args, target, labels, pull,
                                                 no_cache, cache_from, log)
    return BuildResult(image_id=image_id, refs=refs, builder=kind, cached_steps=cached, total_steps=total,
                       seconds=round(time.monotonic() - started, 3))


# What the docker CLI may see of jenkinsctl's environment.  An allow-list,
# not a deny-list: a pipeline's environment holds bound credentials under
# any name, and the CLI (and anything it runs) needs none of them.
_CLI_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "TERM", "NO_COLOR", "SSL_CERT_FILE",
            "SSL_CERT_DIR", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
            "http_proxy", "https_proxy", "no_proxy")
_CLI_ENV_PREFIXES = ("LC_", "DOCKER_", "BUILDKIT_")


def cli_environment(environ: Mapping[str, str],
                    build_args: Mapping[str, str | None] = {}) -> dict[str, str]:  # noqa: B006 - never mutated
    """The docker CLI's environment for a build: the allow-listed variables,
    plus each bare build arg (``--build-arg NAME``) it must read a value from."""
    env = {k: v for k, v in environ.items() if k in _CLI_ENV or k.startswith(_CLI_ENV_PREFIXES)}
    for k, v in build_args.items():
        if v is None and k in environ:
            env[k] = environ[k]
    return env


def buildkit_argv(cli, *, iidfile: str, refs: Sequence[str], context: str, dockerfile: str | None = None,
                  build_args: Mapping[str, str | None] = {}, labels: Mapping[str, str] = {},  # noqa: B006
                  target: str | None = None, pull: bool = False, no_cache: bool = False,
                  cache_from: Sequence[str] = ()) -> list[str]:
    """The argv of a BuildKit build with the probed ``cli`` (a DockerCLI).

    With buildx: ``docker buildx build --builder default``, the docker
    driver, so the build runs on the engine's own BuildKit and its cache
    and the image lands in the engine's image store, whatever builder the
    user selected with ``docker buildx use``.  Without buildx (a CLI older
    than 23): ``docker build``, run with DOCKER_BUILDKIT=1."""
    if cli.buildx:
        cmd = [cli.path, "buildx", "build", "--builder", "default"]
    else:
        cmd = [cli.path, "build"]
    cmd += ["--progress=plain", "--iidfile", iidfile]
    for r in refs:
        cmd += ["--tag", r]
    if dockerfile:
        cmd += ["--file", dockerfile]
    for kv in _kv_list(build_args):
        cmd += ["--build-arg", kv]
    for kv in _kv_list(labels):
        cmd += ["--label", kv]
    if target:
        cmd += ["--target", target]
    if pull:
        cmd.append("--pull")
    if no_cache:
        cmd.append("--no-cache")
    for c in cache_from:
        cmd += ["--cache-from", c]
    cmd.append(context)
    return cmd


def buildkit_env(environ: Mapping[str, str], host: str | None,
                 build_args: Mapping[str, str | None] = {}) -> dict[str, str]:  # noqa: B006 - never mutated
    """The CLI's environment: the allow-listed variables and the bare build
    args' values (``cli_environment``), plain progress, and the same engine
    as the client."""
    env = cli_environment(environ, build_args)
    env.update(DOCKER_BUILDKIT="1", BUILDKIT_PROGRESS="plain")
    if host:
        env["DOCKER_HOST"] = host
        env.pop("DOCKER_CONTEXT", None)
    return env


def _build_buildkit(cli, client, ctx, df, refs, args, target, labels, pull, no_cache, cache_from, log,
                    environ) -> tuple[str, int, int]:
    import collections
    import tempfile

    from jenkinsctl.engine import version_refusal

    host = docker_host(client)
    env = buildkit_env(environ, host, args)
    with tempfile.TemporaryDirectory(prefix="jenkinsctl-build-") as tmp:
        iidfile = os.path.join(tmp, "iid")
        cmd = buildkit_argv(cli, iidfile=iidfile, refs=refs, context=ctx, dockerfile=df, build_args=args,
                            labels=labels, target=target, pull=pull, no_cache=no_cache, cache_from=cache_from)
        progress = BuildKitProgress()
        last = collections.deque(maxlen=50)
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env)
        except OSError as exc:
            raise BuildError(f"cannot run {cli.path}: {exc.strerror}",
                             hint="check JENKINSCTL_DOCKER_CLI / PATH") from None
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                progress.feed(line)
                last.append(line)
                if not _BK_VERTEX_ID.match(line):  # 20.10 prints each vertex's digest: noise
                    log(line)
        finally:
            rc = proc.wait()
        if rc != 0:
            # The engine refusing the CLI's API version is no build failure:
            # no Dockerfile change fixes it.
            refused = version_refusal("\n".join(last), client=f"the docker CLI {cli.describe()}", host=host)
            if refused is not None:
                raise refused
            step, tail, summary = progress.failure()
            raise _build_failed(step, tail, summary or f"docker build exited with status {rc}", "buildkit")
        try:
            with open(iidfile, encoding="utf-8") as fh:
                image_id = fh.read().strip()
        except OSError:
            raise BuildError("docker build succeeded but wrote no image id",
                             hint="check the docker CLI version (it needs --iidfile)") from None
    return image_id, progress.cached_steps, progress.total_steps


def _build_failed(step: str, tail: list[str], summary: str, builder: str) -> BuildError:
    where = f" at {step}" if step else ""
    body = "".join(f"\n  | {ln}" for ln in tail)
    return BuildError(f"build failed{where}: {summary}{body}",
                      hint="the lines above are the failing step's output; fix the Dockerfile or the "
                           "context and build again", step=step, output=tail, builder=builder)


def _build_classic(client, ctx, df, refs, args, target, labels, pull, no_cache, cache_from, log) -> tuple[str, int, int]:
    import docker.errors

    dockerfile = None
    if df:
        rel = os.path.relpath(df, ctx)
        dockerfile = df if rel.startswith("..") else rel
    progress = ClassicProgress(added_labels=labels)
    api = client.api
    try:
        stream = api.build(path=ctx, dockerfile=dockerfile, tag=refs[0], buildargs=dict(args) or None,
                           target=target, labels=dict(labels) or None, pull=pull, nocache=no_cache,
                           cache_from=list(cache_from) or None, rm=True, forcerm=True, decode=True)
        for entry in stream:
            for line in progress.feed(entry):
                log(line)
    except docker.errors.APIError as exc:
        msg = getattr(exc, "explanation", None) or str(exc)
        raise _build_failed(progress.step, progress.step_lines[-TAIL_LINES:], msg, "classic") from None
    except docker.errors.DockerException as exc:
        raise BuildError(f"build failed: {exc}") from None
    if progress.error or not progress.image_id:
        raise _build_failed(progress.step, [ln for ln in progress.step_lines if not ln.startswith(" ---> ")]
                            [-TAIL_LINES:], progress.error or "the engine reported no image id", "classic")
    for ref in refs[1:]:
        r = parse_repository(ref.rsplit(":", 1)[0])
        api.tag(progress.image_id, r.repository, ref.rsplit(":", 1)[1])
    return progress.image_id, progress.cached, progress.non_from


# --- registry credentials ---------------------------------------------------------------


DOCKER_HUB = "docker.io"
_HUB_ALIASES = ("", "docker.io", "index.docker.io", "registry-1.docker.io")


def registry_host(domain: str | None) -> str:
    """The registry a reference's domain names, for comparing: lower case,
    and Docker Hub's aliases (a name with no registry part among them) as
    docker.io."""
    d = (domain or "").strip().lower().rstrip("/")
    return DOCKER_HUB if d in _HUB_ALIASES else d


def _login_pair(username, password, what: str, environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    user = username if isinstance(username, str) or username is None else username.resolve(environ)
    pw = password.resolve(environ) if password is not None else None
    return user, pw


def registry_auth(config, environ: Mapping[str, str] | None = None, *,
                  registry: str | None = None, bound_for: str | None = None) -> dict[str, str] | None:
    """Credentials for the engine's push to ``registry``, as a docker-py auth_config.

    Credentials belong to one registry and go to no other: the main ones
    (JENKINSCTL_REGISTRY_USERNAME, and JENKINSCTL_REGISTRY_PASSWORD or the
    file named by JENKINSCTL_REGISTRY_PASSWORD_FILE, which win over
    registry.username / registry.password) only to ``registry.url``; each
    ``registry.others`` entry's only to its own ``url``.  ``registry`` is
    the image's registry (``Reference.domain``; "" is Docker Hub); None
    means ``registry.url`` itself.  None is returned for a registry without
    configured credentials: the engine then uses what the user's docker
    config holds, if anything.  Never read from argv.

    ``bound_for``: in a pipeline step, the credentials Jenkins bound for the
    step (its ``credentialsId``) belong to the registry of the image the same
    step names, so the JENKINSCTL_REGISTRY_* variables count for that
    registry instead of registry.url.
    """
    environ = os.environ if environ is None else environ
    reg = getattr(config, "registry", None)
    main_url = reg.url if reg is not None else None
    if bound_for is not None and (environ.get("JENKINSCTL_REGISTRY_PASSWORD")
                                  or environ.get("JENKINSCTL_REGISTRY_PASSWORD_FILE")):
        main_url = bound_for or DOCKER_HUB
        reg = dataclasses.replace(reg, url=main_url, username=None, password=None) if reg is not None else None
    if registry is not None and registry_host(registry) != registry_host(main_url):
        for other in getattr(reg, "others", ()) or ():
            if registry_host(other.url) == registry_host(registry):
                username, password = _login_pair(other.username, other.password, other.url, environ)
                if not username or password is None:
                    raise RegistryError(f"the credentials for registry {other.url} (registry.others) are not "
                                        "all set", hint="set the variable or file its username/password name")
                return _auth(username, password, other.url)
        return None
    username = environ.get("JENKINSCTL_REGISTRY_USERNAME") or None
    if username is None and reg is not None and reg.username is not None:
        username = reg.username if isinstance(reg.username, str) else reg.username.resolve(environ)
    password = sensitive(environ.get("JENKINSCTL_REGISTRY_PASSWORD") or None, "JENKINSCTL_REGISTRY_PASSWORD")
    source = "JENKINSCTL_REGISTRY_PASSWORD"
    if password is None and environ.get("JENKINSCTL_REGISTRY_PASSWORD_FILE"):
        path = environ["JENKINSCTL_REGISTRY_PASSWORD_FILE"]
        source = f"JENKINSCTL_REGISTRY_PASSWORD_FILE ({path})"
        try:
            with open(path, encoding="utf-8") as fh:
                password = sensitive(fh.read().rstrip("\r\n") or None, f"the registry password file {path}")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise RegistryError(f"cannot read the registry password file {path}: {why}",
                                hint="check JENKINSCTL_REGISTRY_PASSWORD_FILE and the file's permissions") from None
    if password is None and reg is not None and reg.password is not None:
        password = reg.password.resolve(environ)
        source = f"registry.password {reg.password.describe()}"
    if username is None and password is None:
        return None
    if username is None:
        raise RegistryError(f"a registry password is set ({source}) but no user name",
                            hint="set JENKINSCTL_REGISTRY_USERNAME or registry.username")
    if password is None:
        raise RegistryError(f"registry user '{username}' has no password",
                            hint="set JENKINSCTL_REGISTRY_PASSWORD or JENKINSCTL_REGISTRY_PASSWORD_FILE, "
                                 "or registry.password: {env: NAME} / {file: PATH}")
    return _auth(username, password, main_url)


def _auth(username: str, password: str, server: str | None) -> dict[str, str]:
    check_secret(username, "the registry user name")
    sensitive(password, "the registry password")
    sensitive_basic(username, password)
    auth = {"username": username, "password": password}
    if server:
        auth["serveraddress"] = server
    return auth


def image_auth(config, environ: Mapping[str, str] | None, repository: Reference, *,
               step: bool = False) -> dict[str, str] | None:
    """The credentials to send with a push or pull of ``repository``: those
    configured for its registry, else none (Docker Hub included).  With
    ``step`` (parameters from a pipeline step), the credentials the step
    bound are for ``repository``'s registry (see registry_auth)."""
    return registry_auth(config, environ, registry=repository.domain,
                         bound_for=repository.domain if step else None)


def check_no_secrets(auth: Mapping[str, str] | None, **fields: Mapping[str, str | None]) -> None:
    """Refuse build args / labels that carry the registry password: both
    are stored in the image, readable by anyone who can pull it."""
    password = (auth or {}).get("password")
    if not password:
        return
    for what, values in fields.items():
        for k, v in values.items():
            if v and password in v:
                raise UsageError(f"{what} '{k}' contains the registry password; refusing to build",
                                 hint=f"{what}s are stored in the image for anyone who can pull it; "
                                      "use a BuildKit secret mount for credentials")


# --- push ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushResult:
    digest: str              # manifest digest of the first (immutable) tag
    repository: str
    tags: list[str]          # in the order pushed: immutable first, then moving
    layers_pushed: int       # layers whose bytes were uploaded
    layers_existing: int     # layers the registry had already (or mounted)
    attempts: int            # push requests in all: one per tag when nothing was retried
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_PERMANENT = re.compile(
    r"unauthori[sz]ed|authentication required|\bdenied\b|forbidden|\b40[13]\b|name invalid|name unknown|"
    r"manifest invalid|manifest unknown|tag invalid|digest invalid|size invalid|unsupported|"
    r"does not exist locally|no such image|invalid reference|no basic auth credentials|x509|certificate|"
    r"server gave http response to https client|no such host|repository name must",
    re.IGNORECASE)
_TRANSIENT = re.compile(
    r"\b5\d\d\b|service unavailable|bad gateway|gateway time-?out|internal server error|connection reset|"
    r"broken pipe|\beof\b|timeout|timed out|connection refused|toomanyrequests|too many requests|\b429\b|"
    r"temporar|i/o timeout|connection closed|net/http",
    re.IGNORECASE)


def classify_push_error(message: str) -> str:
    """"permanent" or "transient".  Permanent wins: a 401 is never
    retried even when the text also mentions a 5xx.  Unknown errors are
    permanent, so a misconfiguration fails fast rather than slowly."""
    if _PERMANENT.search(message):
        return "permanent"
    if _TRANSIENT.search(message):
        return "transient"
    return "permanent"


class PushStream:
    """Parses one decoded push stream: layer states, digest and error."""

    _DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")

    def __init__(self) -> None:
        self.layer_state: dict[str, str] = {}
        self.digest: str | None = None
        self.error: str | None = None
        self.engine_retries = 0

    def feed(self, entry: Mapping[str, Any]) -> list[str]:
        shown: list[str] = []
        if "errorDetail" in entry or "error" in entry:
            detail = entry.get("errorDetail") or {}
            self.error = str(detail.get("message") or entry.get("error") or "unknown push error")
            return shown
        aux = entry.get("aux")
        if isinstance(aux, dict) and aux.get("Digest"):
            self.digest = str(aux["Digest"])
        status = str(entry.get("status") or "")
        ident = str(entry.get("id") or "")
        if not status:
            return shown
        if not self.digest:
            m = self._DIGEST.search(status)
            if m:
                self.digest = m.group(1)
        if ident and status not in ("Pushing",):
            previous = self.layer_state.get(ident, "")
            if previous != status:
                self.layer_state[ident] = status
                if status.startswith("Retrying in"):
                    # The engine's own upload retry counts down once a second;
                    # one line per retry is enough.
                    if not previous.startswith("Retrying in"):
                        self.engine_retries += 1
                        shown.append(f"{ident}: upload failed, the engine is retrying ({status.lower()})")
                elif status not in ("Preparing", "Waiting"):
                    shown.append(f"{ident}: {status}")
        elif not ident:
            shown.append(status)
        return shown

    def pushed(self) -> set[str]:
        return {i for i, s in self.layer_state.items() if s == "Pushed"}

    def existing(self) -> set[str]:
        return {i for i, s in self.layer_state.items()
                if s == "Layer already exists" or s.startswith("Mounted from")}


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    return PUSH_BACKOFF[min(attempt, len(PUSH_BACKOFF)) - 1]


def push(client, *, repository: str, tags: Sequence[str], auth: Mapping[str, str] | None,
         attempts: int = 4, log: LineSink = _discard, sleep: Callable[[float], None] = time.sleep,
         moving_tags: Sequence[str] = (), image_id: str | None = None) -> PushResult:
    """Push ``repository:tag`` for each tag, in order, then the moving tags.

    ``tags`` must exist locally; the first is the immutable tag and must
    succeed before anything else is pushed.  ``moving_tags`` are pointed at
    the first tag's image (``image_id`` when given) locally and pushed only
    after every tag in ``tags`` was.  Transient failures (5xx, reset, EOF,
    timeouts) are retried up to ``attempts`` times per tag, waiting
    ``backoff(n)``; permanent ones (401, 403, denied, name/manifest invalid)
    raise RegistryError at once with the registry's message.  The password
    never appears in a message.

    The engine pushes a *tag*, whatever it names when the push starts.
    With ``image_id`` (what ``ship`` just built) every tag must still name
    that image right before its push, and each pushed digest must belong to
    it afterwards; otherwise another build on this host re-tagged it in
    between and RegistryError is raised before anything further (moving
    tags, a deploy) uses the wrong image.
    """
    repo = parse_repository(repository)
    if not tags:
        raise UsageError("no tags to push", hint="give at least one --tag")
    if attempts < 1:
        raise UsageError(f"push attempts must be at least 1, not {attempts}")
    ordered = list(dict.fromkeys([validate_tag(t) for t in tags]))
    moving = [validate_tag(t) for t in dict.fromkeys(moving_tags) if t not in ordered]
    secret = (auth or {}).get("password")
    api = engine_api(client, auth)
    first_id = _local_image_id(api, repo, ordered[0])
    for t in ordered[1:]:
        _local_image_id(api, repo, t)
    source = image_id or first_id
    started = time.monotonic()
    digest: str | None = None
    pushed: set[str] = set()
    existing: set[str] = set()
    pushed_tags: set[str] = set()
    total_attempts = 0
    for i, tag in enumerate(ordered + moving):
        if tag in moving:
            api.tag(source, repo.repository, tag)
        elif image_id is not None:
            now_id = _local_image_id(api, repo, tag)
            if now_id != image_id:
                raise _retagged(repo, tag, image_id, f"now names {now_id[:19]}", pushed=sorted(pushed_tags))
        d, stream, n = _push_one(api, repo, tag, auth, attempts, log, sleep, secret)
        if image_id is not None:
            got = _pushed_image_id(api, repo, tag, d)
            if got != image_id:
                raise _retagged(repo, tag, image_id, f"was pushed as {d} ({got[:19]})",
                                pushed=sorted(pushed_tags | {tag}))
        pushed_tags.add(tag)
        total_attempts += n
        pushed |= stream.pushed()
        existing |= stream.existing()
        if i == 0:
            digest = d
        elif d != digest and tag in moving:
            raise RegistryError(f"moving tag {repo.repository}:{tag} was pushed as {d}, not {digest}",
                                hint="another push changed the image under this tag; push again")
    existing -= pushed
    assert digest is not None
    return PushResult(digest=digest, repository=repo.repository, tags=ordered + moving,
                      layers_pushed=len(pushed), layers_existing=len(existing), attempts=total_attempts,
                      seconds=round(time.monotonic() - started, 3))


def _api_errors(api) -> tuple[type, tuple[type, ...]]:
    """(API error class, connection error classes) for ``api``, so the
    light EngineAPI path never imports docker-py."""
    if isinstance(api, EngineAPI):
        import http.client

        return EngineAPIError, (OSError, http.client.HTTPException)
    import docker.errors
    import requests.exceptions

    return docker.errors.APIError, (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                                    requests.exceptions.Timeout)


def _local_image_id(api, repo: Reference, tag: str) -> str:
    api_error, conn_errors = _api_errors(api)
    ref = f"{repo.repository}:{tag}"
    try:
        return api.inspect_image(ref)["Id"]
    except api_error as exc:
        if getattr(exc, "status_code", None) == 404:
            raise RegistryError(f"no local image {ref} to push",
                                hint=f"build it first (jenkinsctl build --image {repo.repository} --tag {tag})") from None
        raise EngineError(f"cannot inspect {ref}: {getattr(exc, 'explanation', None) or exc}") from None


def _pushed_image_id(api, repo: Reference, tag: str, digest: str) -> str:
    """The local image that ``repository@digest`` names (the engine records
    it on the image it pushed); without that record, what the tag names
    now (then only a re-tag and back during the push would go unseen)."""
    api_error, _ = _api_errors(api)
    try:
        return api.inspect_image(f"{repo.repository}@{digest}")["Id"]
    except api_error as exc:
        if getattr(exc, "status_code", None) != 404:
            raise EngineError(f"cannot inspect {repo.repository}@{digest}: "
                              f"{getattr(exc, 'explanation', None) or exc}") from None
    return _local_image_id(api, repo, tag)


def _retagged(repo: Reference, tag: str, image_id: str, what: str, *, pushed: list[str]) -> RegistryError:
    done = (f"; the registry's {', '.join(pushed)} now names the other image, nothing else was pushed" if pushed
            else "; nothing was pushed")
    return RegistryError(f"{repo.repository}:{tag} {what}, not the image this run built ({image_id[:19]}): "
                         f"another build on this host re-tagged it in between{done}",
                         hint="concurrent builds of one repository need distinct tags (the default tag differs "
                              "per branch or job and build number); run again",
                         reference=f"{repo.repository}:{tag}", retryable=False)


def _push_one(api, repo: Reference, tag: str, auth, attempts: int, log: LineSink, sleep, secret):
    api_error, conn_errors = _api_errors(api)
    ref = f"{repo.repository}:{tag}"
    stream = PushStream()
    for attempt in range(1, attempts + 1):
        attempt_stream = PushStream()
        error: str | None = None
        try:
            for entry in api.push(repo.repository, tag=tag, stream=True, decode=True, auth_config=auth):
                for line in attempt_stream.feed(entry):
                    log(redact(line, secret))
            error = attempt_stream.error
            if error is None and attempt_stream.digest is None:
                error = "the engine ended the push without a digest (EOF)"
        except api_error as exc:
            error = str(getattr(exc, "explanation", None) or exc)
        except conn_errors as exc:
            error = f"connection to the engine broke during the push (EOF): {exc}"
        # Layer states accumulate across attempts: a layer pushed in attempt 1
        # is "already exists" in attempt 2 and still counts as pushed.
        for ident, state in attempt_stream.layer_state.items():
            if stream.layer_state.get(ident) != "Pushed":
                stream.layer_state[ident] = state
        if error is None:  # the engine's stream already printed "TAG: digest: ..."
            return attempt_stream.digest, stream, attempt
        error = redact(error, secret)
        kind = classify_push_error(error)
        if kind == "permanent":
            raise RegistryError(f"push of {ref} failed: {error}", hint=_permanent_hint(error, repo, auth is not None),
                                reference=ref, attempts=attempt, retryable=False)
        if attempt == attempts:
            raise RegistryError(f"push of {ref} failed after {attempt} attempts: {error}",
                                hint="the registry kept failing with transient errors; check its health and "
                                     "retry later (build.push_attempts sets the attempts)",
                                reference=ref, attempts=attempt, retryable=True)
        wait = backoff(attempt)
        log(f"{ref}: transient error (attempt {attempt}/{attempts}): {error}; retrying in {wait:g}s")
        sleep(wait)
    raise AssertionError("unreachable")


def _permanent_hint(error: str, repo: Reference, sent_auth: bool = True) -> str:
    low = error.lower()
    auth_failed = any(w in low for w in ("unauthorized", "authentication required", "401", "no basic auth"))
    if auth_failed and not sent_auth:
        where = repo.domain or "Docker Hub"
        return (f"jenkinsctl sent no credentials to {where}: credentials go only to the registry they are "
                f"configured for (registry.url, or an entry of registry.others); add {where} under "
                "registry.others with its own username and password, or push to registry.url")
    if auth_failed:
        return ("the registry rejected the credentials: check JENKINSCTL_REGISTRY_USERNAME and "
                "JENKINSCTL_REGISTRY_PASSWORD(_FILE), or registry.username/password in the config")
    if any(w in low for w in ("denied", "forbidden", "403")):
        return f"the user may not push to {repo.repository}; check its permissions on the registry"
    if "does not exist locally" in low or "no such image" in low:
        return "build the image first"
    if "https client" in low:
        return f"the engine expects TLS from {repo.domain}; add it to the engine's insecure-registries or use TLS"
    return "this error is not transient, so it was not retried"
