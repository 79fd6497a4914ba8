"""Cases 1, 2, 3 and 17: a controller that hangs, crumbs that go stale or are
off, a bad token, and a controller that is still starting.

The controller is the emulator (tests/fakejenkins) on 127.0.0.1; jenkinsctl
is driven through its CLI where a user sees the result, and through
jenkinsctl.jenkins_api (the seam every provisioning command goes through)
for the calls no command exposes one by one.
"""

from __future__ import annotations

import time

import pytest

from jenkinsctl.errors import JenkinsAuthError, JenkinsError, Timeout
from jenkinsctl.jenkins_api import HostKey, JenkinsAPI, NodeSpec
from tests.fakejenkins import sshkeys
from tests.robustness.conftest import ADMIN, ADMIN_PASSWORD, write_config

CRUMB_HEADER = "Jenkins-Crumb"


def node_spec(name: str = "robust-1") -> NodeSpec:
    return NodeSpec(name=name, host="127.0.0.1", port=1, credentials_id="robust-cred",
                    host_key=HostKey.parse(sshkeys.generate().public_line), remote_fs="/home/jenkins/agent",
                    labels=("docker",), executors=1, max_retries=0, retry_wait=0)


def settle() -> None:
    # The emulator logs a request before answering, but the proxy records
    # after relaying; a moment lets both logs catch up.
    time.sleep(0.2)


# --- case 1 -------------------------------------------------------------------------


@pytest.mark.case(1)
def test_hung_controller_every_call_fails_within_its_timeout(silent_server, figure):
    """Every controller call jenkinsctl makes gives up after controller.timeout
    with a Timeout that names the controller and the call."""
    timeout = 1.0
    api = JenkinsAPI(silent_server.url, ADMIN, ADMIN_PASSWORD, timeout=timeout, ready_timeout=30)
    calls = {
        "wait_ready": lambda: api.wait_ready(),
        "whoami": api.whoami,
        "list_nodes": api.list_nodes,
        "get_node": lambda: api.get_node("robust-1"),
        "ensure_node": lambda: api.ensure_node(node_spec()),
        "delete_node": lambda: api.delete_node("robust-1"),
        "disable_node": lambda: api.disable_node("robust-1"),
        "ensure_credential": lambda: api.ensure_credential("robust-cred", "jenkins", "not-a-real-key"),
    }
    worst = 0.0
    seconds = {}
    for name, call in calls.items():
        start = time.monotonic()
        with pytest.raises(Timeout) as info:
            call()
        took = time.monotonic() - start
        seconds[name] = round(took, 2)
        worst = max(worst, took)
        assert took < timeout * 2 + 0.5, f"{name} took {took:.1f}s against a {timeout}s timeout"
        assert "did not answer" in info.value.message and "127.0.0.1" in info.value.message, info.value.message
        assert info.value.exit_code == 10
    figure(timeout_s=timeout, worst_call_s=round(worst, 2), calls=len(calls))


@pytest.mark.case(1)
def test_hung_controller_cli_fails_within_its_timeout(silent_server, cli, tmp_path, project_name, figure):
    """As a user sees it: each command that talks to the controller gives up
    within controller.timeout (+ start-up) and says which URL hung.  plan,
    apply, down and doctor exit non-zero; status exits 0 and shows the
    controller as unreachable in its table (it reports, it does not fail)."""
    cfg = write_config(tmp_path / "c.yaml", f"project: {project_name}\nstate_dir: {tmp_path}/state\n"
                       f"controller:\n  external: {silent_server.url}\n  timeout: 2\n  ready_timeout: 30\n"
                       "agents: []\n")
    env = {"JENKINSCTL_JENKINS_PASSWORD": ADMIN_PASSWORD}
    # an external controller and no agents: nothing but the controller to talk to
    commands = [("status",), ("plan",), ("apply", "--no-wait"), ("down",), ("doctor",)]
    seconds = {}
    for argv in commands:
        run = cli("-c", cfg, *argv, env=env, timeout=60)
        seconds[" ".join(argv)] = round(run.seconds, 2)
        if argv == ("status",):
            assert "unreachable" in run.stdout, run.output
        else:
            assert run.rc != 0, run.output
        assert run.seconds < 2 * 2 + 6, f"{argv} took {run.seconds:.1f}s"
        assert f"127.0.0.1:{silent_server.port}" in run.output, run.output
        assert "timed out" in run.output or "did not answer" in run.output, run.output
    figure(timeout_s=2, seconds=seconds)


