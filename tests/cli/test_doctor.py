"""doctor against real parts: the engine, a real registry, the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.fakejenkins.fixtures import ADMIN, ADMIN_PASSWORD, fake_jenkins, fake_jenkins_factory  # noqa: F401


def doctor(*checks: str, env: dict | None = None, config: str | None = None) -> tuple[int, dict, str]:
    argv = [sys.executable, "-m", "jenkinsctl", "-o", "json"]
    if config:
        argv += ["--config", config]
    argv.append("doctor")
    for c in checks:
        argv += ["--check", c]
    base = {k: v for k, v in os.environ.items() if not k.startswith("JENKINSCTL_")}
    out = subprocess.run(argv, capture_output=True, text=True, env={**base, **(env or {})}, timeout=120)
    return out.returncode, json.loads(out.stdout), out.stderr


def by_name(doc: dict) -> dict:
    return {c["name"]: c for c in doc["checks"]}


def test_engine_socket_and_buildkit_pass_on_this_machine(docker_client):
    code, doc, _ = doctor("engine", "socket", "buildkit")
    assert code == 0, doc
    checks = by_name(doc)
    assert "API 1." in checks["engine"]["detail"]
    assert "group id" in checks["socket"]["detail"]


def test_unreachable_engine_fails_with_hint(tmp_path):
    code, doc, err = doctor("engine", "buildkit", env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert code == 9
    checks = by_name(doc)
    assert not checks["engine"]["ok"] and "start the engine" in checks["engine"]["hint"]
    assert not checks["buildkit"]["ok"]
    assert "error: 2 check(s) failed" in err


def test_registry_reachable_and_auth(registry):
    env = {"JENKINSCTL_REGISTRY_URL": registry.url}
    code, doc, _ = doctor("engine", "registry", env=env)
    assert code == 9 and "requires auth" in by_name(doc)["registry"]["detail"]
    code, doc, _ = doctor("engine", "registry", env={**env, **registry.env})
    assert code == 0, doc
    bad = {**env, **registry.env, "JENKINSCTL_REGISTRY_PASSWORD": "wrong-password"}
    code, doc, _ = doctor("engine", "registry", env=bad)
    assert code == 9 and "login as" in by_name(doc)["registry"]["detail"]
    assert "wrong-password" not in json.dumps(doc)


def test_controller_reachable_and_auth(fake_jenkins, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"controller:\n  external: {fake_jenkins.url}\n  username: {ADMIN}\n"
                   "  password: {env: JK_PW}\n")
    code, doc, _ = doctor("controller", config=str(cfg), env={"JK_PW": ADMIN_PASSWORD})
    assert code == 0, doc
    assert f"authenticated as {ADMIN}" in by_name(doc)["controller"]["detail"]
    code, doc, _ = doctor("controller", config=str(cfg), env={"JK_PW": "not-the-password"})
    assert code == 9
    assert "not-the-password" not in json.dumps(doc)


def test_controller_unreachable(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"controller:\n  external: http://127.0.0.1:{port}\n")
    code, doc, _ = doctor("controller", config=str(cfg))
    assert code == 9 and "jenkinsctl apply" in by_name(doc)["controller"]["hint"]
