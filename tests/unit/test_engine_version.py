"""API-version negotiation without an engine: the refusal parser, the
choice of a docker CLI against an engine's MinAPIVersion, the BuildKit
argv, and a refusal during a build becoming EngineVersionError."""

from __future__ import annotations

import stat

import pytest

from jenkinsctl import build as buildlib
from jenkinsctl.engine import (DockerCLI, EngineVersion, cli_refused, parse_version_refusal, pick_cli,
                               version_refusal)
from jenkinsctl.errors import BuildError, EngineError, EngineVersionError, UsageError

# What dockerd 26.1 with DOCKER_MIN_API_VERSION=1.44 (and Docker 29) answers
# the 20.10 CLI, as the CLI prints it.
REFUSAL_26 = ("Error response from daemon: client version 1.41 is too old. Minimum supported API version is 1.44, "
              "please upgrade your client to a newer version")
REFUSAL_API = "client version 1.41 is too old. Minimum supported API version is 1.44"
TOO_NEW = "Error response from daemon: client version 1.45 is too new. Maximum supported API version is 1.41"

MODERN = EngineVersion(version="26.1.5+dfsg1", api="1.45", min_api="1.44")
OLD_ENGINE = EngineVersion(version="20.10.24+dfsg1", api="1.41", min_api="1.12")
CLI_20 = DockerCLI("/usr/bin/docker", "20.10.24+dfsg1", "1.41", buildx=False)
CLI_28 = DockerCLI("/usr/local/bin/docker", "28.2.2", "1.50", buildx=False)
CLI_26 = DockerCLI("/opt/trixie/docker", "26.1.5+dfsg1", "1.45", buildx=True)


@pytest.fixture(autouse=True)
def _private_probe_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    buildlib._cli_cache.clear()


@pytest.mark.parametrize("text,expected", [
    (REFUSAL_26, ("old", "1.41", "1.44")),
    (REFUSAL_API, ("old", "1.41", "1.44")),
    ("ERROR: failed to solve: " + REFUSAL_API.upper(), ("old", "1.41", "1.44")),
    (TOO_NEW, ("new", "1.45", "1.41")),
    ("build failed at [2/3] RUN false: exit code 1", None),
    ("", None),
])
def test_parse_version_refusal(text, expected):
    assert parse_version_refusal(text) == expected


def test_a_refusal_is_an_engine_version_error_naming_both_versions_and_the_fix():
    err = version_refusal(REFUSAL_26, client="the docker CLI /usr/bin/docker", host="unix:///run/docker.sock")
    assert isinstance(err, EngineVersionError) and isinstance(err, EngineError)
    assert err.exit_code == 3 and err.category == "engine-version"
    assert "/usr/bin/docker" in err.message and "1.41" in err.message and "1.44" in err.message
    assert "unix:///run/docker.sock" in err.message
    assert "jenkinsctl agent-image" in err.hint and "API 1.44 or newer" in err.hint
    assert "Dockerfile" not in err.message + err.hint
    assert err.details["client_api"] == "1.41" and err.details["engine_min_api"] == "1.44"
    assert version_refusal("no such image", client="x") is None


def test_a_forced_too_new_version_points_at_negotiation():
    err = version_refusal(TOO_NEW, client="docker-py")
    assert "1.45" in err.message and "1.41" in err.message and "DOCKER_API_VERSION" in err.hint


def test_cli_refused_names_cli_and_engine_versions():
    err = cli_refused(CLI_20, MODERN, "unix:///x.sock")
    assert "20.10.24+dfsg1" in err.message and "API 1.41" in err.message
    assert "26.1.5+dfsg1" in err.message and "1.44" in err.message and "unix:///x.sock" in err.message
    assert "agent-image" in err.hint


def test_pick_cli_never_picks_one_below_the_engines_minimum():
    assert MODERN.accepts("1.45") and MODERN.accepts("1.50") and not MODERN.accepts("1.41")
    # On the old engine everything is accepted: buildx first, else built-in BuildKit (20.10).
    assert pick_cli([CLI_28, CLI_20], OLD_ENGINE, buildkit=True) == CLI_20
    assert pick_cli([CLI_28, CLI_20, CLI_26], OLD_ENGINE, buildkit=True) == CLI_26
    # On the modern one the 20.10 CLI is out; the 28.x without buildx cannot use BuildKit.
    assert pick_cli([CLI_28, CLI_20], MODERN, buildkit=True) is None
    assert pick_cli([CLI_28, CLI_20, CLI_26], MODERN, buildkit=True) == CLI_26
    # For docker stack: the first accepted one.
    assert pick_cli([CLI_20, CLI_28], MODERN, buildkit=False) == CLI_28
    assert pick_cli([CLI_20], MODERN, buildkit=False) is None
    assert pick_cli([CLI_20], None, buildkit=False) == CLI_20


