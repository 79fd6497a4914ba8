"""The system credentials store, through python-jenkins' jenkins_open."""
from __future__ import annotations

import json

import jenkins
import pytest
import requests

from emulator_helpers import CREDS, jenkins_post_xml, password_credential_xml, raw, ssh_key_credential_xml
from tests.fakejenkins.sshkeys import generate

KEY = generate("cred")


def _get(client, path):
    return client.jenkins_open(requests.Request("GET", client.server + path))


def test_create_get_update_delete_ssh_key(jenkins_client, fake_jenkins):
    jenkins_post_xml(jenkins_client, CREDS + "createCredentials",
                     ssh_key_credential_xml("agent-key", "jenkins", KEY.private_openssh, "agents"))
    data = json.loads(_get(jenkins_client, CREDS + "credential/agent-key/api/json"))
    assert data["id"] == "agent-key" and data["typeName"] == "SSH Username with private key"
    assert data["displayName"] == "jenkins (agents)" and data["fullName"] == "system/_/agent-key"
    assert "PRIVATE KEY" not in json.dumps(data)
    xml = _get(jenkins_client, CREDS + "credential/agent-key/config.xml")
    assert "<secret-redacted/>" in xml and "PRIVATE KEY" not in xml

    other = generate("rotated")
    jenkins_post_xml(jenkins_client, CREDS + "credential/agent-key/config.xml",
                     ssh_key_credential_xml("agent-key", "builder", other.private_openssh))
    assert json.loads(_get(jenkins_client, CREDS + "credential/agent-key/api/json"))["displayName"] == "builder"
    assert fake_jenkins.credentials["agent-key"].private_key.strip() == other.private_openssh.strip()

    r = raw(fake_jenkins, "POST", CREDS + "credential/agent-key/doDelete")
    assert r.status_code == 302
    with pytest.raises(jenkins.NotFoundException):
        _get(jenkins_client, CREDS + "credential/agent-key/api/json")


def test_username_password_credential(jenkins_client, fake_jenkins):
    jenkins_post_xml(jenkins_client, CREDS + "createCredentials", password_credential_xml("registry", "bot", "s3cret"))
    data = json.loads(_get(jenkins_client, CREDS + "credential/registry/api/json"))
    assert data["typeName"] == "Username with password" and data["displayName"] == "bot/******"
    assert "s3cret" not in json.dumps(data)
    assert "s3cret" not in _get(jenkins_client, CREDS + "credential/registry/config.xml")
    assert [c["id"] for c in json.loads(_get(jenkins_client, CREDS + "api/json"))["credentials"]] == ["registry"]


def test_duplicate_id_is_409(jenkins_client, fake_jenkins):
    jenkins_post_xml(jenkins_client, CREDS + "createCredentials", password_credential_xml("dup", "a", "b"))
    r = raw(fake_jenkins, "POST", CREDS + "createCredentials", data=password_credential_xml("dup", "c", "d"),
            headers={"Content-Type": "application/xml"})
    assert r.status_code == 409
    with pytest.raises(requests.HTTPError):  # python-jenkins does not wrap 409
        jenkins_post_xml(jenkins_client, CREDS + "createCredentials", password_credential_xml("dup", "c", "d"))
    assert fake_jenkins.credentials["dup"].username == "a"


@pytest.mark.parametrize("body,ctype,status", [
    ("<com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>", "application/xml", 500),
    ("<org.example.Nope><id>x</id></org.example.Nope>", "application/xml", 500),
    (password_credential_xml("bad id!", "a", "b"), "application/xml", 400),
    (password_credential_xml("x", "a", "b").replace("<scope>GLOBAL", "<scope>EVERYWHERE"), "application/xml", 500),
    (password_credential_xml("x", "a", "b").replace("<username>", "<colour>red</colour><username>"), "application/xml", 500),
    (ssh_key_credential_xml("x", "jenkins", ""), "application/xml", 400),
    (password_credential_xml("x", "a", "b"), "application/x-www-form-urlencoded", 500),
])
def test_create_rejects(fake_jenkins, body, ctype, status):
    r = raw(fake_jenkins, "POST", CREDS + "createCredentials", data=body, headers={"Content-Type": ctype})
    assert r.status_code == status
    assert fake_jenkins.credentials == {}


def test_update_with_redacted_secret_is_rejected(jenkins_client, fake_jenkins):
    jenkins_post_xml(jenkins_client, CREDS + "createCredentials", password_credential_xml("c1", "a", "pw"))
    redacted = _get(jenkins_client, CREDS + "credential/c1/config.xml")
    r = raw(fake_jenkins, "POST", CREDS + "credential/c1/config.xml", data=redacted,
            headers={"Content-Type": "application/xml"})
    assert r.status_code == 400
    assert fake_jenkins.credentials["c1"].password == "pw"


def test_missing_credential_is_404_and_reader_is_403(fake_jenkins, jenkins_client):
    assert raw(fake_jenkins, "GET", CREDS + "credential/nope/api/json").status_code == 404
    assert raw(fake_jenkins, "POST", CREDS + "credential/nope/doDelete").status_code == 404
    reader = ("reader", "reader-password")
    r = raw(fake_jenkins, "POST", CREDS + "createCredentials", auth=reader, data=password_credential_xml("x", "a", "b"),
            headers={"Content-Type": "application/xml"})
    assert r.status_code == 403 and "reader is missing the Credentials/Create permission" in r.text
    jenkins_post_xml(jenkins_client, CREDS + "createCredentials", password_credential_xml("x", "a", "b"))
    assert raw(fake_jenkins, "GET", CREDS + "credential/x/api/json", auth=reader).status_code == 403
    assert raw(fake_jenkins, "POST", CREDS + "credential/x/doDelete", auth=reader).status_code == 403
    assert "x" in fake_jenkins.credentials
