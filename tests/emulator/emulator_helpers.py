"""Small helpers shared by the emulator's conformance tests."""
from __future__ import annotations

import json

import jenkins
import requests

SSH = jenkins.LAUNCHER_SSH
V = "hudson.plugins.sshslaves.verifiers."


# Launches in API-only tests go to a closed port on 127.0.0.1: refused at
# once, and no traffic leaves this machine.
def ssh_params(host="127.0.0.1", port=9, cred="agent-key", strategy=None, **extra) -> dict:
    p = {"host": host, "port": port, "credentialsId": cred, **extra}
    if strategy is not None:
        p["sshHostKeyVerificationStrategy"] = strategy
    return p


def pinned(key_line: str) -> dict:
    return {"stapler-class": V + "ManuallyProvidedKeyVerificationStrategy", "key": key_line}


def raw(emu, method, path, auth=("admin", "admin-password"), crumb=True, **kw) -> requests.Response:
    """A request as python-jenkins would send it, but keeping the response."""
    s = requests.Session()
    s.auth = auth
    if crumb and method == "POST":
        c = s.get(emu.url + "crumbIssuer/api/json", timeout=5).json()
        kw.setdefault("headers", {})[c["crumbRequestField"]] = c["crumb"]
    return s.request(method, emu.url + path, allow_redirects=False, timeout=10, **kw)


def create_form(name, json_obj, node_type="hudson.slaves.DumbSlave$DescriptorImpl") -> dict:
    return {"name": name, "type": node_type, "json": json.dumps(json_obj)}


def node_json(**over) -> dict:
    """The inner JSON python-jenkins' create_node sends, for an SSH node."""
    d = {
        "nodeDescription": None, "numExecutors": 2, "remoteFS": "/home/jenkins", "labelString": "docker",
        "mode": "NORMAL", "retentionStrategy": {"stapler-class": "hudson.slaves.RetentionStrategy$Always"},
        "nodeProperties": {"stapler-class-bag": "true"},
        "launcher": {"stapler-class": SSH, "host": "127.0.0.1", "port": 9, "credentialsId": "agent-key"},
    }
    d.update(over)
    return d


def ssh_key_credential_xml(cid, username, private_key, description="") -> str:
    return f"""<com.cloudbees.jenkins.plugins.sshcredentials.impl.BasicSSHUserPrivateKey plugin="ssh-credentials">
  <scope>GLOBAL</scope>
  <id>{cid}</id>
  <description>{description}</description>
  <username>{username}</username>
  <privateKeySource class="com.cloudbees.jenkins.plugins.sshcredentials.impl.BasicSSHUserPrivateKey$DirectEntryPrivateKeySource">
    <privateKey>{private_key}</privateKey>
  </privateKeySource>
</com.cloudbees.jenkins.plugins.sshcredentials.impl.BasicSSHUserPrivateKey>"""


def password_credential_xml(cid, username, password, description="") -> str:
    return f"""<com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
  <scope>GLOBAL</scope>
  <id>{cid}</id>
  <description>{description}</description>
  <username>{username}</username>
  <password>{password}</password>
</com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>"""


CREDS = "credentials/store/system/domain/_/"


def jenkins_post_xml(client: jenkins.Jenkins, path: str, xml: str) -> str:
    """POST XML through python-jenkins' own jenkins_open (auth + crumb)."""
    return client.jenkins_open(requests.Request(
        "POST", client.server + path, data=xml.encode(), headers={"Content-Type": "application/xml; charset=utf-8"}))
