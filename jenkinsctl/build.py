"""Image builds: builder choice, BuildKit and classic builds, progress parsing, input checks, tag pruning.

BuildKit runs through the docker CLI, on the engine's own builder so the
host's cache is shared; else docker-py's classic builder.  Output is
streamed line by line; a failure raises BuildError with the failing step's
output.  Library functions take the engine client as an argument; they
never read argv and never exit.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time

from jenkinsctl.engine import (
    api_tuple,
    cli_refused,
    client_engine_version,
    docker_clis,
    docker_host,
    engine_errors,
    engine_ping,
    pick_cli,
    probe_cli,
    version_refusal,
)
from jenkinsctl.errors import BuildError, EngineError, UsageError
from jenkinsctl.record import Record, asdict, field
from jenkinsctl.refs import Reference, parse, parse_repository, validate_tag
from jenkinsctl.secrets import redact

TYPE_CHECKING = False  # typing's import is a cost of every build
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

    LineSink = Callable[[str], None]

TAIL_LINES = 25  # lines of the failing step shown in a BuildError

# Pattern strings: re compiles each on first use and caches it, so
# importing this module (every build and push does) compiles none.
_ANSI = r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\r"


def stderr_sink(strip_ansi: bool | None = None) -> LineSink:
    """A line sink writing to stderr, without terminal escapes unless
    stderr is a terminal (Jenkins' console is not)."""
    if strip_ansi is None:
        strip_ansi = not sys.stderr.isatty()

    def sink(line: str) -> None:
        if strip_ansi and ("\x1b" in line or "\r" in line):  # most lines have neither
            line = re.sub(_ANSI, "", line)
        sys.stderr.write(redact(line) + "\n")  # a RUN step may echo a secret
        sys.stderr.flush()

    return sink


def _discard(line: str) -> None:
    pass


# --- builder choice ------------------------------------------------------------------


_cli_cache: dict[str, str | None] = {}


def find_buildkit_cli(environ: Mapping[str, str] | None = None) -> str | None:
    """The first docker CLI that can build with BuildKit at all, whatever
    the engine: one with the buildx plugin, else one older than 23 (BuildKit
    built in).  ``resolve_builder`` also checks the engine accepts it."""
    environ = os.environ if environ is None else environ
    key = environ.get("JENKINSCTL_DOCKER_CLI", "") + "|" + environ.get("PATH", "")
    if key not in _cli_cache:
        cli = pick_cli(docker_clis(environ), None, buildkit=True)
        _cli_cache[key] = cli.path if cli else None
    return _cli_cache[key]


def _cli_has_buildkit(cli: str) -> bool:
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

    The engine's versions come from /_ping when every capable CLI speaks
    at least the engine's newest API version (see ``engine_ping``), else
    from /version, which also says the oldest one it accepts.
    """
    if builder not in BUILDERS:
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
    engine = None
    ping = engine_ping(client)
    if ping is not None and all(api_tuple(c.api) >= api_tuple(ping[0]) for c in capable):
        # Each CLI speaks the engine's newest API version or a later one and
        # negotiates down to the engine's: the engine accepts every one of
        # them whatever its oldest accepted version, so /version is not asked.
        api, engine_os = ping
    else:
        engine = client_engine_version(client)
        api, engine_os = engine.api, engine.os
    if engine_os.lower() != "linux" or api_tuple(api) < (1, 31):
        if builder == "buildkit":
            raise UsageError(f"--builder buildkit: the engine (API {api}, {engine_os}) has no BuildKit",
                             hint="BuildKit needs a Linux engine with API 1.31 or later; use --builder classic")
        return "classic", None
    cli = pick_cli(capable, engine, buildkit=True)
    if cli is None:
        assert engine is not None  # with the ping alone every capable CLI is accepted
        refused = cli_refused(max(capable, key=lambda c: api_tuple(c.api)), engine, docker_host(client))
        if builder == "buildkit" or environ.get("JENKINSCTL_DOCKER_CLI"):
            raise refused
        log(f"note: {refused.message}; building with the classic builder instead")
        return "classic", None
    return "buildkit", cli



# --- build ------------------------------------------------------------------------------


class BuildResult(Record):
    """What a build made: the image, its refs, the builder and how much of it was cached."""

    image_id: str
    refs: list[str]
    builder: str
    cached_steps: int
    total_steps: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_BK_LINE = r"^#(\d+) (.*)$"
_BK_VERTEX_ID = r"^#\d+ sha256:[0-9a-f]{64}$"
_BK_STEP = r"^\[(?:[^\]\s]+ )?(\d+)/(\d+)\] (.*)$"


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
        m = re.match(_BK_LINE, line)
        if not m:
            if line.strip():
                self.other.append(line)
            return
        v, text = int(m.group(1)), m.group(2)
        if v not in self.steps and text.startswith("["):
            step = re.match(_BK_STEP, text)
            if step:
                self.steps[v] = text
        if text == "CACHED":
            self.cached.add(v)
        elif text.startswith("ERROR"):
            self.errored.append(v)
        if not text.startswith("sha256:"):
            self.lines.setdefault(v, []).append(text)

    def _counted(self) -> list[int]:
        # steps holds only lines _BK_STEP matched (see feed)
        return [v for v, t in self.steps.items()
                if not re.match(_BK_STEP, t).group(3).startswith("FROM ")]  # type: ignore[union-attr]

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

    _STEP = r"^Step (\d+)/(\d+) : (.*)$"
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
                m = re.match(self._STEP, line)
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


def check_build_inputs(context: str, dockerfile: str | None) -> tuple[str, str | None]:
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


class BuildSpec(Record):
    """One build, checked: what ``build_image`` needs and nothing that
    still has to be parsed.  Make it with ``BuildSpec.checked``."""

    repository: Reference                    # no tag, no digest
    tags: tuple[str, ...]                    # checked, unique, at least one
    context: str                             # absolute, a directory
    dockerfile: str | None = None            # absolute, a file; None: CONTEXT/Dockerfile
    build_args: Mapping[str, str | None] = field(default_factory=dict)  # None: from the environment
    labels: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    pull: bool = False
    no_cache: bool = False
    cache_from: tuple[Reference, ...] = ()
    builder: str = "auto"

    @classmethod
    def checked(cls, *, context: str, repository: str | Reference, tags: Sequence[str],
                dockerfile: str | None = None, build_args: Mapping[str, str | None] | None = None,
                labels: Mapping[str, str] | None = None, target: str | None = None, pull: bool = False,
                no_cache: bool = False, cache_from: Sequence[str] = (), builder: str = "auto") -> "BuildSpec":
        """Every input checked once, with a UsageError naming what is wrong."""
        repo = repository if isinstance(repository, Reference) else parse_repository(repository)
        if not tags:
            raise UsageError("no tags to build", hint="give at least one --tag, or leave --tag out for the default")
        checked_tags = tuple(dict.fromkeys(validate_tag(t) for t in tags))
        caches = tuple(parse(c) for c in cache_from)
        if builder not in BUILDERS:
            raise UsageError(f"unknown builder '{builder}'", hint="use auto, buildkit or classic")
        ctx, df = check_build_inputs(context, dockerfile)
        return cls(repository=repo, tags=checked_tags, context=ctx, dockerfile=df,
                   build_args=dict(build_args or {}), labels=dict(labels or {}), target=target, pull=pull,
                   no_cache=no_cache, cache_from=caches, builder=builder)

    @property
    def refs(self) -> list[str]:
        return [f"{self.repository.repository}:{t}" for t in self.tags]


BUILDERS = ("auto", "buildkit", "classic")


def build(client, *, context: str, repository: str, tags: Sequence[str], dockerfile: str | None = None,
          build_args: Mapping[str, str | None] = {}, target: str | None = None,  # noqa: B006 - never mutated
          labels: Mapping[str, str] = {}, pull: bool = False, no_cache: bool = False,  # noqa: B006
          cache_from: Sequence[str] = (), builder: str = "auto", log: LineSink = _discard,
          environ: Mapping[str, str] | None = None) -> BuildResult:
    """``build_image`` of the BuildSpec these arguments make (checked here)."""
    spec = BuildSpec.checked(context=context, repository=repository, tags=tags, dockerfile=dockerfile,
                             build_args=build_args, labels=labels, target=target, pull=pull, no_cache=no_cache,
                             cache_from=cache_from, builder=builder)
    return build_image(client, spec, log=log, environ=environ)


def build_image(client, spec: BuildSpec, *, log: LineSink = _discard,
                environ: Mapping[str, str] | None = None) -> BuildResult:
    """Build ``spec.context`` and tag the image ``repository:tag`` for each tag.

    ``spec.labels`` are used as given (merge ``oci_labels`` in first).  Build
    args end up in the image's history: they are not for secrets.  A build
    arg given as None takes its value from the environment, as
    ``--build-arg K`` does with docker.  Raises BuildError with the failing
    step's output.
    """
    environ = os.environ if environ is None else environ
    kind, cli = resolve_builder(client, spec.builder, environ, log)
    started = time.monotonic()
    if kind == "buildkit":
        # Bare names stay bare: the CLI reads their values from its
        # environment, so they never show on its argv (ps, /proc/PID/cmdline).
        image_id, cached, total = _build_buildkit(cli, client, spec, log, environ)
    else:
        image_id, cached, total = _build_classic(client, spec, log, environ)
    return BuildResult(image_id=image_id, refs=spec.refs, builder=kind, cached_steps=cached, total_steps=total,
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


@contextlib.contextmanager
def _private_dir(prefix: str) -> Iterator[str]:
    """A new directory only this user can enter, removed afterwards, as
    tempfile.TemporaryDirectory makes one in $TMPDIR or /tmp, without
    importing tempfile (random, hashlib, shutil: several ms of an
    unchanged build).  Where neither can take it, tempfile picks."""
    path = None
    for base in dict.fromkeys((os.environ.get("TMPDIR") or "/tmp", "/tmp")):
        try:
            path = os.path.join(base, prefix + os.urandom(6).hex())
            os.mkdir(path, 0o700)
            break
        except OSError:
            path = None
    if path is None:
        import tempfile

        path = tempfile.mkdtemp(prefix=prefix)
    try:
        yield path
    finally:
        try:
            for name in os.listdir(path):
                os.remove(os.path.join(path, name))
            os.rmdir(path)
        except OSError:
            import shutil

            shutil.rmtree(path, ignore_errors=True)


def _build_buildkit(cli, client, spec: BuildSpec, log: LineSink, environ: Mapping[str, str]) -> tuple[str, int, int]:
    import collections

    host = docker_host(client)
    env = buildkit_env(environ, host, spec.build_args)
    with _private_dir("jenkinsctl-build-") as tmp:
        iidfile = os.path.join(tmp, "iid")
        cmd = buildkit_argv(cli, iidfile=iidfile, refs=spec.refs, context=spec.context, dockerfile=spec.dockerfile,
                            build_args=spec.build_args, labels=spec.labels, target=spec.target, pull=spec.pull,
                            no_cache=spec.no_cache, cache_from=[str(c) for c in spec.cache_from])
        progress = BuildKitProgress()
        last: collections.deque[str] = collections.deque(maxlen=50)
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
                if not re.match(_BK_VERTEX_ID, line):  # 20.10 prints each vertex's digest: noise
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


def _build_classic(client, spec: BuildSpec, log: LineSink, environ: Mapping[str, str]) -> tuple[str, int, int]:
    args = {k: (environ.get(k) if v is None else v) for k, v in spec.build_args.items()}
    ctx, df = spec.context, spec.dockerfile
    dockerfile = None
    if df:
        rel = os.path.relpath(df, ctx)
        dockerfile = df if rel.startswith("..") else rel
    progress = ClassicProgress(added_labels=spec.labels)
    api = client.api
    try:
        with engine_errors("build failed"):
            stream = api.build(path=ctx, dockerfile=dockerfile, tag=spec.refs[0], buildargs=args or None,
                               target=spec.target, labels=dict(spec.labels) or None, pull=spec.pull,
                               nocache=spec.no_cache, cache_from=[str(c) for c in spec.cache_from] or None,
                               rm=True, forcerm=True, decode=True)
            for entry in stream:
                for line in progress.feed(entry):
                    log(line)
    except EngineError as exc:
        if getattr(exc, "status_code", None) is None:  # no engine answer: not the Dockerfile's fault
            raise BuildError(exc.message) from None
        msg = getattr(exc, "explanation", None) or exc.message
        raise _build_failed(progress.step, progress.step_lines[-TAIL_LINES:], msg, "classic") from None
    if progress.error or not progress.image_id:
        raise _build_failed(progress.step, [ln for ln in progress.step_lines if not ln.startswith(" ---> ")]
                            [-TAIL_LINES:], progress.error or "the engine reported no image id", "classic")
    for tag in spec.tags[1:]:
        api.tag(progress.image_id, spec.repository.repository, tag)
    return progress.image_id, progress.cached, progress.non_from


def prune_tags(client, repository: str, *, keep: int, protect: set[str]) -> list[str]:
    """Untag the host's older images of ``repository`` beyond the newest
    ``keep`` (build.keep_images), so shipping often does not fill the disk.
    Running containers refer to images by digest, and an image a container
    still uses is never deleted (no force), so this cannot break a deploy.

    "Newest" is when the engine last tagged the image on this host
    (Metadata.LastTagTime, in nanoseconds), which every ship's build sets:
    the image's Created is the time of its last *cached* layer for BuildKit
    builds that differ only in a build arg, identical across ships, and the
    created label is fixed by SOURCE_DATE_EPOCH.  Created stands in only
    where the engine recorded no tag time."""
    try:
        with engine_errors(f"cannot list the images of {repository}"):
            images = client.api.images(name=repository)
    except EngineError:
        return []
    tagged = []
    for img in images:
        tags = [rt for rt in img.get("RepoTags") or ()
                if rt.rpartition(":")[0] == repository and rt.rpartition(":")[2] not in protect]
        if tags:
            when = _last_tagged(client, img)
            tagged += [(when, rt) for rt in tags]
    tagged.sort(key=lambda pair: pair[0], reverse=True)   # never by tag text: s9 > s10
    removed = []
    for _, rt in tagged[keep:]:
        try:
            with engine_errors(f"cannot untag {rt}"):
                client.api.remove_image(rt, noprune=False)
            removed.append(rt)
        except EngineError:
            pass
    return removed


def _last_tagged(client, img) -> float:
    """Seconds since the epoch when ``img`` (an image-list entry) was last
    tagged here, else its Created."""
    # Imported here: the deploy package costs `jenkinsctl build` its start-up time.
    from jenkinsctl.deploy import parse_time

    try:
        with engine_errors(f"cannot inspect {img['Id']}"):
            meta = client.api.inspect_image(img["Id"]).get("Metadata") or {}
    except EngineError:
        meta = {}
    t = parse_time(meta.get("LastTagTime"))
    return t.timestamp() if t.year > 1970 else float(img.get("Created") or 0)
