"""The Docker engine: client factory, error translation, ownership labels, API versions, CLI probes, light transports.

Everything that talks to an engine gets its client from ``client()`` so a
timeout always applies and an unreachable engine is one clear error.
"""

from __future__ import annotations

import _socket
import contextlib
import json
import os
import re
import subprocess

from jenkinsctl.errors import EngineConflict, EngineError, EngineNotFound, EngineVersionError
from jenkinsctl.record import Record, asdict

TYPE_CHECKING = False  # typing's import is a cost of every build and push
if TYPE_CHECKING:  # docker is imported lazily: --help must not load it
    from typing import Any, Iterator, Mapping

    import docker

MANAGED_LABEL = "io.jenkinsctl.managed"
PROJECT_LABEL = "io.jenkinsctl.project"
CONFIG_HASH_LABEL = "io.jenkinsctl.config-hash"
ROLE_LABEL = "io.jenkinsctl.role"

# The engine a client reaches when neither the caller nor DOCKER_HOST names one.
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


def ownership_labels(project: str, **extra: str) -> dict[str, str]:
    labels = {MANAGED_LABEL: "true", PROJECT_LABEL: project}
    labels.update({f"io.jenkinsctl.{k.replace('_', '-')}": v for k, v in extra.items()})
    return labels


def owned_filter(project: str) -> dict[str, list[str]]:
    """A filters= argument that matches every resource jenkinsctl made for
    ``project``: what provisioning made *and* what deploy made.  Never use
    it to decide what provisioning may remove; see ``provisioned_filters``."""
    return {"label": [f"{MANAGED_LABEL}=true", f"{PROJECT_LABEL}={project}"]}


# The roles of what provisioning creates, by resource kind.  Deploy
# resources (app containers, kept versions, their volumes and networks,
# locks, proxies) share the ownership labels but carry the role "deploy"
# or none, so provisioning never sees them as its own: one host often runs
# the CI and the apps it deploys, under the same project name.
PROVISION_ROLES = {
    "container": ("controller", "agent"),
    "network": ("network",),
    "volume": ("controller-home",),
}

# The role of everything deploy makes (see above).
DEPLOY_ROLE = "deploy"


def provisioned_filters(project: str, kind: str) -> list[dict[str, list[str]]]:
    """One filters= argument per provisioning role of ``kind``.  The engine
    ANDs label filters, so the roles are listed one query each."""
    return [{"label": owned_filter(project)["label"] + [f"{ROLE_LABEL}={role}"]} for role in PROVISION_ROLES[kind]]


def is_provisioned(labels: dict[str, str] | None, project: str, kind: str) -> bool:
    """Whether a resource with ``labels`` is one provisioning made for ``project``."""
    labels = labels or {}
    return (labels.get(MANAGED_LABEL) == "true" and labels.get(PROJECT_LABEL) == project
            and labels.get(ROLE_LABEL) in PROVISION_ROLES[kind])


def _import_docker(host: str) -> None:
    """docker-py, imported without paramiko unless ``host`` needs it.

    docker-py imports paramiko (and cryptography) at its own import only to
    offer ssh:// hosts: 130-150 ms of every deploy, rollback and provision
    against a local or tcp:// engine, more than the engine calls of a
    rollback's switch.  A ``None`` in sys.modules makes that optional import
    fail the way docker-py expects when paramiko is not installed.  When an
    ssh:// host comes later in the same run (agents on several engines), its
    adapter is imported then and given to the module that looks it up."""
    import sys

    if "docker" not in sys.modules and not host.startswith("ssh://") and "paramiko" not in sys.modules:
        sys.modules["paramiko"] = None  # type: ignore[assignment]
        try:
            import docker
        finally:
            if sys.modules.get("paramiko", 0) is None:
                del sys.modules["paramiko"]
    import docker
    import docker.api.client
    import docker.transport

    if host.startswith("ssh://") and not hasattr(docker.api.client, "SSHHTTPAdapter"):
        from docker.transport.sshconn import SSHHTTPAdapter

        docker.transport.SSHHTTPAdapter = SSHHTTPAdapter
        docker.api.client.SSHHTTPAdapter = SSHHTTPAdapter