def test_buildkit_argv_uses_buildx_on_the_engines_own_builder_else_docker_build():
    kw = dict(iidfile="/t/iid", refs=["r/a:1", "r/a:2"], context="/ctx", dockerfile="/ctx/D",
              build_args={"A": "1", "B": None}, labels={"l": "v"}, target="t", pull=True, no_cache=True,
              cache_from=["r/a:0"])
    tail = ["--progress=plain", "--iidfile", "/t/iid", "--tag", "r/a:1", "--tag", "r/a:2", "--file", "/ctx/D",
            "--build-arg", "A=1", "--build-arg", "B", "--label", "l=v", "--target", "t", "--pull", "--no-cache",
            "--cache-from", "r/a:0", "/ctx"]
    assert buildlib.buildkit_argv(CLI_26, **kw) == ["/opt/trixie/docker", "buildx", "build", "--builder", "default",
                                                 *tail]
    assert buildlib.buildkit_argv(CLI_20, **kw) == ["/usr/bin/docker", "build", *tail]
    env = buildlib.buildkit_env({"JENKINSCTL_REGISTRY_PASSWORD": "s", "DOCKER_CONTEXT": "c", "PATH": "/bin"},
                             "unix:///e.sock")
    assert env == {"PATH": "/bin", "DOCKER_BUILDKIT": "1", "BUILDKIT_PROGRESS": "plain",
                   "DOCKER_HOST": "unix:///e.sock"}


def fake_cli(directory, version, api, *, buildx=False, build_output=None):
    """A docker CLI answering the probe; its builds print ``build_output``
    and fail."""
    directory.mkdir(parents=True, exist_ok=True)
    p = directory / "docker"
    body = ["#!/bin/sh",
            f'if [ "$1" = "version" ]; then echo "{version} {api}"; exit 1; fi',
            f'if [ "$1" = "buildx" ] && [ "$2" = "version" ]; then exit {0 if buildx else 1}; fi']
    if build_output is not None:
        body.append(f"echo '#1 [internal] load build definition'; echo '{build_output}'; exit 1")
    body.append("exit 9")
    p.write_text("\n".join(body) + "\n")
    p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return str(p)


class FakeEngine:
    def __init__(self, version: EngineVersion) -> None:
        self.v = version

    def version(self):
        return {"Version": self.v.version, "ApiVersion": self.v.api, "MinAPIVersion": self.v.min_api, "Os": "linux"}


def test_an_explicit_cli_below_the_minimum_is_refused_before_it_runs(tmp_path):
    old = fake_cli(tmp_path / "old", "20.10.24+dfsg1", "1.41")
    env = {"PATH": str(tmp_path / "old"), "JENKINSCTL_DOCKER_CLI": old}
    with pytest.raises(EngineVersionError) as e:
        buildlib.resolve_builder(FakeEngine(MODERN), "auto", env)
    assert "API 1.41" in e.value.message and "1.44" in e.value.message
    # The same CLI on an engine that accepts it builds with BuildKit.
    kind, cli = buildlib.resolve_builder(FakeEngine(OLD_ENGINE), "auto", env)
    assert kind == "buildkit" and cli.path == old


def test_auto_falls_back_to_classic_with_a_note_when_only_refused_clis_have_buildkit(tmp_path):
    fake_cli(tmp_path / "a", "28.2.2", "1.50")                     # accepted, no buildx
    fake_cli(tmp_path / "b", "20.10.24+dfsg1", "1.41")             # BuildKit built in, refused
    env = {"PATH": f"{tmp_path / 'a'}:{tmp_path / 'b'}"}
    notes: list[str] = []
    assert buildlib.resolve_builder(FakeEngine(MODERN), "auto", env, notes.append) == ("classic", None)
    assert len(notes) == 1 and "too old" in notes[0] and "classic" in notes[0]
    with pytest.raises(EngineVersionError):
        buildlib.resolve_builder(FakeEngine(MODERN), "buildkit", env)
    fake_cli(tmp_path / "c", "26.1.5+dfsg1", "1.45", buildx=True)
    kind, cli = buildlib.resolve_builder(FakeEngine(MODERN), "buildkit", {"PATH": f"{env['PATH']}:{tmp_path / 'c'}"})
    assert kind == "buildkit" and cli.path == str(tmp_path / "c" / "docker") and cli.buildx


def test_a_refusal_during_the_build_is_an_engine_version_error_not_a_build_hint(tmp_path):
    cli = fake_cli(tmp_path / "cli", "26.1.5+dfsg1", "1.45", buildx=True, build_output="ERROR: " + REFUSAL_API)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    env = {"PATH": str(tmp_path / "cli"), "JENKINSCTL_DOCKER_CLI": cli}
    with pytest.raises(EngineVersionError) as e:
        buildlib.build(FakeEngine(MODERN), context=str(ctx), repository="r/a", tags=["1"], environ=env)
    assert not isinstance(e.value, BuildError)
    assert "Dockerfile" not in e.value.hint and "1.41" in e.value.message and cli in e.value.message
    # Any other failure stays a build error with the Dockerfile hint.
    cli2 = fake_cli(tmp_path / "cli2", "26.1.5+dfsg1", "1.45", buildx=True, build_output="ERROR: exit code: 1")
    with pytest.raises(BuildError):
        buildlib.build(FakeEngine(MODERN), context=str(ctx), repository="r/a", tags=["1"],
                    environ={"PATH": "", "JENKINSCTL_DOCKER_CLI": cli2})


