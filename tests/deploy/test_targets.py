"""Target parsing, strategy choice and small pure pieces: no engine."""

from __future__ import annotations

import pytest

from jenkinsctl.config import load_config
from jenkinsctl.deploy import ImageRef, make_strategy, parse_target, parse_time
from jenkinsctl.deploy.health import rewrite_host
from jenkinsctl.secrets import display_url
from jenkinsctl.deploy.webhook import webhook_secret
from jenkinsctl.errors import ConfigError, UsageError


@pytest.fixture
def config(tmp_path):
    f = tmp_path / "j.yaml"
    f.write_text("version: 1\nproject: p\ndeploy:\n  targets:\n"
                 "    prod:\n      strategy: container\n      target: web\n      ports: ['127.0.0.1:8080:8080']\n"
                 "      keep: 7\n"
                 "    hook:\n      strategy: webhook\n      target: https://deploy.example/hook\n"
                 "      secret: {file: /run/secrets/hook}\n")
    return load_config(str(f), env={})


@pytest.mark.parametrize("spec,strategy,target", [
    ("container:web", "container", "web"),
    ("swarm:api_svc", "swarm", "api_svc"),
    ("webhook:https://h.example/x?token=1", "webhook", "https://h.example/x?token=1"),
    ("stack:shop", "stack", "shop"),
    ("prod", "container", "web"),
])
def test_parse_target_forms(config, spec, strategy, target):
    t = parse_target(spec, config)
    assert (t.strategy, t.target) == (strategy, target)


def test_short_form_picks_up_the_configured_settings(config):
    assert parse_target("container:web", config).keep == 7
    assert parse_target("container:other", config).keep == 3


@pytest.mark.parametrize("spec,error,text", [
    ("", UsageError, "empty"),
    ("container:", UsageError, "nothing after"),
    ("container:-bad", UsageError, "not a valid container name"),
    ("kubernetes:x", UsageError, "unknown strategy 'kubernetes'"),
    ("nosuch", ConfigError, "no deploy target named 'nosuch'"),
    ("webhook:ftp://x", UsageError, "not an http(s) URL"),
])
def test_parse_target_errors(config, spec, error, text):
    with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")) as e:
        parse_target(spec, config)
    assert e.value.hint


def test_image_ref_must_be_a_digest():
    with pytest.raises(UsageError):
        ImageRef("r/x", "latest")
    assert ImageRef("r/x", "sha256:" + "a" * 64).pinned == "r/x@sha256:" + "a" * 64


def test_webhook_secret_precedence(config, tmp_path):
    t = parse_target("webhook:http://127.0.0.1/x", config)
    assert webhook_secret(t, {}) is None
    f = tmp_path / "s"
    f.write_text("from-file\n")
    assert webhook_secret(t, {"JENKINSCTL_WEBHOOK_SECRET_FILE": str(f)}) == "from-file"
    assert webhook_secret(t, {"JENKINSCTL_WEBHOOK_SECRET": "env", "JENKINSCTL_WEBHOOK_SECRET_FILE": str(f)}) == "env"
    # A configured reference wins, and a missing one is an error, not a fallback.
    with pytest.raises(ConfigError, match="cannot read secret file /run/secrets/hook"):
        webhook_secret(parse_target("hook", config), {"JENKINSCTL_WEBHOOK_SECRET": "env"})


def test_urls_are_shown_without_tokens():
    assert display_url("https://u:p@h.example:8443/a/b?token=x") == "https://h.example:8443/a/b"
    assert rewrite_host("http://127.0.0.1:18080/health?x=1", "172.17.0.5", 8080) == "http://172.17.0.5:8080/health?x=1"


def test_engine_timestamps_with_nanoseconds():
    assert parse_time("2026-01-02T03:04:05.123456789Z") > parse_time("2026-01-02T03:04:05.1Z")
    assert parse_time("0001-01-01T00:00:00Z") < parse_time("2026-01-02T03:04:05Z")


def test_stack_targets_go_to_the_stack_strategy(config):
    s = make_strategy(parse_target("stack:shop", config), config=config, client=None)
    assert s.name == "stack"
