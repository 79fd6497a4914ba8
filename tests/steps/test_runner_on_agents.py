"""The runner's one sh and the library's Jenkinsfile Check stage on real
containers: the agent image jenkinsctl builds (uid 1000, no root, no groovy,
npm or registry), and a container started the way docker.image().inside
starts one (`docker run -t -d IMAGE cat`, steps run with `docker exec`)."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess

import pytest

from tests.support.agent import agent_image  # noqa: F401 - session fixture
from tests.support.engine import TEST_LABEL

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.engine]


def run_script() -> str:
    """RUN_SCRIPT of vars/jenkinsctlRun.groovy as the shell gets it (the
    Groovy ''' string's escapes undone: a backslash-newline after the opening
    quotes, and \\\\ for one backslash)."""
    text = (ROOT / "vars" / "jenkinsctlRun.groovy").read_text()
    body = re.search(r"RUN_SCRIPT = '''\\\n(.*?)'''", text, re.S).group(1)
    return body.replace("\\\\", "\\")


def step_env(tmp: str) -> list[str]:
    version = (ROOT / "resources" / "io" / "jenkinsctl" / "version.txt").read_text().strip()
    series = ".".join(version.split(".")[:2])
    env = {"JENKINSCTL_PARAMS": json.dumps({"image": "127.0.0.1:5999/team/app", "tags": ["1"]}),
           "JENKINSCTL_COMMAND": "ship", "JENKINSCTL_SERIES": series,
           "JENKINSCTL_RESULT_FILE": f"{tmp}/jenkinsctl-x-result.json",
           "JENKINSCTL_ERROR_FILE": f"{tmp}/jenkinsctl-x-error.json",
           "DOCKER_HOST": "unix:///nonexistent/docker.sock", "RUN": run_script()}
    return [a for k, v in env.items() for a in ("-e", f"{k}={v}")]


def docker(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def test_the_check_stage_runs_on_an_agent_without_root(agent_image):  # noqa: F811
    out = docker("run", "--rm", "--label", f"{TEST_LABEL}=1", "--user", "1000:1000", "--entrypoint", "sh",
                 "-v", f"{ROOT}:/src:ro", "-w", "/src", agent_image, "scripts/agent-check")
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"^\d+ passed, 0 failed$", out.stdout, re.M), out.stdout
    assert "checks with /opt/jenkinsctl/bin/python" in out.stdout


def test_one_sh_with_the_real_helper_reports_and_cleans_up(agent_image):  # noqa: F811
    # What durable-task runs: sh -xe -c SCRIPT; then list what is left.
    out = docker("run", "--rm", "--label", f"{TEST_LABEL}=1", "--user", "1000:1000", "--entrypoint", "sh",
                 *step_env("/tmp"), agent_image, "-c",
                 'mkdir /tmp/ctx && echo "FROM scratch" >/tmp/ctx/Dockerfile && cd /tmp/ctx && '
                 'sh -xe -c "$RUN" >/tmp/report; echo "rc=$?"; cat /tmp/report; '
                 'echo "left: $(ls /tmp | grep jenkinsctl-x || true)"')
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "rc=0"
    assert "@@jenkinsctl status 3" in lines  # the engine is unreachable: jenkinsctl's exit code 3
    error = json.loads(lines[lines.index("@@jenkinsctl error") + 1])
    assert "/nonexistent/docker.sock" in error["message"]
    assert lines[-1] == "left: "
    # jenkinsctl's own output went to stderr (the build log), not the report
    assert "error: " in out.stderr


def test_inside_a_docker_inside_container_the_script_stops_first():
    cid = docker("run", "-t", "-d", "--label", f"{TEST_LABEL}=1", "debian:bookworm-slim", "cat").stdout.strip()
    assert cid
    try:
        out = docker("exec", *step_env("/tmp"), cid, "sh", "-c", 'sh -xe -c "$RUN"')
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == ["@@jenkinsctl inside-container"]
        assert "jenkinsctl --version" not in out.stderr  # stopped before anything ran
    finally:
        docker("rm", "-f", cid)
