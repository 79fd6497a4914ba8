"""Configuration-as-Code at boot, as the pinned configuration-as-code plugin
applies it: jenkinsctl's generated file boots, its secrets are read with
${readFile:}, removed attributes fail the boot, reload re-applies."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

import pytest
import requests
import yaml

from jenkinsctl import casc as jcasc
from jenkinsctl.config import load_config
from jenkinsctl.jenkins_api import HostKey, JenkinsAPI, NodeSpec
from tests.fakejenkins import FakeJenkins
from tests.fakejenkins.version import PINNED, SOURCES_READ

ROOT = pathlib.Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-from-the-file"



def _host_key(node: str) -> str:
    from tests.unit.test_casc import fake_host_key

    return fake_host_key(node)


@pytest.fixture
def casc_dir(tmp_path):
    """jenkinsctl's generated CasC for a two-node config, with its secret
    files under tmp_path instead of /run/secrets."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "jenkins-admin-password").write_text(PASSWORD)
    (secrets / "jenkins-agent-key").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n-----END OPENSSH PRIVATE KEY-----\n")
    cfg_file = tmp_path / "jenkinsctl.yaml"
    cfg_file.write_text("version: 1\nproject: demo\n")
    cfg = load_config(str(cfg_file), env={})
    keys = {n: _host_key(n) for g in cfg.agents for n in g.node_names()}
    text = jcasc.render_casc(cfg, keys, library=jcasc.LibrarySource("https://git.example.com/lib.git", "v1"))
    text = text.replace(jcasc.SECRETS_DIR + "/", str(secrets) + "/")
    d = tmp_path / "casc"
    d.mkdir()
    (d / "jenkins.yaml").write_text(text)
    return cfg, keys, d, secrets


def boot(path, **kw) -> FakeJenkins:
    # Agents at unresolvable hosts: launches fail fast and send nothing.
    return FakeJenkins([], casc=str(path), time_scale=0.001, **kw).start()


def test_identity_is_the_pinned_core():
    emu = FakeJenkins([]).start()
    try:
        r = requests.get(emu.url + "login", timeout=5)
        assert r.headers["X-Jenkins"] == PINNED.core
    finally:
        emu.stop()
    # The behaviour was read from these sources; pins that move need a re-read.
    # Every plugin the emulator models is pinned at the version it was read from.
    modelled = {name: PINNED.plugins.get(name) for name in SOURCES_READ.plugins} if PINNED.plugins \
        else SOURCES_READ.plugins
    assert (PINNED.core, modelled) == (SOURCES_READ.core, SOURCES_READ.plugins), \
        "resources/controller pins other versions than tests/fakejenkins was read from: re-read their sources"


def test_generated_casc_boots_and_the_password_comes_from_the_file(casc_dir):
    cfg, keys, d, _ = casc_dir
    emu = boot(d)  # a directory, as CASC_JENKINS_CONFIG may be
    try:
        assert emu.boot_failure is None
        st = emu.state()
        assert st["users"] == {"admin": {"role": "admin", "hasPassword": True}}
        assert st["numExecutors"] == 0 and st["slaveAgentPort"] == -1 and st["crumbs"]
        assert sorted(st["nodes"]) == ["agent-1", "agent-2"]
        assert st["credentials"] == [jcasc.AGENT_CREDENTIAL_ID]
        assert st["libraries"][0]["remote"] == "https://git.example.com/lib.git"
        # The safe HTML formatter that vars/*.txt are written for (HelpPagesTest).
        assert st["markupFormatter"] == "rawHtml"
        # Only the password from the file works; there is no admin:admin.
        assert requests.get(emu.url + "api/json", auth=("admin", PASSWORD), timeout=5).status_code == 200
        assert requests.get(emu.url + "api/json", auth=("admin", "admin"), timeout=5).status_code == 401
        # The credential's key is the file's content.
        assert emu.credentials[jcasc.AGENT_CREDENTIAL_ID].private_key.startswith("-----BEGIN OPENSSH")
    finally:
        emu.stop()