class _SocketEngine:
    """An engine on a unix socket that answers /_ping with the headers
    dockerd's version middleware sets (``ostype=None`` leaves OSType out,
    as engines before API 1.32 do) and /version with ``version``; it counts
    the requests by path."""

    def __init__(self, path, version: EngineVersion, ostype: str | None = "linux") -> None:
        import socket
        import threading

        self.version, self.ostype, self.paths = version, ostype, []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        # Accept with a timeout, and stop and join the thread on close: a
        # thread left blocked in accept() on a closed socket's descriptor
        # would answer for the next test's engine when the number is reused.
        self.sock.settimeout(0.05)
        self.stop = threading.Event()
        self.host = f"unix://{path}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import json

        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                path = data.split(b" ")[1].decode()
                self.paths.append(path)
                v = self.version
                head = [f"Server: Docker/{v.version} (linux)", f"Api-Version: {v.api}"]
                head += [f"Ostype: {self.ostype}"] if self.ostype else []
                if path == "/_ping":
                    body = b"OK"
                else:
                    body = json.dumps({"Version": v.version, "ApiVersion": v.api, "MinAPIVersion": v.min_api,
                                       "Os": "linux"}).encode()
                head += [f"Content-Length: {len(body)}"]
                conn.sendall(("HTTP/1.0 200 OK\r\n" + "\r\n".join(head) + "\r\n\r\n").encode() + body)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def socket_engine(tmp_path):
    made = []

    def start(version: EngineVersion, ostype: str | None = "linux") -> _SocketEngine:
        made.append(_SocketEngine(tmp_path / f"engine{len(made)}.sock", version, ostype))
        return made[-1]

    yield start
    for e in made:
        e.close()


def test_the_builder_choice_asks_version_only_when_the_engines_minimum_matters(tmp_path, socket_engine):
    from jenkinsctl.engine import LazyEngine

    old = fake_cli(tmp_path / "old", "20.10.24+dfsg1", "1.41")
    new = fake_cli(tmp_path / "new", "26.1.5+dfsg1", "1.45", buildx=True)
    # The CLI speaks the engine's newest version: the ping decides, /version is never asked.
    eng = socket_engine(OLD_ENGINE)
    assert buildlib.resolve_builder(LazyEngine(eng.host), "auto", {"PATH": str(tmp_path / "old")}) == (
        "buildkit", DockerCLI(old, "20.10.24+dfsg1", "1.41", buildx=False))
    assert eng.paths == ["/_ping"]
    # Newer than the engine: the same.
    eng = socket_engine(OLD_ENGINE)
    kind, cli = buildlib.resolve_builder(LazyEngine(eng.host), "buildkit", {"PATH": str(tmp_path / "new")})
    assert (kind, cli.path, eng.paths) == ("buildkit", new, ["/_ping"])
    # Older than the engine's newest: only /version says whether it is accepted...
    eng = socket_engine(MODERN)
    with pytest.raises(EngineVersionError) as e:
        buildlib.resolve_builder(LazyEngine(eng.host), "buildkit", {"PATH": str(tmp_path / "old")})
    assert eng.paths == ["/_ping", "/version"] and "1.44" in e.value.message
    # ... and on an engine whose minimum is lower, it is.
    eng = socket_engine(EngineVersion(version="26.1.5+dfsg1", api="1.45", min_api="1.24"))
    kind, cli = buildlib.resolve_builder(LazyEngine(eng.host), "auto", {"PATH": str(tmp_path / "old")})
    assert (kind, cli.path, eng.paths) == ("buildkit", old, ["/_ping", "/version"])
    # A ping without OSType (engines before API 1.32) is not enough.
    eng = socket_engine(OLD_ENGINE, ostype=None)
    kind, _ = buildlib.resolve_builder(LazyEngine(eng.host), "auto", {"PATH": str(tmp_path / "old")})
    assert (kind, eng.paths) == ("buildkit", ["/_ping", "/version"])


def test_a_windows_engine_is_no_buildkit_engine_by_its_ping(tmp_path, socket_engine):
    from jenkinsctl.engine import LazyEngine

    fake_cli(tmp_path / "old", "20.10.24+dfsg1", "1.41")
    eng = socket_engine(OLD_ENGINE, ostype="windows")
    assert buildlib.resolve_builder(LazyEngine(eng.host), "auto", {"PATH": str(tmp_path / "old")}) == ("classic", None)
    with pytest.raises(UsageError) as e:
        buildlib.resolve_builder(LazyEngine(eng.host), "buildkit", {"PATH": str(tmp_path / "old")})
    assert "API 1.41, windows" in e.value.message and eng.paths == ["/_ping", "/_ping"]
