"""The webhook strategy against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import time

import pytest

from tests.deploy.helpers import result_of, run_cli, write_config
from tests.support.webhook import WebhookReceiver

DIGEST = "sha256:" + "5e" * 32
REF = f"127.0.0.1:5000/team/app@{DIGEST}"
SECRET = "s3cr3t-Token-value"


@pytest.fixture
def hook():
    with WebhookReceiver() as h:
        yield h


def test_posts_image_digest_and_tags_with_the_bearer_secret(hook, tmp_path):
    cfg = write_config(tmp_path / "j.yaml", {})
    r = result_of(run_cli("--config", cfg, "-o", "json", "deploy", "--image", REF, "--to", f"webhook:{hook.url}",
                          env={"JENKINSCTL_WEBHOOK_SECRET": SECRET}))
    assert r["deploy"]["outcome"] == "triggered"
    [req] = hook.requests
    assert req.headers["authorization"] == f"Bearer {SECRET}"
    assert req.headers["content-type"] == "application/json"
    assert req.json["image"] == "127.0.0.1:5000/team/app" and req.json["digest"] == DIGEST
    assert req.json["tags"] == []
    assert SECRET not in r.__repr__()


def test_secret_from_a_file_and_from_the_targets_reference(hook, tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    cfg = write_config(tmp_path / "j.yaml", {})
    result_of(run_cli("--config", cfg, "-o", "json", "deploy", "--image", REF, "--to", f"webhook:{hook.url}",
                      env={"JENKINSCTL_WEBHOOK_SECRET_FILE": str(secret_file)}))
    cfg = write_config(tmp_path / "k.yaml", {"hook": {"strategy": "webhook", "target": hook.url,
                                                      "secret": {"env": "MY_HOOK_TOKEN"}}})
    result_of(run_cli("--config", cfg, "-o", "json", "deploy", "--image", REF, "--to", "hook",
                      env={"MY_HOOK_TOKEN": "other-token", "JENKINSCTL_WEBHOOK_SECRET": "not-this-one"}))
    assert [r.headers["authorization"] for r in hook.requests] == [f"Bearer {SECRET}", "Bearer other-token"]


def test_retries_5xx_then_succeeds(hook, tmp_path):
    hook.script(503, 502)
    cfg = write_config(tmp_path / "j.yaml", {"hook": {"strategy": "webhook", "target": hook.url, "retries": 3}})
    t = time.monotonic()
    proc = run_cli("--config", cfg, "deploy", "--image", REF, "--to", "hook",
                   env={"JENKINSCTL_WEBHOOK_SECRET": SECRET})
    assert proc.returncode == 0, proc.stderr
    assert [r.status for r in hook.requests] == [503, 502, 200]
    assert time.monotonic() - t >= 3           # backed off 1 s, then 2 s
    assert "retrying" in proc.stderr and SECRET not in proc.stderr + proc.stdout


def test_gives_up_after_the_attempts_on_5xx(hook, tmp_path):
    hook.default_status = 500
    cfg = write_config(tmp_path / "j.yaml", {"hook": {"strategy": "webhook", "target": hook.url, "retries": 2}})
    proc = run_cli("--config", cfg, "deploy", "--image", REF, "--to", "hook", env={"JENKINSCTL_WEBHOOK_SECRET": SECRET})
    assert proc.returncode == 6
    assert len(hook.requests) == 2 and "failed after 2 attempts" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout           # the receiver echoed it back


def test_4xx_fails_at_once_and_never_prints_the_secret(hook, tmp_path):
    hook.script(401)
    cfg = write_config(tmp_path / "j.yaml", {"hook": {"strategy": "webhook", "target": hook.url + "?token=" + SECRET,
                                                      "retries": 5}})
    proc = run_cli("--config", cfg, "-o", "json", "--debug", "deploy", "--image", REF, "--to", "hook",
                   "--result", str(tmp_path / "r.json"), env={"JENKINSCTL_WEBHOOK_SECRET": SECRET})
    assert proc.returncode == 6
    assert len(hook.requests) == 1                          # no retry on 4xx
    assert "HTTP 401" in proc.stderr and "not retried" in proc.stderr
    assert "********" in proc.stderr                        # the echoed header, redacted
    everything = proc.stderr + proc.stdout + (tmp_path / "r.json").read_text()
    assert SECRET not in everything                         # not from the header, the echo or the URL's query


def test_connection_refused_is_retried_then_fails(tmp_path):
    from tests.support.registry import free_port

    url = f"http://127.0.0.1:{free_port()}/hook"
    cfg = write_config(tmp_path / "j.yaml", {"hook": {"strategy": "webhook", "target": url, "retries": 2}})
    proc = run_cli("--config", cfg, "deploy", "--image", REF, "--to", "hook")
    assert proc.returncode == 6 and "ConnectionRefusedError" in proc.stderr and "2 attempts" in proc.stderr


def test_webhook_cannot_roll_back(hook, tmp_path):
    cfg = write_config(tmp_path / "j.yaml", {})
    proc = run_cli("--config", cfg, "rollback", "--to", f"webhook:{hook.url}")
    assert proc.returncode == 6 and "cannot roll back" in proc.stderr and not hook.requests
