"""Repository content must not steer the pipeline steps.

A fork's pull request is built with the target branch's (trusted)
Jenkinsfile, but the workspace holds the fork's files.  A jenkinsctl.yaml
there used to be picked up by dockerBuildPush and could point the engine at
tcp://attacker:2375 and the registry password at {file: /proc/self/environ},
so the push delivered every bound credential in X-Registry-Auth.  These
tests run the real CLI the way the step does (--params-env) against a fake
tcp engine on 127.0.0.1 that logs everything it receives.
"""

from __future__ import annotations

import http.server
import json
import os
import pathlib
import subprocess
import sys
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PASSWORD = "pa55-Step-Mode-S3cret"
FILE_SECRET = "f1le-Step-Mode-S3cret"


IMAGE_ID = "sha256:" + "0" * 64
DIGEST = "sha256:" + "1" * 64


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Logs each request whole (line, headers, body) and plays just enough of
    the Engine API (ping, version, a classic build, inspect, tag, push) that
    a ship against it gets as far as the push, where X-Registry-Auth would
    carry the registry credentials."""

    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Api-Version", "1.41")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, entries: list) -> None:
        # One JSON document per chunk, as the engine streams progress.
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for e in entries:
            data = json.dumps(e).encode() + b"\r\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding") == "chunked":
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                body += self.rfile.read(size + 2)[:size]
                if size == 0:
                    break
        self.server.log.append(f"{self.requestline}\n{self.headers}\n{body[:4000].decode('latin-1')}")
        path = self.path.split("?")[0]
        if path.endswith("/_ping"):
            self._send(200, b"OK", "text/plain")
        elif path.endswith("/version"):
            self._send(200, {"ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10.24",
                             "Os": "linux", "Arch": "amd64"})
        elif path.endswith("/build"):
            self._stream([{"stream": "Step 1/1 : FROM scratch\n"}, {"aux": {"ID": IMAGE_ID}},
                          {"stream": f"Successfully built {IMAGE_ID[7:19]}\n"}])
        elif path.endswith("/images/json"):
            self._send(200, [])
        elif path.endswith("/json") and "/images/" in path:
            self._send(200, {"Id": IMAGE_ID, "RepoTags": [], "RepoDigests": [], "Config": {"Labels": {}}})
        elif path.endswith("/tag"):
            self._send(201, b"", "text/plain")
        elif path.endswith("/push"):
            self._stream([{"status": "Pushed"}, {"status": f"1: digest: {DIGEST} size: 1"},
                          {"aux": {"Tag": "1", "Digest": DIGEST, "Size": 1}}])
        else:
            self._send(404, {"message": "not here"})

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _record

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def fake_engine():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.log = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def workspace(tmp_path, fake_engine):
    """A workspace as a fork's pull request could leave it."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /\n")
    secret = tmp_path / "not-bound-secret"
    secret.write_text(FILE_SECRET)
    (ws / "jenkinsctl.yaml").write_text(
        "version: 1\n"
        f"engine: {{host: 'tcp://127.0.0.1:{fake_engine.server_port}'}}\n"
        "registry:\n"
        "  url: 127.0.0.1:5999\n"
        "  username: ci\n"
        f"  password: {{file: {secret}}}\n")
    return ws


def run_step(ws: pathlib.Path, params: dict, env_extra: dict) -> tuple[subprocess.CompletedProcess, dict]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JENKINSCTL_", "DOCKER_"))}
    env.update(PYTHONPATH=str(ROOT), JENKINSCTL_PARAMS=json.dumps(params), **env_extra)
    err = ws.parent / "error.json"
    err.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-m", "jenkinsctl", "--params-env", "JENKINSCTL_PARAMS",
                           "--error-file", str(err), "ship", "--result", str(ws.parent / "result.json")],
                          cwd=ws, env=env, capture_output=True, text=True, timeout=120)
    details = json.loads(err.read_text()) if err.exists() else {}
    return proc, details


def leaks(log: list[str]) -> list[str]:
    """Requests that carried registry credentials: an X-Registry-Auth header,
    or a secret in any form (the header is base64 of a JSON auth config)."""
    import base64

    found = []
    for entry in log:
        decoded = entry
        for line in entry.splitlines():
            if line.lower().startswith("x-registry-auth:"):
                value = line.split(":", 1)[1].strip()
                decoded += base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("latin-1")
                found.append(entry.splitlines()[0])
        if PASSWORD in decoded or FILE_SECRET in decoded:
            found.append(entry.splitlines()[0])
    return found


PARAMS = {"image": "127.0.0.1:5999/team/app", "tags": ["1"], "builder": "classic"}
CREDENTIALS = {"JENKINSCTL_REGISTRY_USERNAME": "ci", "JENKINSCTL_REGISTRY_PASSWORD": PASSWORD}


