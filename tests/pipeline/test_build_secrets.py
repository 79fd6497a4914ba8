"""A bare `--build-arg NAME` is passed to the docker CLI by name, so its
value never appears on an argv (ps, /proc/PID/cmdline), and the CLI's
environment holds no other secret of jenkinsctl's."""

from __future__ import annotations

import os
import shutil
import uuid

import pytest

from tests.pipeline.helpers import jenkinsctl

pytestmark = pytest.mark.engine

REPO = "jenkinsctl-test/build-secrets"
DOCKER = "/usr/bin/docker"  # Debian's 20.10 CLI: BuildKit without the buildx plugin


@pytest.fixture
def recording_cli(tmp_path):
    """A docker CLI that records its argv and environment, then builds."""
    if not os.access(DOCKER, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail(f"{DOCKER} is missing")
        pytest.skip(f"{DOCKER} is missing")
    log = tmp_path / "cli-log"
    log.mkdir()
    wrapper = tmp_path / "docker"
    wrapper.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {log}/argv\nenv > {log}/env\nexec {DOCKER} \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper, log


def test_a_bare_build_arg_reaches_the_build_by_name(recording_cli, tmp_path, docker_client):
    wrapper, log = recording_cli
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    token = "npm-" + uuid.uuid4().hex
    # The RUN proves the value arrived; it fails the build otherwise.
    (ctx / "Dockerfile").write_text(f'FROM debian:bookworm-slim\nARG NPM_TOKEN\nRUN test "$NPM_TOKEN" = "{token}"\n')
    tag = "t" + uuid.uuid4().hex[:8]
    r = jenkinsctl("build", str(ctx), "--image", REPO, "--tag", tag, "--builder", "buildkit",
                   "--build-arg", "NPM_TOKEN",
                   env={"JENKINSCTL_DOCKER_CLI": str(wrapper), "NPM_TOKEN": token,
                        "JENKINSCTL_REGISTRY_USERNAME": "u", "JENKINSCTL_REGISTRY_PASSWORD": "reg-pw-5678",
                        "JENKINSCTL_WEBHOOK_SECRET": "hook-secret-9012", "DEPLOY_KEY_BOUND_BY_JENKINS": "dk-3456"})
    try:
        assert r.rc == 0, r.stderr
        argv = (log / "argv").read_text().splitlines()
        env = (log / "env").read_text()
        assert "NPM_TOKEN" in argv and token not in "\n".join(argv)
        assert f"NPM_TOKEN={token}" in env
        for other in ("reg-pw-5678", "hook-secret-9012", "dk-3456"):
            assert other not in env
    finally:
        shutil.rmtree(log, ignore_errors=True)
        try:
            docker_client.images.remove(f"{REPO}:{tag}", force=True)
        except Exception:  # noqa: BLE001 - the build failed
            pass