def client(host: str | None = None, *, timeout: int = 120, tls: bool = False) -> "docker.DockerClient":
    """A docker-py client for ``host`` (else DOCKER_HOST, else the local
    socket), checked with a ping so failures surface here, with a hint."""
    host = host or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    _import_docker(host)
    import docker
    import docker.errors

    try:
        # version="auto": docker-py asks the engine (unversioned /version)
        # and then speaks the engine's own API version, so one client works
        # with 20.10 (up to 1.41) and with engines that refuse anything
        # below 1.44 (Docker 29).  A pinned version would fail on one of them.
        if host.startswith("ssh://"):
            # The ssh client binary reuses the user's ssh config and agent.
            c = docker.DockerClient(base_url=host, timeout=timeout, use_ssh_client=True, version="auto")
        elif tls or os.environ.get("DOCKER_TLS_VERIFY"):
            env = dict(os.environ, DOCKER_HOST=host, DOCKER_TLS_VERIFY="1")
            c = docker.from_env(environment=env, timeout=timeout, version="auto")
        else:
            c = docker.DockerClient(base_url=host, timeout=timeout, version="auto")
        c.ping()
    except docker.errors.DockerException as exc:
        refused = version_refusal(str(exc), client=f"docker-py {docker.__version__}", host=host)
        if refused is not None:
            raise refused from None
        raise engine_unreachable(host, exc) from None
    except OSError as exc:
        raise engine_unreachable(host, exc) from None
    return c


def engine_unreachable(host: str, exc: BaseException) -> EngineError:
    text = str(exc)
    if "Permission denied" in text or "PermissionError" in text:
        path = host.removeprefix("unix://")
        hint = (f"this user may not use {path}; add it to the group that owns the socket "
                f"(stat -c %g {path}), e.g. 'usermod -aG docker $USER', then log in again. "
                "Never chmod 666 the socket: access to it is root on the host")
    else:
        hint = "start the engine (dockerd), or point DOCKER_HOST / engine.host at one that runs"
    return EngineError(f"cannot reach the Docker engine at {host}: {text}", hint=hint, host=host)


def api_error(action: str, exc: BaseException) -> EngineError:
    """Turn a docker.errors.APIError into an EngineError naming the action."""
    explanation = getattr(exc, "explanation", None) or str(exc)
    refused = version_refusal(explanation, client="docker-py")
    if refused is not None:
        return refused
    return EngineError(f"{action}: {explanation}")


def _from_docker(module: str) -> bool:
    return module == "docker" or module.startswith("docker.")


def _text(exc: BaseException) -> str:
    """str(exc), or its first argument when str() fails: docker-py's
    APIError formats its response's URL, which an answer cut short lacks."""
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - any failure of __str__ falls back to the argument
        return str(exc.args[0]) if exc.args else type(exc).__name__


def translate(exc: BaseException, action: str) -> EngineError | None:
    """docker-py's error ``exc`` (or the light client's EngineAPIError) as
    a jenkinsctl error naming ``action``: EngineNotFound for a 404,
    EngineConflict for a 409, EngineVersionError for a refused API version,
    EngineError otherwise.  The engine's own text is kept in
    ``.explanation`` and its status in ``.status_code`` (None when the
    engine gave none).  None when ``exc`` is neither, so the caller
    re-raises it.  docker-py is imported only when ``exc`` came from it."""
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, EngineAPIError):
        status, explanation = exc.status_code, exc.explanation
    elif _from_docker(type(exc).__module__):
        import docker.errors  # already loaded: exc came from it

        if isinstance(exc, docker.errors.APIError):
            status, explanation = exc.status_code, exc.explanation or _text(exc)
        else:
            status, explanation = None, _text(exc)
    else:
        return None
    refused = version_refusal(explanation or "", client="docker-py")
    if refused is not None:
        err: EngineError = refused
    else:
        kind = {404: EngineNotFound, 409: EngineConflict}.get(status or 0, EngineError)
        err = kind(f"{action}: {explanation}")
    err.status_code, err.explanation = status, explanation  # type: ignore[attr-defined]
    return err


@contextlib.contextmanager
def engine_errors(action: str) -> Iterator[None]:
    """Run a block of engine calls with docker-py's errors translated (see
    ``translate``): callers catch EngineNotFound, not an HTTP status."""
    try:
        yield
    except Exception as exc:
        err = translate(exc, action)
        if err is None or err is exc:
            raise
        raise err from None


