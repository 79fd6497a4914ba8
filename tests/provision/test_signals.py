"""SIGTERM (how Jenkins aborts a build) at each step of apply: the resource
in progress is finished or undone, the exit code is 143, nothing is left
that the next apply would take for complete, and the next apply converges."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from jenkinsctl.converge import INCOMPLETE
from jenkinsctl.errors import Interrupted
from jenkinsctl.jenkins_api import JenkinsAPI
from jenkinsctl.provision import Provisioner
from jenkinsctl.signals import interruptible

pytestmark = pytest.mark.engine


def _term() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def _assert_nothing_half_made(project) -> None:
    containers = project.containers()
    assert not [c.name for c in containers if c.name.endswith(INCOMPLETE)]
    ctl = next((c for c in containers if c.name == f"{project.name}-controller"), None)
    if ctl is not None:
        # Under its real name the controller always has its CasC and secrets.
        bits, _ = ctl.get_archive("/run/jenkinsctl/casc/jenkins.yaml")
        assert b"".join(bits)


@pytest.mark.case(22)
def test_the_cli_exits_143_on_sigterm_and_says_what_was_done(project, figure):
    cfg = project.write(project.doc(agents=[{"name": "agent", "count": 1}]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("JENKINSCTL_")}
    env.update(project.env, JENKINSCTL_LIBRARY_URL=os.environ["JENKINSCTL_LIBRARY_URL"])
    proc = subprocess.Popen([sys.executable, "-m", "jenkinsctl", "--config", cfg, "apply"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Signal once apply has changed something: its first "create ..." line.
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("create "):
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    err = "".join(lines) + err
    assert proc.returncode == 143, (proc.returncode, err)
    assert "interrupted by SIGTERM" in err and "done: create " in err and "Traceback" not in err, err
    _assert_nothing_half_made(project)
    figure(exit_code=proc.returncode, signalled_after=lines[-1].strip())


@pytest.mark.case(22)
@pytest.mark.parametrize("points", [("controller-files", "agent-keys", "node", "online")])
def test_sigterm_at_each_step_of_apply_then_apply_converges(project, monkeypatch, points, figure):
    cfg = project.config(agents=[{"name": "agent", "count": 1}])
    originals = {
        "controller-files": (Provisioner, "_put_controller_files"),
        "agent-keys": (Provisioner, "_write_agent_keys"),
        "node": (JenkinsAPI, "ensure_node"),
        "online": (Provisioner, "_wait_online"),
    }
    for point in points:
        owner, attr = originals[point]
        original = getattr(owner, attr)

        def hooked(*a, _original=original, **kw):
            _term()
            return _original(*a, **kw)

        monkeypatch.setattr(owner, attr, hooked)
        with pytest.raises(Interrupted) as exc:
            with interruptible():
                Provisioner(cfg, environ=project.env).apply(wait_timeout=60)
        monkeypatch.setattr(owner, attr, original)
        assert exc.value.exit_code == 143, point
        assert "interrupted by SIGTERM" in exc.value.message, point
        _assert_nothing_half_made(project)

    result = Provisioner(cfg, environ=project.env).apply(wait_timeout=120)
    assert all(n.get("online") for n in result["nodes"].values()), result["nodes"]
    _assert_nothing_half_made(project)
    assert Provisioner(cfg, environ=project.env).apply(wait_timeout=60)["changed"] == 0
    figure(signalled_at=list(points), exit_code=143, half_made_left=0, converged_after=True)


@pytest.mark.case(22)
def test_a_container_left_incomplete_by_sigkill_is_recreated_not_started(project):
    """What SIGKILL leaves (no handler runs): NAME.incomplete with the wanted
    hash and no files.  apply removes it and makes a complete one."""
    cfg = project.config(agents=[{"name": "agent", "count": 1}])
    prov = Provisioner(cfg, environ=project.env)
    # Interrupt apply right after the controller container is created, before
    # its files go in; then put the leftover back as SIGKILL would leave it.
    calls = []

    def stop_here(self, container, password):
        calls.append(container.name)
        raise KeyboardInterrupt

    mp = pytest.MonkeyPatch()
    mp.setattr(Provisioner, "_put_controller_files", stop_here)
    with pytest.raises(KeyboardInterrupt):
        prov.apply(wait_timeout=60)
    mp.undo()
    assert calls == [f"{project.name}-controller{INCOMPLETE}"]
    # The undo removed it; recreate what SIGKILL would have left behind.
    kwargs = prov.controller_kwargs(prov.password())
    leftover = project.client.containers.create(**{**kwargs, "name": kwargs["name"] + INCOMPLETE})
    result = Provisioner(cfg, environ=project.env).apply(wait_timeout=120)
    assert all(n.get("online") for n in result["nodes"].values())
    names = {c.name for c in project.containers()}
    assert leftover.name not in names
    _assert_nothing_half_made(project)
