"""Nodes: list, info, create (each launcher form), delete, toggle, config.xml."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import jenkins
import pytest
import requests

from emulator_helpers import SSH, V, create_form, node_json, pinned, raw, ssh_params
from tests.fakejenkins.sshkeys import generate

NODE_FIELDS = {"displayName", "description", "assignedLabels", "idle", "offline", "offlineCause",
               "offlineCauseReason", "temporarilyOffline", "numExecutors", "icon"}
HOST_KEY = generate("pinned")


def test_built_in_node(jenkins_client, fake_jenkins):
    nodes = jenkins_client.get_nodes()
    assert nodes == [{"name": "Built-In Node", "offline": False}]
    info = jenkins_client.get_node_info("Built-In Node")  # python-jenkins asks for computer/(master)
    assert NODE_FIELDS <= set(info)
    assert (info["numExecutors"], info["offlineCauseReason"], info["offlineCause"]) == (0, "", None)
    assert raw(fake_jenkins, "GET", "computer/(built-in)/api/json").json()["displayName"] == "Built-In Node"
    detailed = jenkins_client.get_nodes_with_info()
    assert detailed[0]["assignedLabels"] == [{"name": "built-in"}]


def test_missing_node_is_404(jenkins_client, fake_jenkins):
    assert raw(fake_jenkins, "GET", "computer/nope/api/json").status_code == 404
    assert jenkins_client.node_exists("nope") is False
    with pytest.raises(jenkins.JenkinsException, match=r"node\[nope\] does not exist"):
        jenkins_client.get_node_info("nope")
    assert raw(fake_jenkins, "POST", "computer/nope/doDelete").status_code == 404
    with pytest.raises(jenkins.JenkinsException):
        jenkins_client.delete_node("nope")


LAUNCHER_FORMS = {
    "jnlp": (jenkins.LAUNCHER_JNLP, {}),
    "command": (jenkins.LAUNCHER_COMMAND, {"command": "ssh agent java -jar remoting.jar"}),
    "ssh-no-strategy": (SSH, ssh_params()),
    "ssh-port-as-string": (SSH, ssh_params(port="2222")),
    "ssh-non-verifying": (SSH, ssh_params(strategy={"stapler-class": V + "NonVerifyingKeyVerificationStrategy"})),
    "ssh-manually-provided": (SSH, ssh_params(strategy=pinned(HOST_KEY.pin))),
    "ssh-manually-provided-$class": (SSH, ssh_params(strategy={"$class": V + "ManuallyProvidedKeyVerificationStrategy",
                                                               "key": HOST_KEY.pin})),
    "ssh-manually-trusted": (SSH, ssh_params(strategy={"stapler-class": V + "ManuallyTrustedKeyVerificationStrategy",
                                                       "requireInitialManualTrust": False})),
    "ssh-known-hosts": (SSH, ssh_params(strategy={"stapler-class": V + "KnownHostsFileKeyVerificationStrategy"})),
    "ssh-all-options": (SSH, ssh_params(javaPath="/opt/java/bin/java", jvmOptions="-Xmx256m",
                                        launchTimeoutSeconds=30, maxNumRetries=2, retryWaitTime=5,
                                        strategy=pinned(HOST_KEY.pin))),
}


@pytest.mark.parametrize("form", sorted(LAUNCHER_FORMS))
def test_create_node_with_each_launcher_form(jenkins_client, fake_jenkins, form):
    launcher, params = LAUNCHER_FORMS[form]
    jenkins_client.create_node("agent-1", numExecutors=3, nodeDescription="an agent", remoteFS="/home/jenkins",
                               labels="linux  docker", exclusive=True, launcher=launcher, launcher_params=dict(params))
    assert [p["status"] for p in fake_jenkins.posts()] == [302]
    info = jenkins_client.get_node_info("agent-1")
    assert NODE_FIELDS <= set(info)
    assert info["displayName"] == "agent-1" and info["description"] == "an agent"
    assert info["assignedLabels"] == [{"name": "agent-1"}, {"name": "docker"}, {"name": "linux"}]
    assert info["numExecutors"] == 3 and info["temporarilyOffline"] is False
    assert info["offline"] is True  # nothing connected (yet)
    assert info["icon"] == "symbol-computer-offline"
    xml = ET.fromstring(jenkins_client.get_node_config("agent-1"))
    assert xml.tag == "slave"
    assert [xml.findtext(t) for t in ("name", "description", "remoteFS", "numExecutors", "mode", "label")] == [
        "agent-1", "an agent", "/home/jenkins", "3", "EXCLUSIVE", "linux docker"]
    assert xml.find("launcher").get("class") == launcher
    if launcher == SSH:
        la = xml.find("launcher")
        assert la.findtext("host") == "127.0.0.1" and la.findtext("credentialsId") == "agent-key"
        assert la.findtext("port") == ("2222" if form == "ssh-port-as-string" else "9")
        defaults = ("30", "2", "5") if form == "ssh-all-options" else ("60", "10", "15")
        assert (la.findtext("launchTimeoutSeconds"), la.findtext("maxNumRetries"), la.findtext("retryWaitTime")) == defaults
        st = la.find("sshHostKeyVerificationStrategy")
        if "sshHostKeyVerificationStrategy" not in params:
            assert st is None  # the controller will fall back to non-verifying
        else:
            expected = (params["sshHostKeyVerificationStrategy"].get("stapler-class")
                        or params["sshHostKeyVerificationStrategy"]["$class"])
            assert st.get("class") == expected
        if "manually-provided" in form or form == "ssh-all-options":
            assert st.findtext("key/algorithm") == "ssh-ed25519"
            assert st.findtext("key/key") == HOST_KEY.b64


def test_create_answers_302_to_dot(fake_jenkins):
    r = raw(fake_jenkins, "POST", "computer/doCreateItem", data=create_form("a1", node_json()))
    assert (r.status_code, r.headers["Location"]) == (302, ".")


def test_duplicate_is_400_with_x_error(jenkins_client, fake_jenkins):
    jenkins_client.create_node("a1", launcher=jenkins.LAUNCHER_JNLP)
    r = raw(fake_jenkins, "POST", "computer/doCreateItem", data=create_form("a1", node_json()))
    assert r.status_code == 400
    # Jetty: characters above U+00FF (the ‘’ quotes) are sent as spaces.
    assert r.headers["X-Error"] == "Agent called  a1  already exists"


@pytest.mark.parametrize("name", ["", "   ", "a/b", "a\\b", "a:b", "a?b", "a*b", "a|b", "a<b", "a>b", "a[b", "a]b",
                                  "a'b", 'a"b', "a!b", "a@b", "a#b", "a$b", "a%b", "a^b", "a&b", "a;b", " lead",
                                  "trail ", ".", "..", "dot.", "tab\tname"])
def test_invalid_names_are_400(fake_jenkins, name):
    r = raw(fake_jenkins, "POST", "computer/doCreateItem", data=create_form(name, node_json()))
    assert r.status_code == 400, name
    assert r.headers.get("X-Error")
    assert fake_jenkins.computers == {}


def test_bad_name_through_python_jenkins_is_a_requests_http_error(jenkins_client):
    # A 400 is not one of the statuses python-jenkins wraps (401/403/500/404).
    with pytest.raises(requests.HTTPError) as info:
        jenkins_client.create_node("a/b", launcher=jenkins.LAUNCHER_JNLP)
    assert info.value.response.status_code == 400
    assert "unsafe character" in info.value.response.headers["X-Error"]


def test_name_with_space_is_percent_encoded(jenkins_client):
    jenkins_client.create_node("agent one", launcher=jenkins.LAUNCHER_JNLP)
    assert jenkins_client.get_node_info("agent one")["displayName"] == "agent one"
    jenkins_client.delete_node("agent one")
    assert not jenkins_client.node_exists("agent one")


BAD_FORMS = {
    "unknown top-level field": node_json(labels="x"),
    "python-jenkins doc example 'username'": node_json(launcher={"stapler-class": SSH, "host": "h", "port": "22",
                                                                 "credentialsId": "c", "username": "jenkins"}),
    "missing host": node_json(launcher={"stapler-class": SSH, "credentialsId": "c"}),
    "missing credentialsId": node_json(launcher={"stapler-class": SSH, "host": "h"}),
    "numExecutors text": node_json(numExecutors="two"),
    "numExecutors zero": node_json(numExecutors=0),
    "numExecutors missing": {k: v for k, v in node_json().items() if k != "numExecutors"},
    "remoteFS missing": {k: v for k, v in node_json().items() if k != "remoteFS"},
    "mode": node_json(mode="FAST"),
    "port out of range": node_json(launcher={"stapler-class": SSH, "host": "h", "port": 70000, "credentialsId": "c"}),
    "port boolean": node_json(launcher={"stapler-class": SSH, "host": "h", "port": True, "credentialsId": "c"}),
    "maxNumRetries text": node_json(launcher={"stapler-class": SSH, "host": "h", "credentialsId": "c",
                                              "maxNumRetries": "many"}),
    "host not a string": node_json(launcher={"stapler-class": SSH, "host": ["h"], "credentialsId": "c"}),
    "launcher without class": node_json(launcher={"host": "h", "credentialsId": "c"}),
    "unknown launcher class": node_json(launcher={"stapler-class": jenkins.LAUNCHER_WINDOWS_SERVICE}),
    "classes disagree": node_json(launcher={"stapler-class": SSH, "$class": jenkins.LAUNCHER_JNLP, "host": "h",
                                            "credentialsId": "c"}),
    "key as object (XML shape)": node_json(launcher={**ssh_params(), "stapler-class": SSH,
                                                     "sshHostKeyVerificationStrategy": {
                                                         "stapler-class": V + "ManuallyProvidedKeyVerificationStrategy",
                                                         "key": {"algorithm": "ssh-ed25519", "key": HOST_KEY.b64}}}),
    "key without algorithm": node_json(launcher={**ssh_params(), "stapler-class": SSH,
                                                 "sshHostKeyVerificationStrategy": pinned(HOST_KEY.b64)}),
    "key not base64": node_json(launcher={**ssh_params(), "stapler-class": SSH,
                                          "sshHostKeyVerificationStrategy": pinned("ssh-ed25519 %%%notbase64")}),
    "key algorithm mismatch": node_json(launcher={**ssh_params(), "stapler-class": SSH,
                                                  "sshHostKeyVerificationStrategy": pinned("ssh-rsa " + HOST_KEY.b64)}),
    "unknown strategy field": node_json(launcher={**ssh_params(), "stapler-class": SSH,
                                                  "sshHostKeyVerificationStrategy": {**pinned(HOST_KEY.pin), "x": 1}}),
    "unknown retention strategy": node_json(retentionStrategy={"stapler-class": "hudson.slaves.Nope"}),
}


@pytest.mark.parametrize("case", sorted(BAD_FORMS))
def test_strict_form_binding_rejects(fake_jenkins, jenkins_client, case):
    r = raw(fake_jenkins, "POST", "computer/doCreateItem", data=create_form("a1", BAD_FORMS[case]))
    assert r.status_code in (400, 500), (case, r.status_code)
    assert fake_jenkins.computers == {}
    assert not jenkins_client.node_exists("a1")


def test_form_needs_type_and_json(fake_jenkins):
    assert raw(fake_jenkins, "POST", "computer/doCreateItem", data={"name": "a1", "json": "{}"}).status_code == 500
    assert raw(fake_jenkins, "POST", "computer/doCreateItem",
               data={"name": "a1", "type": "hudson.slaves.DumbSlave$DescriptorImpl"}).status_code == 500
    assert raw(fake_jenkins, "POST", "computer/doCreateItem",
               data={"name": "a1", "type": "hudson.slaves.DumbSlave$DescriptorImpl", "json": "{nope"}).status_code == 500
    assert raw(fake_jenkins, "GET", "computer/doCreateItem?name=a1").status_code == 404  # doDoCreateItem is @POST
    assert fake_jenkins.computers == {}


def test_delete_node_answers_302(jenkins_client, fake_jenkins):
    jenkins_client.create_node("a1", launcher=jenkins.LAUNCHER_JNLP)
    r = raw(fake_jenkins, "POST", "computer/a1/doDelete")
    assert (r.status_code, r.headers["Location"]) == (302, "..")
    assert not jenkins_client.node_exists("a1")
    jenkins_client.create_node("a1", launcher=jenkins.LAUNCHER_JNLP)
    jenkins_client.delete_node("a1")
    assert jenkins_client.get_nodes() == [{"name": "Built-In Node", "offline": False}]


def test_disable_and_enable_an_online_node(jenkins_client, fake_jenkins):
    jenkins_client.create_node("a1", launcher=jenkins.LAUNCHER_JNLP)
    fake_jenkins.set_connected("a1")
    assert jenkins_client.get_node_info("a1")["offline"] is False
    jenkins_client.disable_node("a1", "disk full")
    info = jenkins_client.get_node_info("a1")
    assert (info["offline"], info["temporarilyOffline"], info["offlineCauseReason"]) == (True, True, "disk full")
    assert info["offlineCause"]["_class"] == "hudson.slaves.OfflineCause$UserCause"
    jenkins_client.enable_node("a1")
    info = jenkins_client.get_node_info("a1")
    assert (info["offline"], info["temporarilyOffline"], info["offlineCauseReason"]) == (False, False, "")
    toggles = [p["path"] for p in fake_jenkins.posts()]
    assert toggles[1:] == ["/computer/a1/toggleOffline?offlineMessage=disk%20full", "/computer/a1/toggleOffline?offlineMessage="]


def test_enable_node_on_a_disconnected_node_takes_it_offline(jenkins_client, fake_jenkins):
    # REFERENCE §2: python-jenkins decides from `offline`, and toggleOffline
    # flips `temporarilyOffline`; on a node that is merely disconnected,
    # enable_node therefore *disables* it, and disable_node does nothing.
    jenkins_client.create_node("a1", launcher=jenkins.LAUNCHER_JNLP)
    jenkins_client.disable_node("a1", "maintenance")
    assert jenkins_client.get_node_info("a1")["temporarilyOffline"] is False
    jenkins_client.enable_node("a1")
    assert jenkins_client.get_node_info("a1")["temporarilyOffline"] is True


def test_toggle_offline_needs_post_and_permission(fake_jenkins, jenkins_client):
    jenkins_client.create_node("a1", launcher=jenkins.LAUNCHER_JNLP)
    assert raw(fake_jenkins, "GET", "computer/a1/toggleOffline").status_code == 405
    r = raw(fake_jenkins, "POST", "computer/a1/toggleOffline?offlineMessage=x", auth=("reader", "reader-password"))
    assert r.status_code == 403 and "reader is missing the Agent/Disconnect permission" in r.text
    assert raw(fake_jenkins, "POST", "computer/nope/toggleOffline").status_code == 404


def test_config_xml_round_trip_changes_the_node_and_relaunches(jenkins_client, fake_jenkins):
    jenkins_client.create_node("a1", remoteFS="/home/jenkins", labels="old", launcher=SSH,
                               launcher_params=ssh_params(strategy=pinned(HOST_KEY.pin), maxNumRetries=0))
    fake_jenkins.wait_for_launch("a1")
    launches = fake_jenkins.computer("a1").launches
    xml = jenkins_client.get_node_config("a1")
    assert xml.startswith("<?xml version='1.1' encoding='UTF-8'?>")
    new_key = generate("rebuilt")
    tree = ET.fromstring(xml)
    tree.find("label").text = "new docker"
    tree.find("numExecutors").text = "4"
    tree.find("launcher/sshHostKeyVerificationStrategy/key/key").text = new_key.b64
    tree.find("launcher/sshHostKeyVerificationStrategy").remove(tree.find("launcher/sshHostKeyVerificationStrategy/rawKey"))
    jenkins_client.reconfig_node("a1", ET.tostring(tree, encoding="unicode"))
    info = jenkins_client.get_node_info("a1")
    assert info["numExecutors"] == 4
    assert info["assignedLabels"] == [{"name": "a1"}, {"name": "docker"}, {"name": "new"}]
    again = ET.fromstring(jenkins_client.get_node_config("a1"))
    assert again.findtext("launcher/sshHostKeyVerificationStrategy/key/key") == new_key.b64
    assert again.findtext("launcher/sshHostKeyVerificationStrategy/rawKey") == new_key.pin
    fake_jenkins.wait_for_launch("a1")
    assert fake_jenkins.computer("a1").launches == launches + 1  # the POST relaunched it


BAD_XML = {
    "malformed": "<slave><name>a1</name>",
    "empty": "",
    "wrong root": "<project><name>a1</name></project>",
    "unknown element": "<slave><name>a1</name><remoteFS>/x</remoteFS><colour>red</colour>"
                       "<launcher class='hudson.slaves.JNLPLauncher'/></slave>",
    "executors not a number": "<slave><name>a1</name><remoteFS>/x</remoteFS><numExecutors>many</numExecutors>"
                              "<launcher class='hudson.slaves.JNLPLauncher'/></slave>",
    "zero executors": "<slave><name>a1</name><remoteFS>/x</remoteFS><numExecutors>0</numExecutors>"
                      "<launcher class='hudson.slaves.JNLPLauncher'/></slave>",
    "unknown launcher": "<slave><name>a1</name><remoteFS>/x</remoteFS><launcher class='x.Nope'/></slave>",
    "ssh without host": "<slave><name>a1</name><remoteFS>/x</remoteFS>"
                        "<launcher class='hudson.plugins.sshslaves.SSHLauncher'><credentialsId>c</credentialsId>"
                        "</launcher></slave>",
}


@pytest.mark.parametrize("case", sorted(BAD_XML))
def test_reconfig_rejects_bad_xml(jenkins_client, fake_jenkins, case):
    jenkins_client.create_node("a1", labels="keep", launcher=jenkins.LAUNCHER_JNLP)
    before = jenkins_client.get_node_config("a1")
    # python-jenkins wraps 401/403/500 into JenkinsException but lets a 400
    # escape as requests' HTTPError.
    with pytest.raises((jenkins.JenkinsException, requests.HTTPError)):
        jenkins_client.reconfig_node("a1", BAD_XML[case])
    assert fake_jenkins.posts()[-1]["status"] in (400, 500)
    assert jenkins_client.get_node_config("a1") == before


def test_config_xml_needs_permissions(jenkins_client, fake_jenkins):
    jenkins_client.create_node("a1", launcher=jenkins.LAUNCHER_JNLP)
    reader = ("reader", "reader-password")
    r = raw(fake_jenkins, "GET", "computer/a1/config.xml", auth=reader)
    assert r.status_code == 403 and "Agent/ExtendedRead" in r.text
    r = raw(fake_jenkins, "POST", "computer/a1/config.xml", auth=reader, data=jenkins_client.get_node_config("a1"))
    assert r.status_code == 403 and "Agent/Configure" in r.text
    assert raw(fake_jenkins, "GET", "computer/nope/config.xml").status_code == 404


# --- details of the pinned core (jenkins 2.555.3) -------------------------------------------


def test_temporary_offline_cause_lives_in_config_xml(fake_jenkins, jenkins_client):
    jenkins_client.create_node("tmp", launcher=jenkins.LAUNCHER_JNLP)
    # (python-jenkins' disable_node does nothing to a node that is offline already)
    raw(fake_jenkins, "POST", "computer/tmp/toggleOffline", params={"offlineMessage": "<b>patch</b> & reboot"})
    info = jenkins_client.get_node_info("tmp")
    # UserCause.getMessage(): Util.escape; the cause carries its timestamp.
    assert info["offlineCauseReason"] == "&lt;b&gt;patch&lt;/b&gt; &amp; reboot"
    assert info["offlineCause"]["_class"] == "hudson.slaves.OfflineCause$UserCause"
    assert isinstance(info["offlineCause"]["timestamp"], int)
    xml = jenkins_client.get_node_config("tmp")
    assert '<temporaryOfflineCause class="hudson.slaves.OfflineCause$UserCause">' in xml
    assert "<userId>admin</userId>" in xml
    # Posting it back keeps the node disabled; posting without it enables it.
    jenkins_client.reconfig_node("tmp", xml)
    assert jenkins_client.get_node_info("tmp")["temporarilyOffline"] is True
    start, end = xml.index("<temporaryOfflineCause"), xml.index("</temporaryOfflineCause>") + len(
        "</temporaryOfflineCause>")
    jenkins_client.reconfig_node("tmp", xml[:start] + xml[end:])
    assert jenkins_client.get_node_info("tmp")["temporarilyOffline"] is False


def test_get_on_do_create_item_is_404(fake_jenkins):
    assert raw(fake_jenkins, "GET", "computer/doCreateItem").status_code == 404


@pytest.mark.parametrize("name", ["", "   "])
def test_blank_name_is_a_missing_name(fake_jenkins, name):
    r = raw(fake_jenkins, "POST", "computer/doCreateItem", data=create_form(name, node_json()))
    assert r.status_code == 400 and r.headers["X-Error"] == "Query parameter 'name' is required"


def test_x_error_is_latin1_with_other_characters_as_spaces(fake_jenkins, jenkins_client):
    jenkins_client.create_node("dup", launcher=jenkins.LAUNCHER_JNLP)
    r = raw(fake_jenkins, "POST", "computer/doCreateItem", data=create_form("dup", node_json()))
    assert r.status_code == 400
    # ‘ and ’ are above U+00FF: Jetty sends spaces.
    assert r.raw.headers["X-Error"] == "Agent called  dup  already exists"


def test_progressive_text_honours_start(fake_jenkins, jenkins_client):
    jenkins_client.create_node("logs", launcher=jenkins.LAUNCHER_JNLP)
    whole = raw(fake_jenkins, "GET", "computer/logs/logText/progressiveText")
    size = int(whole.headers["X-Text-Size"])
    assert size == len(whole.content) > 10
    tail = raw(fake_jenkins, "GET", "computer/logs/logText/progressiveText", params={"start": 10})
    assert tail.content == whole.content[10:] and tail.headers["X-Text-Size"] == str(size)
    assert raw(fake_jenkins, "GET", "computer/logs/logText/progressiveText",
               params={"start": size}).content == b""


@pytest.mark.parametrize("key, message", [
    # StringTokenizer(key, " "): a tab is no separator.
    ("TAB", "Key should be 2 parts: algorithm and Base 64 encoded key value."),
    # java.util.Base64 refuses the newline of a .pub file read as is.
    ("NEWLINE", "java.lang.IllegalArgumentException: Illegal base64 character a"),
    # Trilead knows ssh-rsa, ssh-dss, ecdsa-sha2-nistp256/384/521 and ssh-ed25519.
    ("sk-ssh-ed25519@openssh.com", "Invalid key: Unexpected key algorithm: sk-ssh-ed25519@openssh.com"),
])
def test_host_key_parsed_like_manually_provided_strategy(fake_jenkins, key, message):
    line = generate().pin
    algorithm, b64 = line.split()[:2]
    text = {"TAB": f"{algorithm}\t{b64}", "NEWLINE": f"{algorithm} {b64}\n"}.get(key, f"{key} {b64}")
    form = create_form("hk", node_json(launcher={**ssh_params(), "stapler-class": SSH,
                                                 "sshHostKeyVerificationStrategy": pinned(text)}))
    r = raw(fake_jenkins, "POST", "computer/doCreateItem", data=form)
    assert r.status_code == 500 and message in r.text, r.text
    assert fake_jenkins.computers == {}
    # A comment after the key is fine: only the first two tokens count.
    ok = create_form("hk", node_json(launcher={**ssh_params(), "stapler-class": SSH,
                                               "sshHostKeyVerificationStrategy": pinned(line + " host@x")}))
    assert raw(fake_jenkins, "POST", "computer/doCreateItem", data=ok).status_code == 302
