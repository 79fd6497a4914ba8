"""Generated Configuration-as-Code and plugins.txt, pinned by golden files.

fixtures/casc/NAME.config.yaml (a jenkinsctl config) -> NAME.casc.yaml.
Host keys are derived from the node name so the output is stable.  After
an intended change, regenerate with UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pathlib
import re
import struct

import pytest
import yaml

from jenkinsctl import casc
from jenkinsctl.config import load_config

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "casc"
CASES = sorted(p.name[: -len(".config.yaml")] for p in FIXTURES.glob("*.config.yaml"))
LIBRARY = casc.LibrarySource("https://git.example.com/platform/jenkinsctl.git", "v1")
ROOT = pathlib.Path(__file__).resolve().parents[2]


def fake_host_key(node: str) -> str:
    """A well-formed ssh-ed25519 public key, fixed per node name."""
    def string(b: bytes) -> bytes:
        return struct.pack(">I", len(b)) + b

    blob = string(b"ssh-ed25519") + string(hashlib.sha256(node.encode()).digest())
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


def generate(case: str) -> tuple[object, str]:
    cfg = load_config(str(FIXTURES / f"{case}.config.yaml"), env={})
    keys = {n: fake_host_key(n) for g in cfg.agents for n in g.node_names()}
    return cfg, casc.render_casc(cfg, keys, library=LIBRARY)


@pytest.mark.parametrize("case", CASES)
def test_golden(case):
    _, text = generate(case)
    expected = FIXTURES / f"{case}.casc.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        expected.write_text(text, encoding="utf-8")
    assert text == expected.read_text(encoding="utf-8")


def test_there_are_golden_cases():
    assert {"defaults", "two-groups", "no-agents"} <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_security_invariants(case):
    cfg, text = generate(case)
    doc = yaml.safe_load(text)
    j = doc["jenkins"]
    assert j["numExecutors"] == 0
    assert j["crumbIssuer"] == "standard"
    realm = j["securityRealm"]["local"]
    assert realm["allowsSignup"] is False
    assert realm["users"] == [{"id": cfg.controller.username, "password": "${readFile:/run/secrets/jenkins-admin-password}"}]
    entries = j["authorizationStrategy"]["globalMatrix"]["entries"]
    assert entries == [{"user": {"name": cfg.controller.username, "permissions": ["Overall/Administer"]}}]
    cred = doc["credentials"]["system"]["domainCredentials"][0]["credentials"][0]["basicSSHUserPrivateKey"]
    assert cred["privateKeySource"] == {"directEntry": {"privateKey": "${readFile:/run/secrets/jenkins-agent-key}"}}
    assert cred["id"] == casc.AGENT_CREDENTIAL_ID and cred["username"] == "jenkins"
    names = [n for g in cfg.agents for n in g.node_names()]
    assert [n["permanent"]["name"] for n in j["nodes"]] == names
    for node in j["nodes"]:
        ssh = node["permanent"]["launcher"]["ssh"]
        assert ssh["credentialsId"] == casc.AGENT_CREDENTIAL_ID
        assert ssh["sshHostKeyVerificationStrategy"] == {
            "manuallyProvidedKeyVerificationStrategy": {"key": fake_host_key(node["permanent"]["name"])}}
    lib = doc["unclassified"]["globalLibraries"]["libraries"]
    assert [(x["name"], x["defaultVersion"]) for x in lib] == [("jenkinsctl", "v1")]
    assert lib[0]["retriever"]["modernSCM"]["scm"]["git"]["remote"] == LIBRARY.url
    assert "PRIVATE KEY" not in text and "nonVerifying" not in text


def test_nodes_get_a_per_node_remote_fs_and_the_group_settings():
    cfg, text = generate("two-groups")
    nodes = {n["permanent"]["name"]: n["permanent"] for n in yaml.safe_load(text)["jenkins"]["nodes"]}
    assert nodes["builders-2"]["remoteFS"] == "/srv/jenkins/builders-2"
    assert nodes["builders-2"]["labelString"] == "docker linux"
    assert nodes["builders-2"]["numExecutors"] == 4
    assert nodes["heavy-1"]["launcher"]["ssh"]["port"] == 2222
    assert nodes["heavy-1"]["launcher"]["ssh"]["host"] == "ci-heavy-1"


def test_casc_for_uses_the_keystores_host_keys(tmp_path):
    from jenkinsctl.keys import KeyStore

    cfg = load_config(str(FIXTURES / "defaults.config.yaml"), env={})
    ks = KeyStore(tmp_path)
    text = casc.casc_for(cfg, ks, library=LIBRARY)
    for node in ("agent-1", "agent-2"):
        assert f"key: {ks.host_key(node).host_key_entry}\n" in text
    assert ks.client_key().private_key() not in text


def test_casc_credential_description_is_what_apply_compares(tmp_path):
    """After a controller restart re-applies the CasC file, apply's
    ensure_credential must still find the credential unchanged."""
    from jenkinsctl.jenkins_api import credential_marker
    from jenkinsctl.keys import KeyStore

    cfg = load_config(str(FIXTURES / "defaults.config.yaml"), env={})
    ks = KeyStore(tmp_path)
    doc = yaml.safe_load(casc.casc_for(cfg, ks, library=LIBRARY))
    cred = doc["credentials"]["system"]["domainCredentials"][0]["credentials"][0]["basicSSHUserPrivateKey"]
    assert cred["description"] == credential_marker(casc.AGENT_USER, ks.client_key().private_key())
    ks.rotate(client=True)
    doc = yaml.safe_load(casc.casc_for(cfg, ks, library=LIBRARY))
    cred2 = doc["credentials"]["system"]["domainCredentials"][0]["credentials"][0]["basicSSHUserPrivateKey"]
    assert cred2["description"] != cred["description"]


def test_a_missing_host_key_is_an_error_not_a_silent_gap():
    cfg = load_config(str(FIXTURES / "defaults.config.yaml"), env={})
    with pytest.raises(KeyError):
        casc.render_casc(cfg, {"agent-1": fake_host_key("agent-1")}, library=LIBRARY)


def test_library_source_precedence(monkeypatch):
    assert casc.library_source({"JENKINSCTL_LIBRARY_URL": "https://x/y.git", "JENKINSCTL_LIBRARY_VERSION": "v2"}) \
        == casc.LibrarySource("https://x/y.git", "v2")
    src = casc.library_source({})
    assert src.version == casc.DEFAULT_LIBRARY_VERSION
    assert re.match(r"^(https?://|ssh://|git@)", src.url)


# --- plugins.txt and the controller image ---------------------------------------


def test_plugins_txt_is_generated_from_casc_plugins():
    """resources/controller/plugins.txt is the golden file of PLUGINS."""
    path = casc.plugins_txt_path()
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(casc.render_plugins_txt(), encoding="utf-8")
    assert path.read_text(encoding="utf-8") == casc.render_plugins_txt()


def test_plugins_cover_what_the_casc_uses():
    names = [line for line in casc.plugins_txt_path().read_text().splitlines()
             if line and not line.startswith("#")]
    assert names == list(casc.PLUGINS)
    assert set(names) == {"configuration-as-code", "credentials", "ssh-credentials", "ssh-slaves",
                          "workflow-aggregator", "git", "matrix-auth", "pipeline-groovy-lib"}
    assert all(re.fullmatch(r"[a-z0-9-]+", n) for n in names)


def test_controller_dockerfile():
    text = (ROOT / "resources" / "controller" / "Dockerfile").read_text()
    assert re.search(r"^ARG JENKINS_IMAGE=jenkins/jenkins:lts-jdk17$", text, re.M)
    assert re.search(r"^FROM \$\{JENKINS_IMAGE\}$", text, re.M)
    assert "jenkins-plugin-cli --plugin-file /usr/share/jenkins/ref/plugins.txt" in text
    assert "-Djenkins.install.runSetupWizard=false" in text
    assert f"CASC_JENKINS_CONFIG={casc.CASC_FILE}" in text
    assert "org.opencontainers.image.title" in text and "HEALTHCHECK" in text
    # Secrets are files, never image ENV.
    assert not re.search(r"ENV .*(PASSWORD|SECRET|TOKEN)", text)
