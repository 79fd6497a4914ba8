"""A container target's ``secrets:`` arrive as 0400 files owned by the
container's user, and never in ``docker inspect`` (unlike ``env``), on the
real engine, through the CLI."""

from __future__ import annotations

import uuid

import pytest

from tests.deploy.helpers import result_of, run_cli, write_config
from tests.support.registry import free_port

pytestmark = pytest.mark.engine


def test_secrets_are_files_not_env_in_every_version(docker_client, example_images, cname, cli_env, tmp_path):
    value = "db-" + uuid.uuid4().hex
    cfg = write_config(tmp_path / "j.yaml", {"web": {
        "strategy": "container", "target": cname, "ports": [f"127.0.0.1:{free_port()}:8080"],
        "env": {"DB_PASSWORD_FILE": "/run/secrets/db_password"},
        "secrets": {"db_password": {"env": "JCTEST_DB_PW"}}}})
    env = {**cli_env, "JCTEST_DB_PW": value}
    try:
        for version in ("v1", "v2"):  # created, then replaced: the new version gets them too
            r = result_of(run_cli("--config", cfg, "-o", "json", "deploy", "--image", example_images[version].pinned,
                                  "--to", "web", env=env))
            assert value not in str(r)
        containers = [c for c in docker_client.containers.list(all=True, filters={"name": cname})
                      if c.name == cname or c.name.startswith(cname + ".v")]
        assert len(containers) == 2  # the running one and the kept previous version
        for c in containers:
            assert value not in str(c.attrs), c.name  # nothing in docker inspect
        c = docker_client.containers.get(cname)
        out = c.exec_run(["stat", "-c", "%a %u %U", "/run/secrets/db_password", "/run/secrets"]).output.decode()
        assert out.split("\n")[:2] == ["400 1000 app", "500 1000 app"], out
        # The app's own user (uid 1000, from the image's USER) reads it.
        res = c.exec_run(["cat", "/run/secrets/db_password"])
        assert res.exit_code == 0 and res.output.decode() == value
    finally:
        for c in docker_client.containers.list(all=True, filters={"name": cname}):
            c.remove(force=True)


def test_a_literal_secret_is_refused_without_echoing_it(tmp_path):
    cfg = write_config(tmp_path / "j.yaml", {"web": {"strategy": "container", "target": "x",
                                                     "secrets": {"db": "literal-pa55word"}}})
    r = run_cli("--config", cfg, "validate")
    assert r.returncode == 2 and "literal secret" in r.stderr
    assert "literal-pa55word" not in r.stderr + r.stdout
