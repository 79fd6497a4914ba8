"""Users, CSRF crumbs, start-up, the version header, the request log, timeouts."""
from __future__ import annotations

import time

import jenkins
import pytest
import requests

from emulator_helpers import create_form, node_json, raw
from tests.fakejenkins import JENKINS_VERSION
from tests.fakejenkins.fixtures import ADMIN, ADMIN_PASSWORD, ADMIN_TOKEN, READER, READER_PASSWORD


def test_version_header_on_every_answer(fake_jenkins, jenkins_client):
    jenkins_client.get_whoami()  # resolves auth; see the next test
    assert jenkins_client.get_version() == JENKINS_VERSION
    for resp in (
        requests.get(fake_jenkins.url, timeout=5),  # 403 anonymous
        requests.get(fake_jenkins.url, auth=(ADMIN, "wrong"), timeout=5),  # 401
        requests.get(fake_jenkins.url + "nope", auth=(ADMIN, ADMIN_PASSWORD), timeout=5),  # 404
    ):
        assert resp.headers["X-Jenkins"] == JENKINS_VERSION, resp.status_code


def test_get_version_first_is_anonymous_and_fails_like_a_secured_controller(fake_jenkins):
    # python-jenkins' get_version skips its lazy auth set-up, so as the first
    # call on a controller without anonymous read it is refused (403).
    client = jenkins.Jenkins(fake_jenkins.url, ADMIN, ADMIN_PASSWORD, timeout=5)
    with pytest.raises(jenkins.BadHTTPException):
        client.get_version()
    assert fake_jenkins.requests[-1]["user"] == "anonymous"
    assert fake_jenkins.requests[-1]["status"] == 403
    client.get_whoami()
    assert client.get_version() == JENKINS_VERSION


@pytest.mark.parametrize("secret,kind", [(ADMIN_PASSWORD, "password"), (ADMIN_TOKEN, "token")])
def test_whoami_with_password_or_token(fake_jenkins, secret, kind):
    me = jenkins.Jenkins(fake_jenkins.url, ADMIN, secret, timeout=5).get_whoami()
    assert me["id"] == ADMIN and me["fullName"] == ADMIN and me["_class"] == "hudson.model.User"
    assert fake_jenkins.requests[-1]["auth"] == kind


@pytest.mark.parametrize("user,secret", [(ADMIN, "wrong"), (ADMIN, ADMIN_TOKEN[:-1] + "0"), ("ghost", "x")])
def test_bad_password_or_token_is_401(fake_jenkins, user, secret):
    r = requests.get(fake_jenkins.url + "api/json", auth=(user, secret), timeout=5)
    assert r.status_code == 401
    assert f"Invalid password/token for user: {user}" in r.text
    with pytest.raises(jenkins.JenkinsException, match=r"\[401\]"):
        jenkins.Jenkins(fake_jenkins.url, user, secret, timeout=5).get_whoami()


def test_anonymous_is_403_authentication_required(fake_jenkins):
    for path in ("", "api/json", "computer/api/json", "me/api/json", "crumbIssuer/api/json"):
        r = requests.get(fake_jenkins.url + path, timeout=5)
        assert r.status_code == 403, path
        assert "Authentication required" in r.text
        assert r.headers["X-You-Are-Authenticated-As"] == "anonymous"


def test_read_only_user_reads_but_cannot_write(fake_jenkins):
    reader = jenkins.Jenkins(fake_jenkins.url, READER, READER_PASSWORD, timeout=5)
    assert reader.get_whoami()["id"] == READER
    assert [n["name"] for n in reader.get_nodes()] == ["Built-In Node"]
    with pytest.raises(jenkins.JenkinsException, match=r"\[403\][\s\S]*reader is missing the Agent/Create permission"):
        reader.create_node("a1", launcher=jenkins.LAUNCHER_JNLP)
    r = raw(fake_jenkins, "POST", "computer/doCreateItem", auth=(READER, READER_PASSWORD),
            data=create_form("a1", node_json()))
    assert r.status_code == 403
    assert r.headers["X-Required-Permission"] == "hudson.model.Computer.Create"
    assert fake_jenkins.computers == {}


def test_crumb_is_bound_to_user_and_session(fake_jenkins):
    s = requests.Session()
    s.auth = (ADMIN, ADMIN_PASSWORD)
    r = s.get(fake_jenkins.url + "crumbIssuer/api/json", timeout=5)
    assert r.status_code == 200
    body = r.json()
    assert body["crumbRequestField"] == "Jenkins-Crumb" and len(body["crumb"]) == 64
    assert any(c.name.startswith("JSESSIONID.") for c in s.cookies)
    form = create_form("a1", node_json())

    # no crumb
    r = s.post(fake_jenkins.url + "computer/doCreateItem", data=form, allow_redirects=False, timeout=5)
    assert (r.status_code, "No valid crumb was included in the request" in r.text) == (403, True)
    # right crumb, but without the session cookie it was issued for
    r = requests.post(fake_jenkins.url + "computer/doCreateItem", data=form, auth=(ADMIN, ADMIN_PASSWORD),
                      headers={"Jenkins-Crumb": body["crumb"]}, allow_redirects=False, timeout=5)
    assert r.status_code == 403
    # another user's crumb in this session
    other = requests.Session()
    other.auth = (READER, READER_PASSWORD)
    foreign = other.get(fake_jenkins.url + "crumbIssuer/api/json", timeout=5).json()["crumb"]
    r = s.post(fake_jenkins.url + "computer/doCreateItem", data=form, headers={"Jenkins-Crumb": foreign},
               allow_redirects=False, timeout=5)
    assert r.status_code == 403
    assert fake_jenkins.computers == {}
    # the crumb as a form field works as well as the header
    r = s.post(fake_jenkins.url + "computer/doCreateItem", data={**form, "Jenkins-Crumb": body["crumb"]},
               allow_redirects=False, timeout=5)
    assert r.status_code == 302 and r.headers["Location"] == "."