def test_nodes_from_casc_equal_jenkinsctls_node_spec(casc_dir):
    """apply right after boot: every node compares unchanged, no POST."""
    from jenkinsctl.provision import Provisioner, agents

    cfg, keys, d, _ = casc_dir
    emu = boot(d)
    try:
        prov = Provisioner(cfg, environ={})
        api = JenkinsAPI(emu.url, "admin", PASSWORD, timeout=5)
        for a in agents(cfg):
            spec = prov.node_spec(a, keys[a.node])
            assert api.plan_node(spec) == ("unchanged", {}), a.node
            assert api.ensure_node(spec) == "unchanged"
        assert emu.posts() == []
    finally:
        emu.stop()


def test_unreadable_secret_file_means_an_empty_password_and_a_warning(casc_dir):
    """A secret owned by another user: CasC logs the plugin's warnings and
    uses "", so the admin exists without a password and no login works."""
    cfg, keys, d, secrets = casc_dir
    pw = secrets / "jenkins-admin-password"
    if os.geteuid() == 0:
        pw.unlink()  # root reads any file; a missing file takes the same code path
    else:
        pw.chmod(0)
    emu = boot(d)
    try:
        assert emu.boot_failure is None
        log = "\n".join(emu.log_lines)
        assert f"Configuration import: Error looking up file '{pw}' with UTF-8 encoding. Will default to empty " \
               "string" in log
        assert f"Found unresolved variable 'readFile:{pw}'. Will default to empty string" in log
        assert emu.state()["users"]["admin"] == {"role": "admin", "hasPassword": False}
        for guess in (PASSWORD, "", "admin"):
            assert requests.get(emu.url + "api/json", auth=("admin", guess), timeout=5).status_code == 401
    finally:
        emu.stop()


def test_wrong_owner_secret_in_a_container_gives_an_empty_password(docker_engine, emulator_image, tmp_path):
    """The real case: the emulator runs as uid 1000 in its container and the
    password file belongs to root with mode 0400."""
    import io
    import tarfile

    casc_text = ("jenkins:\n  securityRealm:\n    local:\n      allowsSignup: false\n      users:\n"
                 "      - id: admin\n        password: ${readFile:/run/secrets/pw}\n"
                 "  authorizationStrategy:\n    globalMatrix:\n      entries:\n"
                 "      - user: {name: admin, permissions: [Overall/Administer]}\n")
    c = docker_engine.containers.create(emulator_image, environment={"CASC_JENKINS_CONFIG": "/run/casc.yaml"},
                                        labels={"io.jenkinsctl.test": "1"})
    try:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data, uid, mode in (("casc.yaml", casc_text.encode(), 1000, 0o400),
                                          ("secrets/pw", b"right", 0, 0o400)):
                info = tarfile.TarInfo(name)
                info.size, info.uid, info.gid, info.mode = len(data), uid, uid, mode
                tar.addfile(info, io.BytesIO(data))
        c.put_archive("/run", buf.getvalue())
        c.start()
        deadline = time.monotonic() + 30
        while "emulator on" not in c.logs().decode() and time.monotonic() < deadline:
            time.sleep(0.2)
        code, out = c.exec_run(["python3", "-c", "import urllib.request,base64\n"
                                "r=urllib.request.Request('http://127.0.0.1:8080/api/json')\n"
                                "r.add_header('Authorization','Basic '+base64.b64encode(b'admin:right').decode())\n"
                                "try: urllib.request.urlopen(r)\nexcept Exception as e: print(e.code)"])
        logs = c.logs().decode()
        assert "Error looking up file '/run/secrets/pw'" in logs and "AccessDeniedException" in logs
        assert out.decode().strip() == "401"
    finally:
        c.remove(force=True)


def test_removed_attribute_fails_boot_with_the_plugins_message(casc_dir):
    cfg, keys, d, _ = casc_dir
    f = d / "jenkins.yaml"
    doc = yaml.safe_load(f.read_text())
    doc["jenkins"]["crumbIssuer"] = {"standard": {"excludeClientIPFromCrumb": False}}
    f.write_text(yaml.safe_dump(doc))
    emu = boot(f)
    try:
        expected = ("standard: Invalid configuration elements for type: class hudson.security.csrf.DefaultCrumbIssuer"
                    " : excludeClientIPFromCrumb.\nAvailable attributes : ")
        assert str(emu.boot_failure) == expected
        assert "io.jenkins.plugins.casc.ConfigurationAsCodeBootFailure: io.jenkins.plugins.casc." \
               "UnknownAttributesException: " + expected in "\n".join(emu.log_lines)
        # Every page is the error page, 503; nothing was applied.
        r = requests.get(emu.url + "api/json", auth=("admin", PASSWORD), timeout=5)
        assert r.status_code == 503 and "Error loading configuration" in r.text
        assert "excludeClientIPFromCrumb" in r.text
        assert emu.computers == {} and emu.users == {}
    finally:
        emu.stop()