def log_tail(source, container_id: str | None = None, lines: int = 10) -> str:
    """The last ``lines`` lines of a container's log as text, trailing
    blanks stripped; "" when the engine cannot say (the container is gone,
    the engine refuses or is unreachable): a log tail is a bonus in an error
    message and must never replace the error it explains.  ``source`` is a
    docker-py container model, or a low-level API given ``container_id``."""
    try:
        raw = source.logs(tail=lines) if container_id is None else source.logs(container_id, tail=lines)
        return raw.decode("utf-8", "replace").rstrip()
    except Exception:  # noqa: BLE001 - see the docstring
        return ""


def transport_errors(api) -> tuple[type[BaseException], ...]:
    """The exceptions ``api`` raises when the connection to the engine
    breaks mid-call (not an engine answer): the light EngineAPI's are the
    standard library's, docker-py's are requests'."""
    if isinstance(api, EngineAPI):
        return (OSError,)  # the socket's own; a broken answer is a ConnectionError
    import requests.exceptions  # docker-py is loaded: api is its client

    return (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
            requests.exceptions.Timeout)


# --- API versions ------------------------------------------------------------------------


def api_tuple(version: str) -> tuple[int, ...]:
    """"1.44" -> (1, 44); "26.1.5+dfsg1" -> (26, 1, 5)."""
    return tuple(int(x) for x in re.findall(r"\d+", version or "")[:3])


class EngineVersion(Record):
    """What an engine's /version says about the API versions it accepts."""

    version: str      # the engine's release, e.g. "26.1.5+dfsg1"
    api: str          # the newest API version it speaks
    min_api: str      # the oldest it accepts: "1.12" for 20.10, "1.44" for Docker 29
    os: str = "linux"

    @classmethod
    def from_json(cls, data: Mapping) -> "EngineVersion":
        return cls(version=str(data.get("Version") or "?"), api=str(data.get("ApiVersion") or "0"),
                   min_api=str(data.get("MinAPIVersion") or "1.12"), os=str(data.get("Os") or "linux"))

    def accepts(self, api: str) -> bool:
        return api_tuple(self.min_api) <= api_tuple(api)

    def describe(self) -> str:
        return f"{self.version}, API {self.min_api} to {self.api}"


def _raw_socket(host: str, timeout: float) -> _socket.socket | None:
    """A connected plain socket to the engine at ``host`` (unix:// or tcp://
    without TLS), for the few calls made without importing docker-py; None
    for any other kind of host.  OSError and ValueError reach the caller.

    A unix socket is the C module's own: the socket module's import (its
    enums of every address family and flag) costs more than a ping."""
    if host.startswith("unix://"):
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            s.settimeout(timeout)
            s.connect(host[len("unix://"):])
        except BaseException:
            s.close()
            raise
        return s
    if host.startswith("tcp://"):
        import socket

        h, _, p = host[len("tcp://"):].rstrip("/").rpartition(":")
        return socket.create_connection((h.strip("[]"), int(p)), timeout=timeout)
    return None


def _raw_get(host: str, path: str, timeout: float = 10.0) -> tuple[int, bytes] | None:
    """One unversioned GET over a plain socket (unix:// or tcp:// without
    TLS), without importing docker-py; None when that is not possible."""
    try:
        s = _raw_socket(host, timeout)
        if s is None:
            return None
        with contextlib.closing(s):
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except (OSError, ValueError):
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/\d\.\d (\d{3})", head)
    return (int(m.group(1)), body) if m else None


def engine_version(client=None, *, host: str | None = None) -> EngineVersion:
    """The engine's versions, from GET /version: over a plain socket when
    ``host`` is unix:// or tcp:// (no docker-py import), else from the
    docker-py ``client``."""
    if host:
        got = _raw_get(host, "/version")
        if got is not None and got[0] == 200:
            try:
                return EngineVersion.from_json(json.loads(got[1]))
            except ValueError:
                pass
    if client is None:
        raise EngineError(f"cannot ask the engine at {host} for its version",
                          hint="check that the engine runs and DOCKER_HOST points at it", host=host)
    try:
        return EngineVersion.from_json(client.version())
    except EngineError:
        raise
    except Exception as exc:  # noqa: BLE001 - docker-py raises several kinds
        raise EngineError(f"cannot ask the engine for its version: {exc}",
                          hint="check that the engine runs and DOCKER_HOST points at it") from None