# --- case 2 -------------------------------------------------------------------------


@pytest.mark.case(2)
def test_stale_crumb_is_refreshed_once(fake_jenkins, recording_proxy, figure):
    """The session a crumb was issued for is gone (controller restart, session
    expiry): the POST gets 403, the client fetches one new crumb and succeeds."""
    proxy = recording_proxy(fake_jenkins.port)
    api = JenkinsAPI(proxy.url, ADMIN, ADMIN_PASSWORD, timeout=5, ready_timeout=5)
    api.wait_ready()
    assert api.ensure_node(node_spec("robust-a")) == "created"
    with fake_jenkins.lock:
        fake_jenkins._sessions.clear()  # every crumb the client holds is now for a dead session
    settle()
    fake_jenkins.clear_requests()
    proxy.requests.clear()
    assert api.delete_node("robust-a") is True
    settle()
    statuses = [(r["method"], r["path"].split("?")[0], r["status"]) for r in fake_jenkins.requests]
    deletes = [s for s in statuses if s[1].endswith("/doDelete")]
    crumbs = [s for s in statuses if s[1].startswith("/crumbIssuer")]
    assert [d[2] for d in deletes] == [403, 302], statuses
    assert len(crumbs) == 1, statuses
    assert "robust-a" not in fake_jenkins.state()["nodes"]
    figure(delete_attempts=len(deletes), crumb_fetches=len(crumbs))


@pytest.mark.case(2)
def test_second_crumb_rejection_is_reported_without_a_loop(fake_jenkins, recording_proxy, figure):
    """A proxy that drops the session cookie makes every crumb invalid: one
    refresh, then a clear error, not a loop."""
    proxy = recording_proxy(fake_jenkins.port, drop_cookies=True)
    api = JenkinsAPI(proxy.url, ADMIN, ADMIN_PASSWORD, timeout=5, ready_timeout=5)
    api.wait_ready()
    fake_jenkins.clear_requests()
    start = time.monotonic()
    with pytest.raises(JenkinsError) as info:
        api.ensure_node(node_spec("robust-b"))
    took = time.monotonic() - start
    settle()
    posts = [r for r in fake_jenkins.requests if r["method"] == "POST"]
    assert [r["status"] for r in posts] == [403, 403], fake_jenkins.requests
    assert "crumb" in info.value.message and "403" in info.value.message, info.value.message
    assert info.value.hint and "cookie" in info.value.hint
    assert fake_jenkins.state()["nodes"] == {}
    figure(posts=len(posts), seconds=round(took, 3))


@pytest.mark.case(2)
def test_crumb_issuer_404_means_no_crumb_is_sent(fake_jenkins_factory, recording_proxy, figure):
    emu = fake_jenkins_factory(crumbs=False)
    proxy = recording_proxy(emu.port)
    api = JenkinsAPI(proxy.url, ADMIN, ADMIN_PASSWORD, timeout=5, ready_timeout=5)
    api.wait_ready()
    assert api.ensure_node(node_spec("robust-c")) == "created"
    assert api.delete_node("robust-c") is True
    settle()
    posts = proxy.posts()
    assert len(posts) == 2, proxy.requests
    for p in posts:
        assert not any(k.lower() == CRUMB_HEADER.lower() for k in p["headers"]), p
    issuer = [r for r in emu.requests if r["path"].startswith("/crumbIssuer")]
    assert issuer and all(r["status"] == 404 for r in issuer)
    figure(posts_without_crumb=len(posts), crumb_issuer_calls=len(issuer))


# --- case 3 -------------------------------------------------------------------------


BAD_TOKEN = "11bad0token0that0must0never0leak"


@pytest.mark.case(3)
def test_bad_token_is_one_clear_auth_error_and_never_echoed(fake_jenkins, caplog, figure):
    import logging

    caplog.set_level(logging.DEBUG)
    api = JenkinsAPI(fake_jenkins.url, ADMIN, BAD_TOKEN, timeout=5, ready_timeout=30)
    fake_jenkins.clear_requests()
    start = time.monotonic()
    with pytest.raises(JenkinsAuthError) as info:
        api.wait_ready()
    took = time.monotonic() - start
    settle()
    err = info.value
    assert "401" in err.message and "rejected the credentials" in err.message and ADMIN in err.message
    assert err.exit_code == 7
    answered = [r for r in fake_jenkins.requests]
    assert [r["status"] for r in answered] == [401], answered  # no retry
    text = err.message + (err.hint or "") + repr(err.to_dict()) + caplog.text
    assert BAD_TOKEN not in text
    assert took < 2, "a 401 must not be waited out like a starting controller"
    figure(requests=len(answered), seconds=round(took, 3))


