"""Secrets never appear in errors: the one redaction helper, control
characters refused without echoing the value, config errors on secret
fields, and user:token in controller.external."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jenkinsctl import cli, secrets
from jenkinsctl.config import SecretRef, load_document
from jenkinsctl.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "11aa22bb33cc44dd55ee66ff77"


@pytest.fixture(autouse=True)
def _fresh():
    secrets.forget_all()
    yield
    secrets.forget_all()


def run(*args: str, env: dict[str, str] | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("JENKINSCTL_")}
    full.update(env or {})
    full["PYTHONPATH"] = ROOT + os.pathsep + full.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "jenkinsctl", *args], capture_output=True, text=True, env=full,
                          cwd=cwd, timeout=120, stdin=subprocess.DEVNULL)


def test_redact_masks_registered_secrets_url_passwords_and_auth_headers():
    secrets.sensitive("hunter2-secret")
    text = ("login hunter2-secret failed; https://admin:" + TOKEN + "@ci.example/job; "
            "Authorization: Bearer abcDEF123456; Basic dXNlcjpwYXNzd29yZA==")
    out = secrets.redact(text)
    for leaked in ("hunter2-secret", TOKEN, "abcDEF123456", "dXNlcjpwYXNzd29yZA=="):
        assert leaked not in out
    assert "https://admin:********@ci.example/job" in out
    # Prose and challenges are not secrets.
    keep = 'no basic auth credentials; WWW-Authenticate: Bearer realm="https://auth.example/token"'
    assert secrets.redact(keep) == keep


@pytest.mark.parametrize("text", [
    "BEARER abcDEF123456", "x-registry-auth: eyJ1c2VybmFtZSI6ImEifQ==", "Baſic dXNlcjpwYXNzd29yZA==",
    "bAsIc dXNlcjpwYXNzd29yZA==", "ssh://git:" + TOKEN + "@host/repo", "a@b c://x:y@", "plain text, no scheme",
])
def test_redact_skips_a_pattern_only_when_it_cannot_match(text):
    """redact() runs the URL and header patterns only on text that holds "@"
    or an auth scheme; the shortcut must never change the result."""
    import re

    full = re.sub(secrets._URL_USERINFO, lambda m: f"{m.group('pre')}:{secrets.MASK}@", text)
    full = re.sub(secrets._AUTH_HEADER, lambda m: m.group("pre") + secrets.MASK, full)
    assert secrets.redact(text) == full


def test_redact_obj_reaches_nested_values_and_keys():
    secrets.sensitive("s3cr3t-value")
    doc = {"a": ["x s3cr3t-value y", {"s3cr3t-value": 1}], "n": 3}
    assert "s3cr3t-value" not in json.dumps(secrets.redact_obj(doc))


@pytest.mark.case(26)
@pytest.mark.parametrize("value", ["tok-en\n", "tok\r\nX-Evil: 1", "tok\x00en", "tok\ten"])
def test_control_characters_in_a_secret_are_refused_without_the_value(value, tmp_path):
    with pytest.raises(ConfigError) as e:
        SecretRef(env="MY_TOKEN").resolve({"MY_TOKEN": value})
    text = json.dumps(e.value.to_dict())
    assert "MY_TOKEN" in text and "tok" not in text
    if value.rstrip("\r\n") == value.rstrip():
        return  # in a file, trailing line breaks end the secret rather than belong to it
    f = tmp_path / "secret"
    f.write_text(value + "\n")
    with pytest.raises(ConfigError) as e:
        SecretRef(file=str(f)).resolve({})
    assert "tok" not in json.dumps(e.value.to_dict())


def test_a_files_final_line_break_is_not_part_of_the_secret(tmp_path):
    f = tmp_path / "secret"
    f.write_text("pa55word\n")
    assert SecretRef(file=str(f)).resolve({}) == "pa55word"
    assert "pa55word" in secrets.known()


@pytest.mark.parametrize("snippet", [
    "registry:\n  password: {env: 'not a name " + TOKEN + "'}\n",
    "controller:\n  password: {env: 1122334455667788}\n",
    "deploy:\n  targets:\n    h: {strategy: webhook, target: 'https://h/x', secret: {file: ['" + TOKEN + "']}}\n",
])
@pytest.mark.case(26)
def test_config_errors_on_secret_fields_never_echo_the_value(snippet, tmp_path):
    cfg = tmp_path / "j.yaml"
    cfg.write_text("version: 1\n" + snippet)
    with pytest.raises(ConfigError) as e:
        load_document(str(cfg), env={})
    text = json.dumps(e.value.to_dict())
    assert TOKEN not in text and "1122334455667788" not in text, text
    assert "j.yaml:" in e.value.message


@pytest.mark.case(26)
def test_user_token_in_controller_external_is_never_printed(tmp_path):
    cfg = tmp_path / "j.yaml"
    cfg.write_text(f"version: 1\nstate_dir: {tmp_path}/state\n"
                   f"controller:\n  external: 'http://admin:{TOKEN}@127.0.0.1:9/'\n")
    for args in (("validate", str(cfg)), ("-o", "json", "validate", str(cfg)),
                 ("-c", str(cfg), "-o", "json", "doctor"), ("-c", str(cfg), "doctor"),
                 ("-c", str(cfg), "-o", "json", "status"), ("-c", str(cfg), "status")):
        r = run(*args)
        assert TOKEN not in r.stdout + r.stderr, (args, r.stdout, r.stderr)
    r = run("validate", str(cfg))
    assert r.returncode == 0 and "admin:********@127.0.0.1:9" in r.stdout


@pytest.mark.case(26)
def test_every_error_channel_is_redacted(monkeypatch, tmp_path, capsys):
    """An unexpected exception quoting a resolved secret (as http.client's
    'Invalid header value' did) is masked on the console, in -o json and
    in --error-file."""
    from jenkinsctl.commands import validate

    def boom(args, ctx):
        secrets.sensitive(TOKEN)
        raise ValueError(f"Invalid header value b'Bearer {TOKEN}'")

    monkeypatch.setattr(validate, "run", boom)
    err_file = tmp_path / "err.json"
    rc = cli.main(["-o", "json", "--error-file", str(err_file), "validate"])
    out = capsys.readouterr()
    assert rc == 1
    assert TOKEN not in out.out + out.err + err_file.read_text()
    assert "Invalid header value" in out.err


def test_deep_nesting_in_params_env_is_a_clear_config_error(tmp_path):
    # Deeper than any Python's JSON parser accepts: 3.11 stops at about
    # 1,000 levels, 3.13 (Debian 13) only at 10,000.  One environment
    # string may hold 128 KiB, so 50,000 levels still fit.
    deep = "[" * 50000 + "]" * 50000
    r = run("--params-env", "P", "build", env={"P": json.dumps({"image": "x"})[:-1] + ', "tag": ' + deep + "}"})
    assert r.returncode == 2, r.stderr
    assert "unexpected" not in r.stderr and "nested too deeply" in r.stderr


STACK_SCRIPT = r"""
import json, os, pathlib, signal, sys, time
from jenkinsctl.deploy.stack import StackStrategy

