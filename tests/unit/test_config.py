"""Config loading: every bad input gets file:line:column, the key, what is
valid and a hint; good input resolves with defaults and precedence.

Bad cases are fixture pairs (jenkins-job-builder style): ``bad/NAME.yaml``
and ``bad/NAME.err``, whose first line must appear in the message and whose
second line, when not empty, must appear in the hint.
"""

from __future__ import annotations

import os
import pathlib
import resource
import time

import pytest

from jenkinsctl.config import load_config, load_document
from jenkinsctl.errors import ConfigError

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "config"
BAD = sorted(p.stem for p in (FIXTURES / "bad").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _in_fixture_dir(monkeypatch):
    # Messages name the file as given; run from the fixture root so the
    # expected messages stay short and machine-independent.
    monkeypatch.chdir(FIXTURES)
    for var in list(os.environ):
        if var.startswith("JENKINSCTL_") or var == "DOCKER_HOST":
            monkeypatch.delenv(var)


def test_every_bad_fixture_has_an_expectation():
    assert BAD, "no fixtures found"
    for name in BAD:
        assert (FIXTURES / "bad" / f"{name}.err").exists(), name


@pytest.mark.parametrize("name", BAD)
def test_bad_config_is_rejected_with_position_and_hint(name):
    message, hint = (FIXTURES / "bad" / f"{name}.err").read_text(encoding="utf-8").split("\n")[:2]
    with pytest.raises(ConfigError) as info:
        load_config(f"bad/{name}.yaml")
    err = info.value
    assert message in err.message
    if hint:
        assert err.hint and hint in err.hint
    assert err.exit_code == 2


def test_missing_file():
    with pytest.raises(ConfigError, match="no-such.yaml: no such file"):
        load_config("no-such.yaml")


def test_directory_instead_of_file():
    with pytest.raises(ConfigError) as info:
        load_config("bad")
    assert "is a directory" in info.value.message
    assert "bad/jenkinsctl.yaml" in info.value.hint


def test_literal_secret_never_echoed():
    with pytest.raises(ConfigError) as info:
        load_config("bad/literal-secret.yaml")
    assert "hunter2" not in info.value.message + (info.value.hint or "")


def test_alias_bomb_is_rejected_fast_and_small(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    with pytest.raises(ConfigError, match="alias"):
        load_config(str(bomb))
    # 9**10 values if expanded; rejected without building them.
    assert time.monotonic() - start < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB


def test_small_aliases_are_fine(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("agents:\n  - &g {name: a, count: 1}\n  - {<<: *g, name: b}\n")
    cfg = load_config(str(f))
    assert [g.name for g in cfg.agents] == ["a", "b"]


def test_defaults_without_a_file():
    cfg = load_config(None, env={})
    assert cfg.source == "<defaults>"
    assert [g.node_names() for g in cfg.agents] == [["agent-1", "agent-2"]]
    assert cfg.registry.url == "127.0.0.1:5000"
    assert cfg.controller.url == "http://127.0.0.1:8080"
    assert cfg.labels == {"io.jenkinsctl.managed": "true", "io.jenkinsctl.project": "jenkinsctl"}


def test_defaults_without_a_file_import_neither_yaml_nor_jsonschema(tmp_path):
    """Commands that run on the built-in defaults (most `build` and `push`
    runs) skip PyYAML's and jsonschema's import, a large part of their start."""
    import subprocess
    import sys

    # The working directory holds no jenkinsctl.yaml until the second load.
    code = ("import sys\n"
            "from jenkinsctl.config import load_config\n"
            "load_config(None, env={})\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('yaml', 'jsonschema')))\n"
            "open('jenkinsctl.yaml', 'w').write('version: 1\\n')\n"
            "load_config(None, env={})\n"
            "print('yaml' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                         env={k: v for k, v in os.environ.items() if not k.startswith("JENKINSCTL_")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[]", "True"]  # and a file does load it


def test_builtin_defaults_are_valid_against_the_schema():
    """load_document skips validation when there is no file and no
    override; that is only sound while the defaults validate."""
    import jsonschema

    from jenkinsctl.config import schema

    doc, _ = load_document(None, env={})
    jsonschema.Draft202012Validator(schema()).validate(doc)
    assert doc == load_document(None, env={"JENKINSCTL_BUILDER": "auto"})[0]


def test_full_config_resolves_typed_and_frozen():
    cfg = load_config("good/full.yaml", env={})
    assert cfg.project == "team-ci"
    assert cfg.controller.port == 18080 and cfg.controller.password.file == "/run/secrets/jenkins-admin"
    assert [(g.name, g.count, g.labels) for g in cfg.agents] == [
        ("build", 3, ("docker", "linux")), ("heavy", 1, ("docker",))]
    assert cfg.registry.username == "ci-bot" and cfg.registry.password.env == "REGISTRY_TOKEN"
    web = cfg.deploy_target("web")
    assert web.strategy == "container" and web.health.http == "http://127.0.0.1:8000/health"
    assert web.health.timeout == 60 and web.keep == 3
    with pytest.raises(Exception):
        cfg.project = "x"  # frozen
    assert pathlib.Path(cfg.state_dir).is_absolute()


def test_precedence_defaults_then_file_then_environment():
    env = {"JENKINSCTL_PROJECT": "from-env", "JENKINSCTL_REGISTRY_URL": "reg.local:5001"}
    doc, _ = load_document("good/full.yaml", env=env)
    assert doc["project"] == "from-env"            # env beats file
    assert doc["registry"]["url"] == "reg.local:5001"
    assert doc["controller"]["port"] == 18080       # file beats default
    assert doc["controller"]["timeout"] == 30       # default


def test_bad_environment_override_is_named():
    with pytest.raises(ConfigError) as info:
        load_document("good/full.yaml", env={"JENKINSCTL_BUILDER": "buildx"})
    assert info.value.message.startswith("environment:")
    assert "JENKINSCTL_BUILDER" in info.value.hint


# Each override with values its schema rule accepts and values it refuses.
OVERRIDE_SAMPLES = {
    "JENKINSCTL_PROJECT": ["team-ci", "Team CI", "x" * 41, "-lead"],
    "JENKINSCTL_STATE_DIR": ["/var/lib/jenkinsctl", "rel/dir"],
    "JENKINSCTL_ENGINE_HOST": ["unix:///run/docker.sock", "tcp://h:2376", "npipe:////./pipe/docker"],
    "JENKINSCTL_CONTROLLER_URL": ["https://ci.example", "ftp://ci.example"],
    "JENKINSCTL_CONTROLLER_USERNAME": ["bob", " "],
    "JENKINSCTL_REGISTRY_URL": ["reg.local:5001", "reg.local:5001/path", "a b"],
    "JENKINSCTL_BUILDER": ["buildkit", "buildx", "Auto"],
    "DOCKER_HOST": ["ssh://me@h", "npipe:////./pipe/docker"],
}


def _jsonschema_outcome(env):
    """What the loader answered when jsonschema checked every override:
    the document, or the message of the environment error."""
    import jsonschema

    from jenkinsctl.config import ENV_OVERRIDES, _defaults, _fmt_path, _set_path, schema

    sch = schema()
    doc = _defaults(sch, {}, sch)
    for var, path in ENV_OVERRIDES.items():
        if env.get(var):
            _set_path(doc, path, env[var])
    if doc["engine"]["host"] is None and env.get("DOCKER_HOST"):
        doc["engine"]["host"] = env["DOCKER_HOST"]
    errors = list(jsonschema.Draft202012Validator(sch).iter_errors(doc))
    if errors:
        bad = jsonschema.exceptions.best_match(errors)
        return f"environment: {bad.message} (at {_fmt_path(tuple(bad.absolute_path))})"
    return doc


@pytest.mark.parametrize("var,value", [(v, x) for v, xs in OVERRIDE_SAMPLES.items() for x in xs])
def test_environment_overrides_without_a_file_match_the_schema(var, value):
    """Without a config file, overrides are checked by their schema leaf's
    own rules; the outcome (document or error) is jsonschema's."""
    env = {var: value}
    if var == "DOCKER_HOST":  # it is checked only when an override is set too
        env["JENKINSCTL_PROJECT"] = "team-ci"
    want = _jsonschema_outcome(env)
    if isinstance(want, str):
        with pytest.raises(ConfigError) as info:
            load_document(None, env=env)
        assert info.value.message == want
        assert "JENKINSCTL_BUILDER" in info.value.hint
    else:
        assert load_document(None, env=env)[0] == want


def test_environment_overrides_without_a_file_do_not_import_jsonschema(tmp_path):
    import subprocess
    import sys

    env = {var: xs[0] for var, xs in OVERRIDE_SAMPLES.items()}
    code = ("import sys\n"
            "from jenkinsctl.config import load_config\n"
            f"cfg = load_config(None, env={env!r})\n"
            "print(cfg.project, cfg.build.builder, cfg.engine.host)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('yaml', 'jsonschema')))\n"
            f"load_config(None, env={{**{env!r}, 'JENKINSCTL_BUILDER': 'buildx'}})\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                         env={k: v for k, v in os.environ.items() if not k.startswith("JENKINSCTL_")})
    assert out.stdout.split("\n")[:2] == ["team-ci buildkit unix:///run/docker.sock", "[]"], out.stderr
    # A bad value still gets jsonschema's message.
    assert out.returncode == 1 and "environment: 'buildx' is not one of" in out.stderr


def test_unknown_deploy_target_lists_known_ones():
    cfg = load_config("good/full.yaml", env={})
    with pytest.raises(ConfigError) as info:
        cfg.deploy_target("wbe")
    assert "web" in info.value.hint


def test_secret_reference_resolution(tmp_path):
    from jenkinsctl.config import SecretRef

    f = tmp_path / "s"
    f.write_text("from-file\n")
    assert SecretRef(file=str(f)).resolve() == "from-file"
    assert SecretRef(env="X").resolve({"X": "from-env"}) == "from-env"
    assert SecretRef(env="X").resolve({}) is None
    with pytest.raises(ConfigError, match="cannot read secret file"):
        SecretRef(file=str(tmp_path / "missing")).resolve()