# A pattern string, as the others here: re compiles it on first use (an
# error path), so no command pays for it at import.
_REFUSAL = (r"(?i)client version (?P<client>\d+\.\d+) is too (?P<kind>old|new)\.?\s*"
            r"(?:Minimum|Maximum) supported API version is (?P<engine>\d+\.\d+)")

NEWER_CLI_HINT = ("use a docker CLI that speaks API {need} or newer (Docker 25+, e.g. Debian 13's docker-cli "
                  "with docker-buildx; JENKINSCTL_DOCKER_CLI names one); inside an agent, rebuild the agent "
                  "image with 'jenkinsctl agent-image'")


def parse_version_refusal(text: str) -> tuple[str, str, str] | None:
    """("old" | "new", client API, engine's min or max API) when ``text``
    carries the engine's refusal of a client's API version, e.g.
    "client version 1.41 is too old. Minimum supported API version is 1.44"."""
    m = re.search(_REFUSAL, text or "")
    return (m.group("kind").lower(), m.group("client"), m.group("engine")) if m else None


def version_refusal(text: str, *, client: str, host: str | None = None) -> EngineVersionError | None:
    """The EngineVersionError for a refusal in ``text`` (None if there is
    none): which client, which versions, and the fix."""
    parsed = parse_version_refusal(text)
    if parsed is None:
        return None
    kind, client_api, engine_api = parsed
    where = f" at {host}" if host else ""
    if kind == "old":
        return EngineVersionError(
            f"the Docker engine{where} refused {client}: it speaks API {client_api}, the engine accepts "
            f"{engine_api} and newer", hint=NEWER_CLI_HINT.format(need=engine_api),
            client=client, client_api=client_api, engine_min_api=engine_api, host=host)
    return EngineVersionError(
        f"the Docker engine{where} refused {client}: it asked for API {client_api}, the engine speaks "
        f"{engine_api} at most", hint="let the client negotiate the version: unset DOCKER_API_VERSION",
        client=client, client_api=client_api, engine_max_api=engine_api, host=host)


def cli_refused(cli: "DockerCLI", engine: EngineVersion, host: str | None) -> EngineVersionError:
    """A docker CLI the engine would refuse, named before it is run."""
    where = f" at {host}" if host else ""
    return EngineVersionError(
        f"the docker CLI {cli.describe()} is too old for the Docker engine{where} ({engine.describe()}): "
        f"the engine refuses clients below API {engine.min_api}",
        hint=NEWER_CLI_HINT.format(need=engine.min_api), client=cli.path, client_version=cli.version,
        client_api=cli.api, engine_version=engine.version, engine_min_api=engine.min_api, host=host)


# --- docker CLIs -------------------------------------------------------------------------


class DockerCLI(Record):
    """One docker CLI binary, as probed: its release, the newest API it
    speaks (it negotiates down to older engines, never below its own) and
    whether it has the buildx plugin."""

    path: str
    version: str
    api: str
    buildx: bool

    @property
    def builtin_buildkit(self) -> bool:
        """CLIs 18.09 to 22 build with BuildKit themselves (DOCKER_BUILDKIT=1);
        from 23 on that needs buildx ("the buildx component is missing")."""
        return (18, 9) <= api_tuple(self.version) < (23,)

    @property
    def can_buildkit(self) -> bool:
        return self.buildx or self.builtin_buildkit

    def describe(self) -> str:
        return f"{self.path} ({self.version}, API {self.api})"


def _probe_cache_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jenkinsctl", "docker-cli-probe.json")