@pytest.mark.case(3)
def test_bad_token_cli_is_one_auth_error_and_never_echoed(fake_jenkins, cli, tmp_path, project_name, figure):
    """As a user sees it: status, plan, apply, down and doctor with a bad token
    each fail with a 401 message naming the user (exit 7; doctor 9), after
    one 401, and the token is in no output, not even with --debug or as
    JSON.  (status reports it in its table and exits 0; apply and
    down may exit 8, provision, when they report the 401 among what they did
    and did not do.)"""
    cfg = write_config(tmp_path / "c.yaml", f"project: {project_name}\nstate_dir: {tmp_path}/state\n"
                       f"controller:\n  external: {fake_jenkins.url}\n  timeout: 5\n  ready_timeout: 30\n"
                       "agents: []\n")
    env = {"JENKINSCTL_JENKINS_PASSWORD": BAD_TOKEN}
    codes = {}
    for argv in (("status",), ("plan",), ("apply", "--no-wait"), ("down",), ("--debug", "apply", "--no-wait"),
                 ("--output", "json", "status"), ("doctor", "--check", "controller")):
        fake_jenkins.clear_requests()
        run = cli("-c", cfg, *argv, env=env, timeout=60)
        settle()
        where = " ".join(argv)
        codes[where] = run.rc
        assert BAD_TOKEN not in run.output, f"{where}: the token leaked:\n{run.output}"
        assert "Traceback" not in run.output or "--debug" in argv, run.output
        if argv[0] == "doctor":
            assert run.rc == 9, f"{where}: exit {run.rc}\n{run.output}"
            assert "401" in run.stdout and "rejected the credentials" in run.stdout, f"{where}:\n{run.output}"
        elif argv[-1] == "status" and run.rc == 0:
            # status reports an unreachable controller in its table, not as a failure
            assert "401" in run.stdout or "credentials" in run.stdout, f"{where}:\n{run.output}"
        else:
            # apply and down may report it as a provision failure (8) listing what was done
            assert run.rc in ((7, 8) if ("apply" in argv or "down" in argv) else (7,)), f"{where}: exit {run.rc}\n{run.output}"
            assert "401" in run.stderr and "rejected the credentials" in run.stderr, f"{where}:\n{run.stderr}"
        unauthorized = [r for r in fake_jenkins.requests if r["status"] == 401]
        assert len(unauthorized) == 1, f"{where}: {fake_jenkins.requests}"
        assert not [r for r in fake_jenkins.requests if r["method"] == "POST"], where
    figure(exit_codes=codes)


# --- case 17 ------------------------------------------------------------------------


@pytest.mark.case(17)
def test_starting_controller_503_is_waited_out(fake_jenkins_factory, figure):
    emu = fake_jenkins_factory(startup_seconds=2.5)
    api = JenkinsAPI(emu.url, ADMIN, ADMIN_PASSWORD, timeout=5, ready_timeout=15)
    start = time.monotonic()
    version = api.wait_ready()
    took = time.monotonic() - start
    assert version
    assert 2.0 < took < 5, took
    settle()
    unavailable = sum(r["status"] == 503 for r in emu.requests)
    assert unavailable >= 2
    figure(startup_s=2.5, waited_s=round(took, 2), answers_503=unavailable)


@pytest.mark.case(17)
def test_controller_still_starting_at_the_limit_fails_within_it(fake_jenkins_factory, figure):
    emu = fake_jenkins_factory(startup_seconds=3600)
    api = JenkinsAPI(emu.url, ADMIN, ADMIN_PASSWORD, timeout=5, ready_timeout=2)
    start = time.monotonic()
    with pytest.raises(Timeout) as info:
        api.wait_ready()
    took = time.monotonic() - start
    assert 1.9 < took < 3.5, took
    assert "not ready within 2s" in info.value.message and "503" in info.value.message, info.value.message
    figure(ready_timeout_s=2, failed_after_s=round(took, 2))