signal.signal(signal.SIGINT, signal.default_int_handler)  # as on a terminal, even when started in the background

class Target:
    target, timeout = "app", 30

def runner(argv, **kw):
    config = kw["env"]["DOCKER_CONFIG"]
    if argv[1] == "login":  # what docker login leaves behind
        pathlib.Path(config, "config.json").write_text(json.dumps({"auths": {"r:1": {"auth": "dTpw"}}}))
    if argv[1] == "stack":  # a deploy that is still running when the signal comes
        print(config, flush=True)
        time.sleep(60)
    return type("P", (), {"returncode": 0, "stdout": "", "stderr": ""})()

s = StackStrategy(None, Target(), auth={"username": "u", "password": "p-123", "serveraddress": "r:1"},
                  runner=runner, docker_cli="docker", environ=dict(os.environ))
s._stack_deploy(pathlib.Path("compose.yaml"), {"services": {}}, None)
"""


@pytest.mark.case(26)
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_the_stack_strategys_docker_config_is_removed_on_a_signal(sig, tmp_path):
    """Jenkins aborts a build with SIGTERM: the DOCKER_CONFIG holding the
    registry login must not outlive it."""
    import signal

    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "PYTHONPATH": ROOT, "XDG_RUNTIME_DIR": str(runtime)}
    proc = subprocess.Popen([sys.executable, "-c", STACK_SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=str(tmp_path))
    try:
        config_dir = proc.stdout.readline().strip()
        assert config_dir.startswith(str(runtime) + "/jenkinsctl-stack-"), (config_dir, proc.stderr.read())
        assert os.path.isfile(os.path.join(config_dir, "config.json"))
        assert os.stat(os.path.dirname(config_dir)).st_mode & 0o077 == 0
        proc.send_signal(getattr(signal, sig))
        rc = proc.wait(timeout=30)
    finally:
        proc.kill()
    assert rc != 0
    if sig == "SIGTERM":
        assert rc == -signal.SIGTERM  # still ends as killed by SIGTERM (143 in a shell)
    assert list(runtime.iterdir()) == []


def test_validate_never_prints_a_webhook_token_in_the_url_path(tmp_path):
    cfg = tmp_path / "j.yaml"
    cfg.write_text("deploy:\n  targets:\n    p: {strategy: webhook, target: "
                   "'https://portainer.example:9443/api/webhooks/638e6967-8cf5-4a18-9d87-13b5ee67bb41'}\n")
    r = run("validate", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "638e6967" not in r.stdout and "/api/webhooks/********" in r.stdout


def test_read_secret_file_is_the_one_way_a_secret_file_is_read(tmp_path):
    """The file's final line break is dropped, the value is registered for
    redaction, and an unreadable or multi-line file fails with the caller's
    error class and words, never the content."""
    from jenkinsctl.errors import RegistryError

    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    assert secrets.read_secret_file(str(f), "the token file") == TOKEN
    assert secrets.redact(f"got {TOKEN}") == f"got {secrets.MASK}"
    with pytest.raises(RegistryError, match=r"^cannot read the token file: No such file") as info:
        secrets.read_secret_file(str(tmp_path / "missing"), "the token file", error=RegistryError, hint="look")
    assert info.value.hint == "look"
    f.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        secrets.read_secret_file(str(f), "the token file")
    f.write_text("two\nlines-" + TOKEN + "\n")
    with pytest.raises(ConfigError) as info:
        secrets.read_secret_file(str(f), "the token file")
    assert info.value.message.startswith("the token file contains a newline (inside it)")
    assert TOKEN not in info.value.message


@pytest.mark.parametrize("url,shown", [
    ("https://admin:" + TOKEN + "@ci.example:8443/jenkins/?token=" + TOKEN + "#x", "https://ci.example:8443/jenkins/"),
    ("http://[::1]:8080/hook", "http://[::1]:8080/hook"),
    ("https://ci.example", "https://ci.example"),
])
def test_display_url_drops_user_info_and_query(url, shown):
    assert secrets.display_url(url) == shown
