"""The ``stack`` deploy strategy against a real single-node Swarm and a real
registry with auth, deploying examples/pyapp (web + MariaDB)."""

from __future__ import annotations

import dataclasses
import os
import pathlib

import pytest

from jenkinsctl.deploy import DeployOutcome, ImageRef, _default_target
from jenkinsctl.deploy.stack import StackStrategy, pin_document
from jenkinsctl.errors import ConfigError, DeployError
from tests.scenario import pyapp
from tests.support.registry import free_port

DIGEST = "sha256:" + "ab" * 32
OWNER_LABELS = pyapp.OWNER_LABELS


def target(stack: str, **kw):
    return dataclasses.replace(_default_target("stack", stack), **kw)


# --- without an engine ------------------------------------------------------------


def test_pin_document_sets_only_the_image_and_service_labels():
    doc = {"version": "3.8", "services": {"web": {"image": "x", "ports": ["80:80"]}, "db": {"image": "y"}}}
    pin = pin_document(doc, "web", f"reg:5000/app/web@{DIGEST}", {"io.jenkinsctl.test": "1"})
    assert pin == {"version": "3.8", "services": {"web": {"image": f"reg:5000/app/web@{DIGEST}",
                                                          "deploy": {"labels": {"io.jenkinsctl.test": "1"}}}}}


def test_service_is_configured_or_named_like_the_image(tmp_path: pathlib.Path):
    (tmp_path / "compose.yaml").write_text("version: '3.8'\nservices:\n  web: {image: a}\n  db: {image: b}\n")
    s = StackStrategy(None, target("app"), cwd=str(tmp_path))
    doc = {"services": {"web": {}, "db": {}}}
    assert s.compose_file() == tmp_path / "compose.yaml"
    assert s.service_name(doc, ImageRef("reg:5000/team/web", DIGEST)) == "web"
    with pytest.raises(ConfigError, match="cannot tell which service") as e:
        s.service_name(doc, ImageRef("reg:5000/team/api", DIGEST))
    assert "service: NAME" in e.value.hint
    s = StackStrategy(None, target("app", service="cache"), cwd=str(tmp_path))
    with pytest.raises(ConfigError, match="no service 'cache'"):
        s.service_name(doc, None)


def test_missing_compose_file_names_the_directory(tmp_path: pathlib.Path):
    s = StackStrategy(None, target("app"), cwd=str(tmp_path))
    with pytest.raises(ConfigError, match="compose.yaml") as e:
        s.compose_file()
    assert str(tmp_path) in e.value.message


def test_registry_password_goes_to_docker_login_on_stdin_only(tmp_path: pathlib.Path):
    """Every docker CLI call is recorded: the password is never in argv, the
    login uses a private DOCKER_CONFIG that is gone afterwards."""
    (tmp_path / "compose.yaml").write_text("version: '3.8'\nservices:\n  web: {image: a}\n")
    calls = []

    class Done(Exception):
        pass

    def runner(argv, **kw):
        calls.append((argv, kw))
        import subprocess

        if argv[1:3] == ["stack", "deploy"]:
            pin = pathlib.Path(argv[argv.index("-c", 5) + 1]).read_text()
            assert f"reg.example:5000/team/web@{DIGEST}" in pin
            assert os.stat(kw["env"]["DOCKER_CONFIG"]).st_mode & 0o077 == 0
        return subprocess.CompletedProcess(argv, 0, "", "")

    s = StackStrategy(None, target("app"), cwd=str(tmp_path), runner=runner, docker_cli="docker",
                      auth={"username": "ci", "password": "s3cret pw", "serveraddress": "reg.example:5000"})
    s._require_manager = lambda: None
    s._service = lambda name: None

    def stop(*a, **kw):
        raise Done

    s._wait_created = stop
    with pytest.raises(Done):
        s.deploy(ImageRef("reg.example:5000/team/web", DIGEST))
    argvs = [c[0] for c in calls]
    assert argvs[0] == ["docker", "login", "--username", "ci", "--password-stdin", "reg.example:5000"]
    assert calls[0][1]["input"] == "s3cret pw"
    assert argvs[1][:4] == ["docker", "stack", "deploy", "--with-registry-auth"]
    assert argvs[2] == ["docker", "logout", "reg.example:5000"]
    assert not any("s3cret" in " ".join(a) for a in argvs)
    assert not os.path.exists(calls[0][1]["env"]["DOCKER_CONFIG"])


