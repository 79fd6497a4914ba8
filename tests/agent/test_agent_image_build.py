"""build_agent_image: the content-hash tag, reuse, and what the image
declares.  The image itself is the session's (built at most once)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

from jenkinsctl import agent_image as ai

pytestmark = [pytest.mark.engine]

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_tag_is_version_and_content_hash(agent_image):
    from jenkinsctl import __version__

    repo, tag = agent_image.split(":")
    assert repo == ai.REPOSITORY
    version, digest = tag.rsplit("-", 1)
    assert version == __version__ and len(digest) == 12


def test_a_second_build_reuses_the_image_without_building(agent_image, docker_client):
    # The first call builds only if the tree changed since the session's
    # build (other work in a shared checkout); the second must not build.
    ref = ai.build_agent_image(docker_client, log=lambda line: None)
    start = time.monotonic()
    lines: list[str] = []
    assert ai.build_agent_image(docker_client, log=lines.append) == ref
    assert time.monotonic() - start < 10
    assert lines == [f"agent image {ref} is up to date"]
    assert ai.agent_image_reference() == ref


def test_the_cli_prints_only_the_reference(agent_image, docker_client):
    proc = subprocess.run([sys.executable, "-m", "jenkinsctl", "agent-image"], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    ref = proc.stdout.strip()
    assert proc.stdout == ref + "\n" and ref.startswith(ai.REPOSITORY + ":")
    docker_client.images.get(ref)
    assert ref == ai.agent_image_reference()


def test_image_metadata(agent_image, docker_client):
    attrs = docker_client.images.get(agent_image).attrs["Config"]
    labels = attrs["Labels"]
    for key in ("title", "description", "version", "revision", "licenses", "base.name"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.revision"] == agent_image.rsplit("-", 1)[1]
    assert labels["org.opencontainers.image.base.name"] == ai.DEFAULT_BASE
    assert attrs["Healthcheck"]["Test"][1:] == ["/usr/local/bin/jenkinsctl-agent-entrypoint", "healthcheck"]
    assert attrs["Entrypoint"] == ["/usr/local/bin/jenkinsctl-agent-entrypoint"]
    assert not any(e.split("=")[0].upper().endswith(("PASSWORD", "TOKEN", "SECRET")) for e in attrs["Env"] or [])


def _run_in_image(client, image: str, script: str, **kwargs) -> str:
    from tests.support.engine import TEST_LABELS

    return client.containers.run(image, entrypoint=["sh", "-c", script], remove=True, labels=TEST_LABELS,
                                 **kwargs).decode()


def test_the_image_is_debian_13_with_java_21_git_python_and_jenkinsctl(agent_image, docker_client):
    from jenkinsctl import __version__

    out = _run_in_image(docker_client, agent_image,
                        ". /etc/os-release; echo os=$ID-$VERSION_ID; "
                        "java -version 2>&1 | head -1; git --version; python3 --version; "
                        "jenkinsctl --version; id jenkins")
    assert "os=debian-13" in out
    java = re.search(r'version "(\d+)\.', out)
    assert java and int(java.group(1)) >= 21, out  # Jenkins 2.545+ agents need Java 21
    assert "git version" in out and "Python 3.13" in out
    assert f"jenkinsctl {__version__}" in out
    assert "uid=1000(jenkins) gid=1000(jenkins) groups=1000(jenkins)" in out


def test_the_docker_cli_speaks_api_1_44_and_has_buildx(agent_image, docker_client):
    """Engines from 29.0 on refuse clients below API 1.44.  Without an
    engine the CLI reports its own newest API version."""
    out = _run_in_image(docker_client, agent_image,
                        "docker version --format 'api={{.Client.APIVersion}}' 2>/dev/null; "
                        "docker buildx version; command -v dockerd containerd runc || true")
    api = re.search(r"api=(\d+)\.(\d+)", out)
    assert api and (int(api.group(1)), int(api.group(2))) >= (1, 44), out
    assert re.search(r"github.com/docker/buildx v?0\.(1[3-9]|[2-9]\d)", out), out
    assert "dockerd" not in out and "runc" not in out  # a client only: the engine is the host's


def test_the_cli_negotiates_down_to_the_host_engine(agent_image, docker_client):
    """CLI 26.1 against an older engine (20.10 answers 1.41) uses the
    engine's version instead of failing."""
    server = docker_client.version()["ApiVersion"]
    out = _run_in_image(docker_client, agent_image,
                        "docker version --format '{{.Client.APIVersion}} {{.Client.DefaultAPIVersion}} "
                        "{{.Server.APIVersion}}'",
                        volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}})
    used, newest, engine = out.split()
    assert engine == server
    want = min(tuple(map(int, newest.split("."))), tuple(map(int, server.split("."))))
    assert tuple(map(int, used.split("."))) == want


def test_jenkinsctl_and_its_dependencies_work_on_the_agents_python(agent_image, docker_client):
    """Wheels are built on the host for the agent's Python: every
    requirement is met, and each runtime module imports there (setuptools'
    pkg_resources included: an old one breaks on Python 3.12+)."""
    out = _run_in_image(docker_client, agent_image,
                        "/opt/jenkinsctl/bin/pip check --disable-pip-version-check && "
                        "/opt/jenkinsctl/bin/python -c 'import jenkinsctl.cli, jenkins, docker, yaml, jsonschema, "
                        "rpds, charset_normalizer, pkg_resources; print(\"imports-ok\")'")
    assert "No broken requirements found." in out
    assert "imports-ok" in out