def test_api_token_requests_need_no_crumb(fake_jenkins):
    r = requests.post(fake_jenkins.url + "computer/doCreateItem", data=create_form("a1", node_json()),
                      auth=(ADMIN, ADMIN_TOKEN), allow_redirects=False, timeout=5)
    assert r.status_code == 302
    assert "a1" in fake_jenkins.computers


def test_crumbs_off_issuer_is_404_and_posts_pass(fake_jenkins_factory):
    emu = fake_jenkins_factory(crumbs=False)
    r = requests.get(emu.url + "crumbIssuer/api/json", auth=(ADMIN, ADMIN_PASSWORD), timeout=5)
    assert r.status_code == 404
    client = jenkins.Jenkins(emu.url, ADMIN, ADMIN_PASSWORD, timeout=5)
    client.create_node("a1", launcher=jenkins.LAUNCHER_JNLP)
    assert client.crumb is False
    assert client.node_exists("a1")


def test_startup_503_then_ready(fake_jenkins_factory):
    emu = fake_jenkins_factory(startup_seconds=1.0)
    r = requests.get(emu.url + "api/json", auth=(ADMIN, ADMIN_PASSWORD), timeout=5)
    assert r.status_code == 503
    assert "Please wait while Jenkins is getting ready to work" in r.text
    assert r.headers["X-Jenkins"] == JENKINS_VERSION
    client = jenkins.Jenkins(emu.url, ADMIN, ADMIN_PASSWORD, timeout=1)
    # While starting, and afterwards too: python-jenkins' wait_for_normal_op
    # polls get_version, which never sends credentials (auth is resolved
    # lazily by other calls), so a secured controller keeps answering 403.
    assert client.wait_for_normal_op(2) is False
    assert {(e["user"], e["status"]) for e in emu.requests} >= {("anonymous", 503), ("anonymous", 403)}
    emu.restart(1.0)
    client._maybe_add_auth()  # what a caller has to do first
    started = time.monotonic()
    assert client.wait_for_normal_op(10) is True
    assert 0.5 < time.monotonic() - started < 5
    info = client.get_info()
    assert info["mode"] == "NORMAL" and info["useCrumbs"] is True
    emu.restart(30)
    assert requests.get(emu.url, auth=(ADMIN, ADMIN_PASSWORD), timeout=5).status_code == 503


def test_api_json_tree_filter(fake_jenkins, jenkins_client):
    jenkins_client.create_node("a1", launcher=jenkins.LAUNCHER_JNLP)
    data = jenkins_client.get_info(query="?tree=mode,views[name]")
    assert data == {"_class": "hudson.model.Hudson", "mode": "NORMAL",
                    "views": [{"_class": "hudson.model.AllView", "name": "all"}]}
    r = raw(fake_jenkins, "GET", "computer/api/json?tree=computer[displayName,offline]")
    assert [c["displayName"] for c in r.json()["computer"]] == ["Built-In Node", "a1"]
    assert set(r.json()["computer"][1]) == {"_class", "displayName", "offline"}


def test_request_log_counts_posts(fake_jenkins, jenkins_client):
    jenkins_client.get_whoami()
    jenkins_client.get_nodes()
    assert fake_jenkins.posts() == []
    jenkins_client.create_node("a1", launcher=jenkins.LAUNCHER_JNLP)
    posts = fake_jenkins.posts()
    assert [(p["method"], p["path"], p["user"], p["status"]) for p in posts] == [
        ("POST", "/computer/doCreateItem", ADMIN, 302)]
    log = requests.get(fake_jenkins.url + "_emulator/requests", timeout=5).json()
    assert log == fake_jenkins.requests
    assert all("_emulator" not in e["path"] for e in log)
    requests.delete(fake_jenkins.url + "_emulator/requests", timeout=5)
    assert fake_jenkins.requests == []


def test_never_answering_server_times_out(silent_server):
    client = jenkins.Jenkins(silent_server.url, ADMIN, ADMIN_PASSWORD, timeout=0.5, retries=0)
    started = time.monotonic()
    with pytest.raises(jenkins.TimeoutException):
        client.get_whoami()
    assert time.monotonic() - started < 5
    assert silent_server.accepted >= 1


def test_hang_mode_accepts_and_never_answers(fake_jenkins):
    requests.post(fake_jenkins.url + "_emulator/hang", timeout=5)
    with pytest.raises(requests.ReadTimeout):
        requests.get(fake_jenkins.url + "api/json", auth=(ADMIN, ADMIN_PASSWORD), timeout=0.5)
