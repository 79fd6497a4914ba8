"""End-to-end: the pipeline steps in vars/ run on Groovy 2.4 with a real sh
(tests/groovy/EndToEndTest.groovy), through jenkinsctl, the real engine and
a real registry with htpasswd auth, to a container redeploy of the example
app.  This file provides the registry and the cleanup, and checks from the
outside what the pipeline reported."""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import shutil
import subprocess
import sys

import pytest

from tests.support.engine import IN_CI

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.engine, pytest.mark.slow]


def _needs(ok: bool, what: str) -> None:
    if not ok:
        if IN_CI:
            pytest.fail(what)
        pytest.skip(what)


def _remove_project(client, project: str) -> None:
    label = f"io.jenkinsctl.project={project}"
    for c in client.containers.list(all=True, filters={"label": label}):
        c.remove(force=True, v=True)
    for n in client.networks.list(filters={"label": label}):
        n.remove()
    for v in client.volumes.list(filters={"label": label}):
        v.remove(force=True)


def _registry_support():
    from tests.support import registry

    return registry


def _remove_images(client, project: str) -> None:
    """The images this run built (label io.jenkinsctl.e2e=PROJECT).  Not the
    shared test label: containers inherit image labels, and a concurrent
    session's cleanup of that label would remove the app mid-deploy."""
    import docker.errors

    for img in client.images.list(filters={"label": f"io.jenkinsctl.e2e={project}"}):
        for ref in img.tags or [img.id]:
            try:
                client.images.remove(ref, force=True)
            except docker.errors.APIError:
                pass


@pytest.fixture
def registry():
    # Its own registry (htpasswd auth), so a failed push here cannot leave
    # state that another test's registry would see.
    reg = _registry_support().start_registry(auth=True)
    yield reg
    reg.stop()


def test_steps_build_push_redeploy_and_promote(docker_client, registry, tmp_path):
    _needs(shutil.which("groovy") is not None, "groovy is not installed (scripts/bootstrap installs it)")

    project = "e2e" + secrets.token_hex(3)
    out = tmp_path / "result.json"
    env = {
        **os.environ,
        # The agent's jenkinsctl: this interpreter's, which is this checkout's.
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
        "JENKINSCTL_E2E_REGISTRY": registry.url,
        "JENKINSCTL_E2E_USERNAME": registry.username,
        "JENKINSCTL_E2E_PASSWORD": registry.password,
        "JENKINSCTL_E2E_APP_PORT": str(_registry_support().free_port()),
        "JENKINSCTL_E2E_PROJECT": project,
        "JENKINSCTL_E2E_OUT": str(out),
        "JENKINSCTL_E2E_VERBOSE": "1",
    }
    try:
        proc = subprocess.run([str(ROOT / "scripts" / "groovy-test"), "--no-lint", "--e2e", "EndToEndTest"],
                              env=env, capture_output=True, text=True, timeout=1500, cwd=ROOT)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output[-8000:]
        assert output.rstrip().endswith("1 passed, 0 failed"), output[-3000:]
        assert registry.password not in output

        result = json.loads(out.read_text())
        # What the steps returned is what the registry holds and what runs.
        assert registry.manifest_digest("e2e/webapp", "e2e-1.0.2") == result["second"]["digest"]
        assert registry.manifest_digest("e2e/webapp", "e2e-1.0.1") == result["first"]["digest"]
        assert registry.manifest_digest("e2e/webapp", "e2e-1.0.3") is None  # the wrong password pushed nothing
        running = [c for c in docker_client.containers.list(filters={"label": f"io.jenkinsctl.project={project}"})
                   if c.labels.get("io.jenkinsctl.deploy") == f"{project}-web"]
        assert len(running) == 1
        assert running[0].labels["io.jenkinsctl.deploy-image"].endswith("@" + result["first"]["digest"])
        assert result["error"].startswith("[dockerBuildPush] ")
    finally:
        _remove_project(docker_client, project)
        _remove_images(docker_client, project)