# --- no engine needed -----------------------------------------------------------


def test_content_hash_covers_the_source_and_the_pins(tmp_path):
    src = ai._stage_source(tmp_path / "src")
    pins = ai._runtime_pins()
    h = ai.content_hash(src, pins, ai.DEFAULT_BASE)
    assert h == ai.content_hash(src, pins, ai.DEFAULT_BASE)
    assert (src / "resources" / "agent" / "Dockerfile").is_file()
    assert not list(src.rglob("__pycache__"))
    (src / "resources" / "agent" / "entrypoint.sh").write_text("changed")
    assert ai.content_hash(src, pins, ai.DEFAULT_BASE) != h
    assert ai.content_hash(tmp_path / "src", {**pins, "docker": "0"}, ai.DEFAULT_BASE) != \
        ai.content_hash(tmp_path / "src", pins, ai.DEFAULT_BASE)
    assert ai.content_hash(src, pins, "debian:bookworm-slim") != ai.content_hash(src, pins, ai.DEFAULT_BASE)


def test_pins_cover_the_runtime_dependency_closure():
    pins = ai._runtime_pins()
    for name in ("python-jenkins", "docker", "pyyaml", "jsonschema", "requests", "urllib3"):
        assert name in pins, name
    assert "pytest" not in pins and "paramiko" not in pins
    assert pins["setuptools"] == ai.AGENT_PIN_OVERRIDES["setuptools"]


def test_the_default_base_is_the_dockerfiles():
    """build_agent_image passes DEFAULT_BASE as ARG BASE, and the wheels are
    fetched for AGENT_PYTHON: a plain `docker build` of resources/agent must
    land on the same base."""
    assert ai.DEFAULT_BASE == "debian:trixie-slim" and ai.AGENT_PYTHON == (3, 13)
    dockerfile = (ROOT / "resources" / "agent" / "Dockerfile").read_text()
    assert f"ARG BASE={ai.DEFAULT_BASE}\n" in dockerfile


def test_container_kwargs_mount_the_socket_and_the_workspace_at_the_same_path():
    from tests.support.agent import agent_group

    g = agent_group("/srv/agents")
    kw = ai.agent_container_kwargs(image="img", name="p-agent-1", node="agent-1", group=g,
                                   labels={"a": "b"}, network="p-net", publish_ssh=0)
    assert kw["volumes"]["/var/run/docker.sock"] == {"bind": "/var/run/docker.sock", "mode": "rw"}
    assert kw["volumes"]["/srv/agents/agent-1"] == {"bind": "/srv/agents/agent-1", "mode": "rw"}
    assert kw["environment"] == {"SSH_PORT": "22", "JENKINS_AGENT_WORKDIR": "/srv/agents/agent-1"}
    assert kw["ports"] == {"22/tcp": ("127.0.0.1", None)}
    assert "no-new-privileges:true" in kw["security_opt"]
    assert ai.node_remote_fs(g, "agent-2") == "/srv/agents/agent-2"


def test_the_keys_archive_holds_no_client_private_key(tmp_path):
    import io
    import tarfile

    from jenkinsctl.keys import KeyStore

    ks = KeyStore(tmp_path)
    data = ai.agent_keys_archive(ks, "agent-1")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "authorized_keys"}
        assert all(m.mode == 0o600 and m.uid == 0 for m in members.values())
        body = b"".join(tar.extractfile(m).read() for m in members.values())
    assert ks.client_key().private_key().encode() not in body
    assert ks.client_key().public_line.encode() in body


def test_an_installed_jenkinsctl_without_a_checkout_can_stage_and_build_its_wheel(tmp_path):
    """jenkinsctl installed from its wheel (as on an agent, or from PyPI)
    has no setup.cfg: the staged project is made from the installed package
    and its metadata, and must build a wheel that still carries resources/."""
    import zipfile

    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist),
                    str(ai._stage_source(tmp_path / "co"))], check=True, timeout=300)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                    *map(str, dist.glob("*.whl"))], check=True, timeout=300)
    code = ("import pathlib, sys; from jenkinsctl import agent_image as a; "
            "assert a._checkout_root() is None, a.__file__; "
            "src = a._stage_source(pathlib.Path(sys.argv[1])); print(src)")
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "staged")], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    staged = pathlib.Path(out.stdout.strip())
    cfg = (staged / "setup.cfg").read_text()
    assert "jenkinsctl._resources" in cfg and "docker>=7" in cfg
    rebuilt = tmp_path / "rebuilt"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(rebuilt), str(staged)],
                   check=True, timeout=300)
    names = zipfile.ZipFile(next(rebuilt.glob("*.whl"))).namelist()
    assert "jenkinsctl/_resources/agent/Dockerfile" in names
    assert "jenkinsctl/_resources/agent/entrypoint.sh" in names
    assert "jenkinsctl/commands/keys.py" in names