@pytest.mark.parametrize("patch, message", [
    (lambda j: j["nodes"][0]["permanent"].update(labels="x"),
     "permanent: Invalid configuration elements for type: class hudson.slaves.DumbSlave : labels."),
    (lambda j: j.update(crumbIssuer={"strict": {}}),
     "crumbIssuer: No hudson.security.csrf.CrumbIssuer implementation found for strict"),
    (lambda j: j["nodes"][0]["permanent"]["launcher"]["ssh"]["sshHostKeyVerificationStrategy"][
        "manuallyProvidedKeyVerificationStrategy"].update(key="ssh-ed25519\tAAAA"),
     "Key should be 2 parts: algorithm and Base 64 encoded key value."),
])
def test_unknown_attributes_and_symbols_fail_boot(casc_dir, patch, message):
    cfg, keys, d, _ = casc_dir
    f = d / "jenkins.yaml"
    doc = yaml.safe_load(f.read_text())
    patch(doc["jenkins"])
    f.write_text(yaml.safe_dump(doc))
    emu = boot(f)
    try:
        assert emu.boot_failure is not None and message in str(emu.boot_failure)
    finally:
        emu.stop()


def test_missing_path_fails_boot(tmp_path):
    emu = boot(tmp_path / "nope.yaml")
    try:
        assert str(emu.boot_failure) == f"Invalid configuration: '{tmp_path / 'nope.yaml'}' isn't a valid path."
    finally:
        emu.stop()


def test_node_list_is_replaced_and_reload_reapplies(casc_dir):
    cfg, keys, d, secrets = casc_dir
    emu = boot(d)
    try:
        api = JenkinsAPI(emu.url, "admin", PASSWORD, timeout=5)
        extra = NodeSpec(name="stray", host="127.0.0.1", port=9, credentials_id="x",
                         host_key=HostKey.parse(_host_key("stray")), remote_fs="/tmp/stray")
        assert api.ensure_node(extra) == "created"
        f = d / "jenkins.yaml"
        doc = yaml.safe_load(f.read_text())
        doc["jenkins"]["nodes"] = doc["jenkins"]["nodes"][:1]
        f.write_text(yaml.safe_dump(doc))
        (secrets / "jenkins-admin-password").write_text("second")
        r = api._req("POST", "configuration-as-code/reload")
        assert r.status_code == 302  # ConfigurationAsCode.doReload: sendRedirect("")
        assert sorted(emu.computers) == ["agent-1"]  # stray and agent-2 are gone
        assert requests.get(emu.url + "api/json", auth=("admin", "second"), timeout=5).status_code == 200
        # A bad file on reload: the error page, and nothing changes.
        f.write_text("jenkins:\n  numExecutors: 0\n  bogus: 1\n")
        s = requests.Session()
        s.auth = ("admin", "second")
        crumb = s.get(emu.url + "crumbIssuer/api/json", timeout=5).json()
        r = s.post(emu.url + "configuration-as-code/reload", headers={crumb["crumbRequestField"]: crumb["crumb"]},
                   timeout=5, allow_redirects=False)
        assert "Error loading configuration" in r.text and "bogus" in r.text
        assert sorted(emu.computers) == ["agent-1"] and emu.boot_failure is None
    finally:
        emu.stop()


def test_standalone_reads_casc_jenkins_config(casc_dir):
    from tests.provision.conftest import free_port

    cfg, keys, d, _ = casc_dir
    port = free_port()
    env = {**os.environ, "CASC_JENKINS_CONFIG": str(d / "jenkins.yaml"), "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "tests.fakejenkins", "--port", str(port)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT))
    try:
        line = p.stdout.readline()
        assert "users: admin" in line, line
        url = f"http://127.0.0.1:{port}/api/json"
        assert requests.get(url, auth=("admin", PASSWORD), timeout=5).status_code == 200
        assert requests.get(url, auth=("admin", "admin"), timeout=5).status_code == 401
    finally:
        p.terminate()
        p.wait(timeout=10)