def _probe(path: str, environ: Mapping[str, str]) -> DockerCLI | None:
    # DOCKER_HOST at nothing: the client half of `docker version` is printed
    # without any engine, so the probe is the same for every engine.
    env = dict(environ, DOCKER_HOST="unix:///nonexistent/jenkinsctl-probe.sock")
    env.pop("DOCKER_CONTEXT", None)
    try:
        out = subprocess.run([path, "version", "--format", "{{.Client.Version}} {{.Client.APIVersion}}"],
                             capture_output=True, text=True, timeout=15, env=env, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = out.strip().splitlines()[0].split() if out.strip() else []
    if len(parts) != 2 or not api_tuple(parts[1]):
        return None
    buildx = False
    if api_tuple(parts[0]) >= (19, 3):  # CLI plugins exist from 19.03 on
        try:
            buildx = subprocess.run([path, "buildx", "version"], capture_output=True, timeout=15, env=env,
                                    stdin=subprocess.DEVNULL).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            buildx = False
    return DockerCLI(path=path, version=parts[0], api=parts[1], buildx=buildx)


def probe_cli(path: str, environ: Mapping[str, str] | None = None) -> DockerCLI | None:
    """``path`` probed, or None if it is no docker CLI.  The answer is cached
    on disk, keyed by the binary's path, size and mtime, DOCKER_CONFIG
    (where the CLI finds its plugins) and DOCKER_API_VERSION (which pins
    the version the CLI speaks), because running the Go CLI twice
    costs more than an unchanged BuildKit build."""
    environ = os.environ if environ is None else environ
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}:{environ.get('DOCKER_CONFIG', '')}:"
           f"{environ.get('DOCKER_API_VERSION', '')}")
    cache_file = _probe_cache_path()
    cache: dict = {}
    try:
        with open(cache_file, encoding="utf-8") as fh:
            loaded = json.load(fh)
        cache = loaded if isinstance(loaded, dict) else {}
        hit = cache.get(key)
        if isinstance(hit, dict):
            return DockerCLI(**{**hit, "path": path})
        if hit is False:
            return None
    except (OSError, ValueError, TypeError):
        pass
    cli = _probe(path, environ)
    try:
        os.makedirs(os.path.dirname(cache_file), exist_ok=True)
        cache[key] = asdict(cli) if cli else False
        tmp = f"{cache_file}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(cache, fh)
        os.replace(tmp, cache_file)
    except OSError:
        pass
    return cli


def docker_clis(environ: Mapping[str, str] | None = None) -> list[DockerCLI]:
    """JENKINSCTL_DOCKER_CLI alone when set; else every distinct ``docker``
    on PATH, in PATH order."""
    environ = os.environ if environ is None else environ
    if environ.get("JENKINSCTL_DOCKER_CLI"):
        import shutil  # bz2 and lzma come with it: only for this rare case

        path = shutil.which(environ["JENKINSCTL_DOCKER_CLI"], path=environ.get("PATH"))
        cli = probe_cli(path, environ) if path else None
        return [cli] if cli else []
    out, seen = [], set()
    for d in environ.get("PATH", os.defpath).split(os.pathsep):
        cand = os.path.join(d or ".", "docker")
        if not (os.path.isfile(cand) and os.access(cand, os.X_OK)):
            continue
        real = os.path.realpath(cand)
        if real in seen:
            continue
        seen.add(real)
        cli = probe_cli(cand, environ)
        if cli:
            out.append(cli)
    return out


def pick_cli(clis: list[DockerCLI], engine: EngineVersion | None, *, buildkit: bool) -> DockerCLI | None:
    """The CLI to use against ``engine``: never one whose newest API is below
    the engine's minimum.  For a BuildKit build, the first with buildx (the
    engine's own builder and cache through the docker driver), else the
    first that has BuildKit built in; otherwise the first the engine accepts."""
    ok = [c for c in clis if engine is None or engine.accepts(c.api)]
    if not buildkit:
        return ok[0] if ok else None
    return next((c for c in ok if c.buildx), None) or next((c for c in ok if c.builtin_buildkit), None)


def engine_cli(client, environ: Mapping[str, str] | None = None, *, host: str | None = None) -> str:
    """The docker CLI for commands that only the CLI has (``docker stack
    deploy``): the first on PATH (or JENKINSCTL_DOCKER_CLI) that the engine
    accepts.  EngineVersionError when every one is too old."""
    environ = os.environ if environ is None else environ
    clis = docker_clis(environ)
    if not clis:
        import shutil

        return shutil.which("docker", path=environ.get("PATH")) or "docker"  # the runner reports it missing
    engine = engine_version(client, host=host)
    cli = pick_cli(clis, engine, buildkit=False)
    if cli is None:
        raise cli_refused(max(clis, key=lambda c: api_tuple(c.api)), engine, host)
    return cli.path


# --- light transports: a lazily built client and a push client over the socket ----


