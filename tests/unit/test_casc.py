"""Generated Configuration-as-Code and plugins.txt, pinned by golden files.

fixtures/casc/NAME.config.yaml (a jenkinsctl config) -> NAME.casc.yaml.
Host keys are derived from the node name so the output is stable.  After
an intended change, regenerate with UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pathlib
import re
import struct
import subprocess

import pytest
import yaml

from jenkinsctl import __version__, casc
from jenkinsctl.config import load_config
from jenkinsctl.controller_image import pinned_versions
from jenkinsctl.errors import ConfigError

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
    # The default crumb issuer without attributes: excludeClientIPFromCrumb is
    # gone since 2.543 and JCasC refuses to boot on an unknown key.
    assert j["crumbIssuer"] == "standard"
    assert "excludeClientIPFromCrumb" not in text
    assert j["markupFormatter"] == {"rawHtml": {"disableSyntaxHighlighting": True}}
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
    assert lib[0]["retriever"]["modernSCM"]["scm"]["git"] == {"remote": LIBRARY.url}
    assert lib[0]["allowVersionOverride"] is False
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


# --- the shared library: no default URL, pinned version, no credentials ----------


def git_checkout(path: pathlib.Path, origin: str | None) -> pathlib.Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    if origin is not None:
        subprocess.run(["git", "-C", str(path), "remote", "add", "origin", origin], check=True)
    return path


def config_with_library(tmp_path, **library):
    path = tmp_path / "jenkinsctl.yaml"
    doc = {"version": 1, "controller": {"library": library}} if library else {"version": 1}
    path.write_text(yaml.safe_dump(doc))
    return load_config(str(path), env={})


def test_no_library_url_anywhere_is_a_clear_error(tmp_path):
    cfg = config_with_library(tmp_path)
    for checkout in (git_checkout(tmp_path / "no-origin", None), tmp_path / "not-a-checkout"):
        with pytest.raises(ConfigError) as info:
            casc.library_source(cfg, {}, checkout=checkout)
        assert "controller.library.url" in info.value.message + info.value.hint
        assert info.value.details["key"] == "controller.library.url"
        assert "github.com/jenkinsctl" not in info.value.message + info.value.hint


def test_the_origin_is_used_without_its_token(tmp_path):
    checkout = git_checkout(tmp_path / "c", "https://oauth2:glpat-SECRET123@git.example.com/platform/jenkinsctl.git")
    src = casc.library_source(config_with_library(tmp_path), {}, checkout=checkout)
    assert src == casc.LibrarySource("https://git.example.com/platform/jenkinsctl.git", f"v{__version__}", False, None)
    cfg = load_config(str(FIXTURES / "defaults.config.yaml"), env={})
    text = casc.render_casc(cfg, {n: fake_host_key(n) for n in ("agent-1", "agent-2")}, library=src)
    assert "SECRET123" not in text and "oauth2" not in text


@pytest.mark.parametrize("url, clean", [
    ("https://user:tok@git.example.com/a/lib.git", "https://git.example.com/a/lib.git"),
    ("https://ghp_TOKEN@github.example.com/a/lib.git", "https://github.example.com/a/lib.git"),
    ("https://git.example.com:8443/a/lib.git", "https://git.example.com:8443/a/lib.git"),
    ("ssh://git:pw@git.example.com:2222/a/lib.git", "ssh://git@git.example.com:2222/a/lib.git"),
    ("git@git.example.com:a/lib.git", "git@git.example.com:a/lib.git"),
])
def test_credentials_are_stripped_from_git_urls(url, clean):
    assert casc.strip_credentials(url) == clean


def test_configured_url_wins_over_origin_and_env_wins_over_both(tmp_path):
    checkout = git_checkout(tmp_path / "c", "https://git.example.com/origin/jenkinsctl.git")
    cfg = config_with_library(tmp_path, url="https://me:tok@git.example.com/mine/jenkinsctl.git")
    assert casc.library_source(cfg, {}, checkout=checkout).url == "https://git.example.com/mine/jenkinsctl.git"
    env = {"JENKINSCTL_LIBRARY_URL": "ssh://git@git.example.com/env/jenkinsctl.git",
           "JENKINSCTL_LIBRARY_VERSION": "v9.9.9"}
    assert casc.library_source(cfg, env, checkout=checkout) == casc.LibrarySource(
        "ssh://git@git.example.com/env/jenkinsctl.git", "v9.9.9")


@pytest.mark.parametrize("url", ["/srv/git/jenkinsctl.git", "file:///srv/git/jenkinsctl.git",
                                 "http://git.example.com/a/jenkinsctl.git", "git://git.example.com/a/jenkinsctl.git"])
def test_a_url_the_controller_cannot_clone_safely_is_refused(tmp_path, url):
    cfg = config_with_library(tmp_path)
    with pytest.raises(ConfigError) as info:
        casc.library_source(cfg, {}, checkout=git_checkout(tmp_path / "c", url))
    assert "origin" in info.value.message and "https:// or ssh://" in info.value.message


def test_a_refused_url_does_not_echo_its_token(tmp_path):
    cfg = config_with_library(tmp_path, url="http://ci:s3cr3t-tok@git.example.com/a/jenkinsctl.git")
    with pytest.raises(ConfigError) as info:
        casc.library_source(cfg, {})
    assert "controller.library.url" in info.value.message
    assert "s3cr3t-tok" not in info.value.message + info.value.hint


def test_version_pin_override_and_credentials_come_from_the_config(tmp_path):
    cfg = config_with_library(tmp_path, url="https://git.example.com/a/jenkinsctl.git")
    src = casc.library_source(cfg, {})
    assert (src.version, src.allow_version_override, src.credentials_id) == (f"v{__version__}", False, None)
    assert casc.release_tag() == f"v{__version__}"
    cfg = config_with_library(tmp_path, url="https://git.example.com/a/jenkinsctl.git", version="v0.1.5",
                              allow_version_override=True, credentials_id="git-readonly")
    doc = yaml.safe_load(casc.render_casc(cfg, {n: fake_host_key(n) for n in ("agent-1", "agent-2")},
                                          library=casc.library_source(cfg, {})))
    lib = doc["unclassified"]["globalLibraries"]["libraries"][0]
    assert (lib["defaultVersion"], lib["allowVersionOverride"]) == ("v0.1.5", True)
    assert lib["retriever"]["modernSCM"]["scm"]["git"] == {"remote": "https://git.example.com/a/jenkinsctl.git",
                                                            "credentialsId": "git-readonly"}


def test_plan_and_apply_check_the_library_first_for_a_controller_they_run(tmp_path, monkeypatch):
    from jenkinsctl import provision

    monkeypatch.delenv("JENKINSCTL_LIBRARY_URL", raising=False)
    monkeypatch.setattr(casc, "checkout_origin", lambda checkout=None: "")
    with pytest.raises(ConfigError, match="no URL for the jenkinsctl shared library"):
        provision.check_library(config_with_library(tmp_path))
    provision.check_library(config_with_library(tmp_path, url="https://git.example.com/a/jenkinsctl.git"))
    external = tmp_path / "external.yaml"
    external.write_text("version: 1\ncontroller: {external: 'https://ci.example.com/'}\n")
    provision.check_library(load_config(str(external), env={}))  # an external controller has its own


def test_every_casc_key_cites_its_source():
    """Each key the generated YAML sets is listed in CASC_KEY_SOURCES with
    the repository, path and version that define it."""
    cfg = load_config(str(FIXTURES / "two-groups.config.yaml"), env={})
    keys = {n: fake_host_key(n) for g in cfg.agents for n in g.node_names()}
    lib = casc.LibrarySource("https://git.example.com/a/jenkinsctl.git", "v1", credentials_id="c")
    doc = yaml.safe_load(casc.render_casc(cfg, keys, library=lib))
    seen: set[str] = set()

    def walk(node, path):
        if isinstance(node, list):
            for item in node:
                walk(item, path + "[]")
        elif isinstance(node, dict):
            assert path in casc.CASC_KEY_SOURCES, f"no source cited for {path or '<root>'}"
            attrs, source = casc.CASC_KEY_SOURCES[path]
            assert source
            seen.add(path)
            for key, value in node.items():
                assert key in attrs, f"{path}.{key} has no cited source"
                walk(value, f"{path}.{key}" if path else key)
        elif path in casc.CASC_KEY_SOURCES:  # a symbol given as a scalar: crumbIssuer: standard
            assert node in casc.CASC_KEY_SOURCES[path][0], f"{path}: {node}"
            seen.add(path)

    walk(doc, "")
    assert seen == set(casc.CASC_KEY_SOURCES), "cited keys the YAML no longer sets"


# --- plugins.txt and the controller image ---------------------------------------


def test_plugins_txt_is_generated_from_the_pins():
    """resources/controller/plugins.txt is the golden file of versions.json."""
    path = casc.plugins_txt_path()
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(casc.render_plugins_txt(), encoding="utf-8")
    assert path.read_text(encoding="utf-8") == casc.render_plugins_txt()


def test_every_plugin_is_pinned_to_a_version_its_core_supports():
    pins = pinned_versions()
    lines = [line for line in casc.plugins_txt_path().read_text().splitlines() if line and not line.startswith("#")]
    for line in lines:
        assert re.fullmatch(r"[a-z0-9-]+:[0-9][A-Za-z0-9._-]*", line), f"plugins.txt: {line!r} has no pinned version"
    assert dict(line.split(":", 1) for line in lines) == pins.plugins
    assert list(pins.plugins) == list(casc.PLUGINS)
    assert {"configuration-as-code", "credentials", "ssh-credentials", "ssh-slaves", "workflow-aggregator", "git",
            "matrix-auth", "pipeline-groovy-lib", "credentials-binding", "antisamy-markup-formatter",
            "pipeline-utility-steps", "timestamper"} <= set(pins.plugins)
    for name, needs in pins.required_core.items():
        assert version_tuple(needs) <= version_tuple(pins.core), f"{name} {pins.plugins[name]} needs Jenkins {needs}"


def version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def test_pins_are_a_current_lts_on_java_21():
    pins = pinned_versions()
    assert re.fullmatch(r"2\.\d{3}\.\d+", pins.core), "an LTS (2.X.Y), not a weekly"
    # Every LTS from 2.555.1 runs on Java 21+ only; lts-jdk17 stopped at 2.541.3.
    assert version_tuple(pins.core) >= (2, 555, 1)
    assert pins.java == "21" and pins.base_image == f"jenkins/jenkins:{pins.core}-jdk21"
    data = json.loads((ROOT / "resources" / "controller" / "versions.json").read_text())
    assert "jenkinsci/docker" in data["core"]["source"]
    assert all(p["source"] for p in data["plugins"].values())


def test_controller_dockerfile():
    path = casc.dockerfile_path()
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(casc.render_dockerfile(path.read_text()), encoding="utf-8")
    text = path.read_text()
    assert text == casc.render_dockerfile(text), "ARG JENKINS_VERSION differs from versions.json"
    core = pinned_versions().core
    assert re.search(rf"^ARG JENKINS_VERSION={re.escape(core)}$", text, re.M)
    assert re.search(r"^ARG JENKINS_IMAGE=jenkins/jenkins:\$\{JENKINS_VERSION\}-jdk21$", text, re.M)
    assert re.search(r"^FROM \$\{JENKINS_IMAGE\}$", text, re.M)
    assert "lts-jdk17" not in text
    # Dependencies at the versions the pinned plugins name, not the newest of the day.
    assert "jenkins-plugin-cli --latest false --plugin-file /usr/share/jenkins/ref/plugins.txt" in text
    assert "-Djenkins.install.runSetupWizard=false" in text
    assert f"CASC_JENKINS_CONFIG={casc.CASC_FILE}" in text
    assert "org.opencontainers.image.title" in text and "HEALTHCHECK" in text
    # Secrets are files, never image ENV.
    assert not re.search(r"ENV .*(PASSWORD|SECRET|TOKEN)", text)
