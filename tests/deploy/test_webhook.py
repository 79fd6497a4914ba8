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
    cfg = write_config(tmp_path / "j.yaml", {"hook": {"strategy": "webhook", "target": hook.url, "retries": 3,
                                                      "idempotent": True}})
    t = time.monotonic()
    proc = run_cli("--config", cfg, "deploy", "--image", REF, "--to", "hook",
                   env={"JENKINSCTL_WEBHOOK_SECRET": SECRET})
    assert proc.returncode == 0, proc.stderr
    assert [r.status for r in hook.requests] == [503, 502, 200]
    assert time.monotonic() - t >= 3           # backed off 1 s, then 2 s
    assert "retrying" in proc.stderr and SECRET not in proc.stderr + proc.stdout


def test_gives_up_after_the_attempts_on_5xx(hook, tmp_path):
    hook.default_status = 500
    cfg = write_config(tmp_path / "j.yaml", {"hook": {"strategy": "webhook", "target": hook.url, "retries": 2,
                                                      "idempotent": True}})
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


def test_a_post_that_reached_the_receiver_is_not_sent_again_unless_idempotent(hook, tmp_path):
    """A 5xx may come after the receiver acted (queued the redeploy): a
    second POST could deploy twice, so it is not sent by default."""
    hook.script(502)
    cfg = write_config(tmp_path / "j.yaml", {"hook": {"strategy": "webhook", "target": hook.url, "retries": 3}})
    proc = run_cli("--config", cfg, "deploy", "--image", REF, "--to", "hook")
    assert proc.returncode == 6, proc.stderr
    assert [r.status for r in hook.requests] == [502]
    assert "not sent again" in proc.stderr and "idempotent: true" in proc.stderr


def test_a_secret_with_a_newline_is_refused_and_never_printed(hook, tmp_path):
    """Before: http.client's ValueError quoted the header, token included,
    on the console, in --error-file, -o json and --result."""
    cfg = write_config(tmp_path / "j.yaml", {})
    err_file, result = tmp_path / "err.json", tmp_path / "r.json"
    proc = run_cli("--config", cfg, "-o", "json", "--error-file", str(err_file), "deploy", "--image", REF,
                   "--to", f"webhook:{hook.url}", "--result", str(result),
                   env={"JENKINSCTL_WEBHOOK_SECRET": SECRET + "\n"})
    assert proc.returncode == 2, proc.stderr
    assert "JENKINSCTL_WEBHOOK_SECRET contains a newline" in proc.stderr
    everything = proc.stdout + proc.stderr + err_file.read_text() + (result.read_text() if result.exists() else "")
    assert SECRET not in everything
    assert hook.requests == []


def test_bearer_over_plain_http_is_warned_about(hook, tmp_path):
    cfg = write_config(tmp_path / "j.yaml", {})
    proc = run_cli("--config", cfg, "deploy", "--image", REF, "--to", f"webhook:{hook.url}",
                   env={"JENKINSCTL_WEBHOOK_SECRET": SECRET})
    assert proc.returncode == 0, proc.stderr
    assert "plain http://" in proc.stderr and "https://" in proc.stderr
    assert SECRET not in proc.stderr


def test_a_token_in_the_url_path_is_never_printed(tmp_path):
    """Portainer's webhooks carry their token as the last path segment."""
    token = "638e6967-8cf5-4a18-9d87-13b5ee67bb41"
    with WebhookReceiver(path="/api/webhooks/" + token) as portainer:
        portainer.script(500)
        url = portainer.url
        cfg = write_config(tmp_path / "j.yaml", {"p": {"strategy": "webhook", "target": url}})
        err_file, result = tmp_path / "err.json", tmp_path / "r.json"
        proc = run_cli("--config", cfg, "-o", "json", "--error-file", str(err_file), "deploy", "--image", REF,
                       "--to", "p", "--result", str(result))
        assert proc.returncode == 6, proc.stderr
        assert [r.path for r in portainer.requests] == ["/api/webhooks/" + token]
    everything = proc.stdout + proc.stderr + err_file.read_text() + result.read_text()
    assert token not in everything
    assert "/api/webhooks/********" in proc.stderr


def test_echoed_basic_credentials_are_redacted(hook, tmp_path):
    import base64

    hook.script(401)
    password = "b4sic-Pass-word"
    url = hook.url.replace("http://", f"http://deployer:{password}@")
    proc = run_cli("-o", "json", "deploy", "--image", REF, "--to", f"webhook:{url}",
                   "--result", str(tmp_path / "r.json"))
    assert proc.returncode == 6, proc.stderr
    [req] = hook.requests
    encoded = base64.b64encode(f"deployer:{password}".encode()).decode()
    assert req.headers["authorization"] == f"Basic {encoded}"  # it was sent, and echoed back
    everything = proc.stdout + proc.stderr + (tmp_path / "r.json").read_text()
    assert encoded not in everything and password not in everything
    assert "HTTP 401" in proc.stderr