class LazyEngine:
    """An engine address that becomes a docker-py client on first use.

    A BuildKit build needs only the engine's address and one ping, so the
    ``build`` command passes this instead of a client and never pays for
    importing docker-py (about 0.4 s here, several times an unchanged
    BuildKit build).  Any attribute a DockerClient has is forwarded.
    """

    def __init__(self, host: str | None = None, *, timeout: int = 120, tls: bool = False) -> None:
        self.host = host or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
        self.timeout = timeout
        self.tls = tls or bool(os.environ.get("DOCKER_TLS_VERIFY"))
        self._client = None

    @property
    def client(self):
        if self._client is None:
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


class _Answer:
    """One HTTP/1.0 answer read off ``sock``: status, headers, and a body
    that ends at Content-Length or, when there is none, where the engine
    closes the connection (how Go's server ends a streamed answer to an
    HTTP/1.0 request: no chunked encoding to decode)."""

    def __init__(self, sock: _socket.socket) -> None:
        self._sock = sock
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the engine closed the connection before its answer's headers")
            data += chunk
        head, _, self._pending = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, self.reason = rest.partition(" ")
        if not version.startswith("HTTP/") or len(code) != 3 or not code.isdecimal():
            raise ConnectionError(f"not an HTTP answer from the engine: {lines[0][:80]!r}")
        self.status = int(code)
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        length = self.headers.get("content-length", "")
        self._left = int(length) if length.isdigit() else None  # None: up to EOF

    def read1(self, size: int = 65536) -> bytes:
        """The next piece of the body; b"" at its end."""
        if self._left == 0:
            return b""
        data, self._pending = self._pending, b""
        if not data:
            data = self._sock.recv(size if self._left is None else min(size, self._left))
            if not data and self._left is not None:
                raise ConnectionError(f"the engine closed the connection {self._left} bytes before the answer's end")
        if self._left is not None:
            data = data[:self._left]
            self._left -= len(data)
        return data

    def read(self) -> bytes:
        parts: list[bytes] = []
        while True:
            chunk = self.read1()
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)


def _pct(text: str, safe: str = "") -> str:
    """Percent-encoding as urllib.parse.quote does it, without its import."""
    out = []
    for b in text.encode("utf-8"):
        c = chr(b)
        out.append(c if (c.isascii() and c.isalnum()) or c in "_.-~" or c in safe else f"%{b:02X}")
    return "".join(out)


def registry_auth_header(auth_config: Mapping[str, str]) -> str:
    """X-Registry-Auth: the JSON credentials in URL-safe base64, as
    docker-py's ``auth.encode_header`` sends them (binascii, a built-in
    module, instead of importing base64)."""
    import binascii

    raw = binascii.b2a_base64(json.dumps(dict(auth_config)).encode(), newline=False)
    return raw.translate(bytes.maketrans(b"+/", b"-_")).decode("ascii")


def post_spec(api, path: str, spec: Mapping[str, Any], *, args: tuple[str, ...] = (),
              params: Mapping[str, Any] | None = None, auth: Mapping[str, str] | None = None) -> Any:
    """POST a whole JSON spec (a Swarm service's) and return the decoded
    answer.  docker-py's ``create_service``/``update_service`` rebuild the
    spec from their own arguments, take registry credentials only from
    ~/.docker/config.json, and have no ``rollback=previous``; the spec and
    the credentials jenkinsctl resolved go through docker-py's own request
    helpers here instead, the one place that uses them for a POST."""
    headers = {"X-Registry-Auth": registry_auth_header(auth)} if auth else {}
    res = api._post_json(api._url(path, *args), data=dict(spec), params=dict(params or {}), headers=headers)
    return api._result(res, True)


def put_archive_owned(api, container_id: str, path: str, data: bytes, *, copy_uid_gid: bool) -> None:
    """``put_archive`` with the engine's ``copyUIDGID``, which docker-py's
    has no argument for: the engine then chowns the files to the container's
    Config.User as the container's own /etc/passwd resolves it.  Raises
    docker-py's APIError when the engine refuses."""
    params = {"path": path, **({"copyUIDGID": "1"} if copy_uid_gid else {})}
    res = api._put(api._url("/containers/{0}/archive", container_id), params=params, data=data)
    api._raise_for_status(res)