# --- against the real Swarm -------------------------------------------------------


@pytest.mark.engine
@pytest.mark.slow
def test_stack_deploy_update_and_rollback(swarm, registry, pyapp_images):
    client = swarm
    stack = pyapp.stack_name("strategy")
    port = free_port()
    env = {**os.environ, "PYAPP_REGISTRY": registry.url, "PYAPP_PORT": str(port)}
    pyapp.create_db_secret(client)
    web = f"{stack}_web"
    db = f"{stack}_db"

    def strategy() -> StackStrategy:
        t = target(stack, compose=str(pyapp.PYAPP / "compose.yaml"), service="web", timeout=180)
        # The project's ownership labels with a test project name (not
        # io.jenkinsctl.test=1, which other sessions' cleanup removes).
        return StackStrategy(client, t, labels=OWNER_LABELS,
                             auth=registry.auth, environ=env)

    try:
        # 1. first deploy: the stack is created, web runs v1 by digest.
        repo, d1 = pyapp_images("1")
        out = strategy().deploy(ImageRef(repo, d1))
        assert isinstance(out, DeployOutcome)
        assert (out.outcome, out.digest, out.details["service"]) == ("created", d1, web)
        pyapp.wait_answering(port, "1")
        assert [pyapp.page(port)["visits"] for _ in range(3)] == ["1", "2", "3"]
        assert pyapp.page(port)["version"] == "1"
        spec = client.api.inspect_service(web)["Spec"]
        assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == f"{repo}@{d1}"
        assert {k: spec["Labels"][k] for k in OWNER_LABELS} == OWNER_LABELS
        db_before = pyapp.service_task(client, db)
        volumes = pyapp.container_volumes(client, db_before["container"])
        assert volumes == [f"{stack}_db-data"]

        # 2. a new web digest: only web moves, the database keeps its task,
        #    container and volume, and the counter goes on.
        repo, d2 = pyapp_images("2")
        out = strategy().deploy(ImageRef(repo, d2))
        assert (out.outcome, out.details["state"]) == ("deployed", "completed")
        assert out.previous == {"image": f"{repo}@{d1}"}
        pyapp.wait_answering(port, "2")
        assert pyapp.page(port)["visits"] == "5"
        assert pyapp.service_task(client, db) == db_before
        assert pyapp.service_task(client, web)["image"] == f"{repo}@{d2}"

        # 3. an image whose health check fails: Swarm rolls back, v2 serves
        #    again, and the error carries the health output.
        repo, d3 = pyapp_images("3", health="fail")
        with pytest.raises(DeployError) as e:
            strategy().deploy(ImageRef(repo, d3))
        msg = e.value.message
        assert "rolled back" in msg and f"{repo}@{d2}" in msg, msg
        assert "health output" in msg and "APP_HEALTH=fail" in msg, msg
        assert e.value.details["outcome"] == "rolled-back"
        pyapp.wait_answering(port, "2")
        after = pyapp.page(port)
        assert (after["version"], after["visits"]) == ("2", "6"), after
        assert pyapp.service_task(client, db) == db_before

        # 4. the digest that already runs: nothing to update.
        out = strategy().deploy(ImageRef(repo, d2))
        assert out.outcome == "unchanged"
    finally:
        pyapp.remove_stack(client, stack)
        pyapp.remove_db_secret(client)
