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


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Logs each request whole (line, headers, body) and answers 404, so a
    client gives up after its first calls."""

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.log.append(f"{self.requestline}\n{self.headers}\n{body.decode('latin-1')}")
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

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


PARAMS = {"image": "127.0.0.1:5999/team/app", "tags": ["1"], "builder": "classic"}
CREDENTIALS = {"JENKINSCTL_REGISTRY_USERNAME": "ci", "JENKINSCTL_REGISTRY_PASSWORD": PASSWORD}


def test_the_fake_engine_hears_a_named_config_without_credentials(workspace, fake_engine):
    """The control: a config the pipeline names is used, and the fake engine
    does receive what jenkinsctl sends it, so the tests below can fail."""
    (workspace / "named.yaml").write_text(
        f"version: 1\nengine: {{host: 'tcp://127.0.0.1:{fake_engine.server_port}'}}\n")
    proc, _ = run_step(workspace, {**PARAMS, "config": "named.yaml"}, {})
    assert proc.returncode != 0
    assert fake_engine.log, proc.stderr


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


def test_a_tcp_engine_without_tls_gets_no_credentials(workspace, fake_engine):
    proc, details = run_step(workspace, {**PARAMS, "config": "jenkinsctl.yaml"}, CREDENTIALS)
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