def test_the_fake_engine_hears_a_named_config_without_credentials(workspace, fake_engine):
    """The control: a config the pipeline names is used, and the fake engine
    does receive what jenkinsctl sends it, so the tests below can fail."""
    (workspace / "named.yaml").write_text(
        f"version: 1\nengine: {{host: 'tcp://127.0.0.1:{fake_engine.server_port}'}}\n")
    proc, _ = run_step(workspace, {**PARAMS, "config": "named.yaml"}, {})
    assert proc.returncode == 0, proc.stderr
    requests = [entry.splitlines()[0] for entry in fake_engine.log]
    assert any("/build" in r for r in requests) and any("/push" in r for r in requests), requests
    assert leaks(fake_engine.log) == []


@pytest.mark.case(24)
def test_a_jenkinsctl_yaml_in_the_workspace_is_ignored(workspace, fake_engine):
    proc, details = run_step(workspace, PARAMS, {**CREDENTIALS, "DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert proc.returncode == 3, proc.stderr  # the engine: the default one, not the file's
    assert "/nonexistent/docker.sock" in proc.stderr
    assert fake_engine.log == []
    for text in (proc.stdout, proc.stderr, json.dumps(details)):
        assert PASSWORD not in text and FILE_SECRET not in text

    # The same command outside a step still finds ./jenkinsctl.yaml.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JENKINSCTL_", "DOCKER_"))}
    out = subprocess.run([sys.executable, "-m", "jenkinsctl", "validate"], cwd=workspace,
                         env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert str(fake_engine.server_port) in out.stdout + out.stderr


@pytest.mark.case(24)
def test_a_tcp_engine_without_tls_gets_no_credentials(workspace, fake_engine):
    proc, details = run_step(workspace, {**PARAMS, "config": "jenkinsctl.yaml"}, CREDENTIALS)
    # Before the fix the fake engine got the whole ship, and the push carried
    # JENKINSCTL_REGISTRY_PASSWORD in X-Registry-Auth.
    assert leaks(fake_engine.log) == []
    assert proc.returncode == 2, proc.stderr
    assert "is a tcp:// engine without TLS, and credentials are in play" in details["message"]
    assert "JENKINSCTL_REGISTRY_PASSWORD" in details["message"]
    assert fake_engine.log == []
    for text in (proc.stdout, proc.stderr, json.dumps(details)):
        assert PASSWORD not in text and FILE_SECRET not in text

    # Credentials referenced by the config alone are in play too.
    proc, details = run_step(workspace, {**PARAMS, "config": "jenkinsctl.yaml"}, {})
    assert proc.returncode == 2 and "without TLS" in details["message"]
    assert fake_engine.log == []


@pytest.mark.case(24)
def test_file_references_reach_only_the_files_jenkins_bound(workspace, tmp_path):
    (workspace / "files.yaml").write_text(
        "version: 1\nregistry:\n  url: 127.0.0.1:5999\n  username: ci\n"
        f"  password: {{file: {tmp_path / 'not-bound-secret'}}}\n")
    proc, details = run_step(workspace, {**PARAMS, "config": "files.yaml"},
                             {"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert proc.returncode == 2, proc.stderr
    assert details["message"].startswith(f"secret reference {{file: {tmp_path / 'not-bound-secret'}}}: in a "
                                         "pipeline step, jenkinsctl reads only the secret files Jenkins bound")
    assert FILE_SECRET not in proc.stdout + proc.stderr + json.dumps(details)


def test_a_bound_credential_file_resolves(tmp_path):
    from jenkinsctl.config import SecretRef, StepRefusedFileRef, load_config

    bound = tmp_path / "secretFiles" / "hook"
    bound.parent.mkdir()
    bound.write_text("h00k")
    other = tmp_path / "other"
    other.write_text("x")
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("version: 1\nregistry: {url: r.example, username: ci, password: {file: %s}}\n"
                        "deploy:\n  targets:\n    hook: {strategy: webhook, target: 'https://d.example/h', "
                        "secret: {file: %s}}\n" % (other, bound))
    env = {"JENKINSCTL_WEBHOOK_SECRET_FILE": str(bound)}
    cfg = load_config(str(cfg_file), env, step_mode=True)
    assert cfg.deploy_targets["hook"].secret.resolve(env) == "h00k"
    assert isinstance(cfg.registry.password, StepRefusedFileRef)
    with pytest.raises(Exception, match="reads only the secret files Jenkins bound"):
        cfg.registry.password.resolve(env)
    # Outside a step, nothing changes.
    plain = load_config(str(cfg_file), env)
    assert type(plain.registry.password) is SecretRef and plain.registry.password.resolve(env) == "x"