class EngineAPI:
    """The four engine calls a push needs (inspect, tag, list, push), with
    docker-py's method signatures, as HTTP/1.0 requests on a unix or plain
    TCP socket.  ``jenkinsctl push`` uses it so a push of an unchanged image
    is not dominated by importing docker-py, or http.client (which loads
    ssl and email); everything else uses docker-py."""

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
            major, dot, minor = api.partition(".")
            self._prefix = f"/v{api}" if dot and major.isdecimal() and minor.isdecimal() else ""
        return self._prefix

    @staticmethod
    def supports(host: str | None, tls: bool = False) -> bool:
        return bool(host) and not tls and str(host).startswith(("unix://", "tcp://"))

    def _call(self, method: str, path: str, query: Mapping[str, str] | None = None,
              headers: Mapping[str, str] | None = None) -> tuple[_socket.socket, _Answer]:
        url = _pct(self._version_prefix() + path, safe="/:@")
        if query:
            url += "?" + "&".join(f"{_pct(k)}={_pct(v)}" for k, v in query.items())
        head = [f"{method} {url} HTTP/1.0", "Host: docker", *(f"{k}: {v}" for k, v in (headers or {}).items())]
        if method == "POST":
            head.append("Content-Length: 0")
        try:
            sock = _raw_socket(self.host, self.timeout)
        except (OSError, ValueError) as exc:
            raise engine_unreachable(self.host, exc if isinstance(exc, OSError) else OSError(str(exc))) from None
        assert sock is not None  # supports(): unix:// or tcp://
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            resp = _Answer(sock)
        except OSError as exc:
            sock.close()
            raise engine_unreachable(self.host, exc) from None
        if resp.status >= 400:
            try:
                body = resp.read()
            finally:
                sock.close()
            try:
                message = json.loads(body).get("message") or ""
            except (ValueError, AttributeError):
                message = body.decode("utf-8", "replace").strip()
            refused = version_refusal(message, client="jenkinsctl's push client", host=self.host)
            if refused is not None:
                raise refused
            raise EngineAPIError(resp.status, message or resp.reason)
        return sock, resp

    def _json(self, method: str, path: str, query=None):
        sock, resp = self._call(method, path, query)
        try:
            data = resp.read()
        finally:
            sock.close()
        return json.loads(data) if data.strip() else None

    def inspect_image(self, image: str) -> dict:
        return self._json("GET", f"/images/{image}/json")

    def tag(self, image: str, repository: str, tag: str | None = None) -> bool:
        self._json("POST", f"/images/{image}/tag", {"repo": repository, **({"tag": tag} if tag else {})})
        return True

    def images(self, name: str | None = None) -> list:
        return self._json("GET", "/images/json", {"filters": json.dumps({"reference": [name]})} if name else None)

    def push(self, repository: str, tag: str | None = None, stream: bool = True, decode: bool = True,
             auth_config: Mapping[str, str] | None = None):
        headers = {}
        if auth_config:  # the same header docker-py sends
            headers["X-Registry-Auth"] = registry_auth_header(auth_config)
        sock, resp = self._call("POST", f"/images/{repository}/push", {"tag": tag} if tag else None, headers)

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
                sock.close()

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
    adapter: Any = getattr(api, "_custom_adapter", None)
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
        s = _raw_socket(host, timeout)
        if s is None:
            return None
        with contextlib.closing(s):
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


def client_engine_version(client):
    """The engine's versions (API range and OS): over a plain socket for a
    LazyEngine, so a BuildKit build never imports docker-py."""
    host = docker_host(client) if isinstance(client, LazyEngine) and not client.tls else None
    return engine_version(client, host=host)


def engine_ping(client) -> tuple[str, str] | None:
    """(newest API version, OS) from the headers of GET /_ping, for a
    LazyEngine on a plain socket; None when the engine cannot be asked that
    way or its answer lacks either.

    The engine answers /_ping from memory, while for /version it runs
    ``runc --version`` and ``docker-init --version`` (5 to 9 ms here, on
    every build).  The ping lacks the oldest API version the engine
    accepts; ``resolve_builder`` asks /version for that only when it
    matters."""
    if not isinstance(client, LazyEngine) or client.tls:
        return None
    headers = _raw_ping(client.host, timeout=10.0) or {}
    api, engine_os = headers.get("api-version", ""), headers.get("ostype", "")
    return (api, engine_os) if api_tuple(api) and engine_os else None
