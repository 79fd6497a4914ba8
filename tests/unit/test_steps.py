"""Pipeline-step parameters: the schema in resources/schemas/steps is the one
source of jenkinsctl's validation, the CLI defaults and vars/<step>.txt."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

from jenkinsctl import __version__, steps
from jenkinsctl.errors import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[2]
STEPS = steps.step_names()


def test_the_library_has_these_steps():
    assert STEPS == ["dockerBuildPush", "dockerRedeploy"]
    assert steps.step_for_command("ship") == "dockerBuildPush"
    assert steps.step_for_command("deploy") == "dockerRedeploy"


@pytest.mark.parametrize("step", STEPS)
def test_schema_is_valid_and_every_parameter_is_documented(step):
    from jsonschema import Draft202012Validator

    schema = steps.load_schema(step)
    Draft202012Validator.check_schema(schema)
    assert schema["title"] == step
    assert schema["additionalProperties"] is False
    assert (ROOT / "vars" / f"{step}.groovy").is_file()
    for name, prop in schema["properties"].items():
        assert prop.get("description"), name
        # Exactly one of: passed to the command, bound as a credential, or
        # used by the Groovy runner itself (failOnError, timeout).
        assert [k in prop for k in ("x-dest", "x-credential", "x-runner")].count(True) == 1, name
        if "x-credential" in prop:
            assert name.lower().endswith("credentialsid")
        for example in prop.get("examples", []):
            assert not list(Draft202012Validator(prop).iter_errors(example)), (name, example)


@pytest.mark.parametrize("step", STEPS)
def test_credentials_reach_jenkinsctl_only_through_its_documented_variables(step):
    documented = {"JENKINSCTL_REGISTRY_USERNAME", "JENKINSCTL_REGISTRY_PASSWORD",
                  "JENKINSCTL_WEBHOOK_SECRET", "JENKINSCTL_WEBHOOK_SECRET_FILE"}
    for name, prop in steps.load_schema(step)["properties"].items():
        cred = prop.get("x-credential")
        if cred:
            used = {v for k, v in cred.items() if k.endswith("ariable")}
            assert used and used <= documented, name


def test_ship_defaults_from_every_parameter():
    params = {
        "image": "registry.example.com/team/app", "context": "services/api",
        "dockerfile": "docker/Dockerfile.prod", "tags": ["1.4.7", "1.4"],
        "buildArgs": {"VERSION": "1.4.7", "DEBUG": False, "N": 3}, "target": "runtime",
        "builder": "buildkit", "labels": {"org.opencontainers.image.source": "https://git.example.com/x"},
        "pull": True, "noCache": True, "cacheFrom": "registry.example.com/team/app:latest",
        "deployTo": "container:app", "healthUrl": "http://app:8080/health", "deployTimeout": 120,
        "keep": 5, "credentialsId": "registry", "webhookCredentialsId": "hook", "config": "ci/jenkinsctl.yaml",
        # The runner's own keys: valid, and never an option of the command.
        "failOnError": False, "timeout": 30,
    }
    assert set(params) | {"webhookSecretFileCredentialsId"} == set(steps.load_schema("dockerBuildPush")["properties"])
    assert steps.params_to_defaults("ship", params) == {
        "image": "registry.example.com/team/app", "context": "services/api", "file": "docker/Dockerfile.prod",
        "tag": ["1.4.7", "1.4"], "build_arg": ["VERSION=1.4.7", "DEBUG=false", "N=3"], "target": "runtime",
        "builder": "buildkit", "label": ["org.opencontainers.image.source=https://git.example.com/x"],
        "pull": True, "no_cache": True, "cache_from": ["registry.example.com/team/app:latest"],
        "to": "container:app", "health_url": "http://app:8080/health", "timeout": 120, "keep": 5,
        "config": "ci/jenkinsctl.yaml",
    }


def test_deploy_defaults_and_nulls_mean_not_given():
    ref = "registry.example.com/team/app@sha256:" + "4" * 64
    got = steps.params_to_defaults("deploy", {"image": ref, "deployTo": "swarm:app_web",
                                              "credentialsId": None, "keep": None})
    assert got == {"image": ref, "to": "swarm:app_web"}


def test_one_string_tag_is_a_list():
    assert steps.params_to_defaults("ship", {"image": "r/app", "tags": "1.0"})["tag"] == ["1.0"]


def problems(command: str, params: dict) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        steps.params_to_defaults(command, params)
    return exc.value


def test_unknown_parameters_name_the_valid_ones_with_did_you_mean():
    err = problems("ship", {"imgae": "r/app", "credentialsID": "registry", "zzz": 1})
    assert err.message.startswith("dockerBuildPush: ")
    assert "unknown parameter 'imgae' (did you mean 'image'?)" in err.message
    assert "unknown parameter 'credentialsID' (did you mean 'credentialsId'?)" in err.message
    assert "unknown parameter 'zzz';" in err.message or err.message.endswith("unknown parameter 'zzz'")
    assert "missing required parameter 'image'" in err.message
    assert err.hint.startswith("valid parameters: buildArgs, builder, cacheFrom, config, context, credentialsId")
    assert err.hint.endswith("see vars/dockerBuildPush.txt")
    assert err.exit_code == 2 and err.category == "config"
    assert err.details["valid"][0] == "image"
    assert len(err.details["problems"]) == 4


def test_all_value_problems_in_one_message():
    err = problems("ship", {
        "image": "r/app:1.0", "pull": "yes", "builder": "fast", "tags": ["ok", "-bad"],
        "deployTo": "ftp:server", "buildArgs": {"1BAD": "x"}, "keep": -1,
        "webhookCredentialsId": "a", "webhookSecretFileCredentialsId": "b",
    })
    msg = err.message
    assert "parameter 'image': must be a repository without a tag or digest" in msg
    assert "parameter 'pull': 'yes' is not of type 'boolean'" in msg
    assert "parameter 'builder': 'fast' is not one of ['auto', 'buildkit', 'classic']" in msg
    assert "parameter 'tags' at [1]: must be a tag or a List of tags" in msg
    assert "parameter 'deployTo': must be STRATEGY:TARGET" in msg
    assert "parameter 'buildArgs'" in msg and "1BAD" in msg
    assert "parameter 'keep': -1 is less than the minimum of 0" in msg
    assert "give webhookCredentialsId or webhookSecretFileCredentialsId, not both" in msg
    assert len(err.details["problems"]) == 8


def test_redeploy_requires_image_and_target():
    err = problems("deploy", {})
    assert err.details["problems"] == ["missing required parameter 'image'", "missing required parameter 'deployTo'"]


def test_a_command_without_a_step():
    err = problems("build", {"image": "r/app"})
    assert "command 'build' takes no step parameters" in err.message
    assert "ship (dockerBuildPush)" in err.hint


def test_the_cli_reports_step_problems_in_the_error_file(tmp_path):
    err_file = tmp_path / "err.json"
    env = {**os.environ, "P": json.dumps({"image": "r/app", "tagz": ["1"]})}
    out = subprocess.run([sys.executable, "-m", "jenkinsctl", "--params-env", "P", "--error-file", str(err_file),
                          "deploy", "--result", str(tmp_path / "r.json")],
                         capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    details = json.loads(err_file.read_text())
    assert details["category"] == "config"
    assert "unknown parameter 'tagz'" in details["message"]
    assert "missing required parameter 'deployTo'" in details["message"]
    assert details["hint"].startswith("valid parameters: ")


# --- the contract with the commands' argparse ---------------------------------


def command_parser(command: str) -> argparse.ArgumentParser:
    from jenkinsctl import cli
    from jenkinsctl.commands import COMMANDS

    module = importlib.import_module(COMMANDS[command][0])
    return cli._command_parser(command, module)


@pytest.mark.parametrize("step", STEPS)
def test_every_dest_exists_with_the_documented_default(step):
    parser = command_parser(steps.command_of(step))
    actions = {a.dest: a for a in parser._actions}
    for name, prop in steps.load_schema(step)["properties"].items():
        dest = prop.get("x-dest")
        if dest is None:
            continue
        assert dest in actions, f"{step}.{name}: the command has no dest '{dest}'"
        action = actions[dest]
        if "default" in prop and dest != "config":
            assert action.default == prop["default"], f"{step}.{name}: default differs from the command's"
        if "array" in steps._types(prop) or prop.get("x-format") == "key=value":
            assert isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+"), name


@pytest.mark.parametrize("step", STEPS)
def test_required_parameters_alone_parse(step):
    """A step's required parameters must be enough: argparse ignores defaults
    for required=True options, so the CLI has to relax those it got from
    --params-env."""
    from jenkinsctl import cli

    schema = steps.load_schema(step)
    command = schema["x-jenkinsctl"]["command"]
    given = {k: schema["properties"][k]["examples"][0] for k in schema.get("required", [])}
    called = {}

    def fake_run(args, ctx):
        called.update(vars(args))
        return None

    from jenkinsctl.commands import COMMANDS

    module = importlib.import_module(COMMANDS[command][0])
    os.environ["JENKINSCTL_TEST_PARAMS"] = json.dumps(given)
    original = module.run
    module.run = fake_run
    try:
        code = cli.main(["--output", "json", "--params-env", "JENKINSCTL_TEST_PARAMS", command])
    finally:
        module.run = original
        del os.environ["JENKINSCTL_TEST_PARAMS"]
    assert code == 0
    for key, value in steps.params_to_defaults(command, given).items():
        assert called[key] == value


# --- generated files -----------------------------------------------------------


def test_generated_docs_and_version_are_up_to_date():
    stale = [str(p) for p, text in steps.generated_files().items()
             if not p.exists() or p.read_text(encoding="utf-8") != text]
    assert not stale, "run: python -m jenkinsctl.steps --write-docs"


def test_library_version_is_the_package_version():
    assert (ROOT / "resources/io/jenkinsctl/version.txt").read_text().strip() == __version__


@pytest.mark.parametrize("step", STEPS)
def test_docs_show_every_parameter_its_type_requirement_and_default(step):
    text = (ROOT / "vars" / f"{step}.txt").read_text(encoding="utf-8")
    schema = steps.load_schema(step)
    for name, prop in schema["properties"].items():
        line = next(ln for ln in text.splitlines() if ln.startswith(f"  <dt><code>{name}</code> ("))
        if name in schema.get("required", []):
            assert "required" in line
        elif "default" in prop:
            assert "default: <code>" in line
    for key in schema["x-jenkinsctl"]["returns"]:
        assert f"<dt><code>{key}</code></dt>" in text


@pytest.mark.parametrize("step", STEPS)
def test_default_texts_take_their_numbers_from_the_config_schema(step):
    """A default the config sets is written {config:POINTER}, never as a
    number that can drift from the schema (the docs once said 60 where the
    target's timeout was 120)."""
    import re

    for name, prop in steps.load_schema(step)["properties"].items():
        raw = prop.get("x-default-text")
        if raw is None:
            continue
        literal = re.sub(r"\{config:[^{}]*\}", "", raw)
        # A number, or one word in parentheses as in "(auto)".
        assert not re.search(r"\d|\([\w.-]+\)", literal), f"{step}.{name}: write {{config:POINTER}}, not a value: {raw}"


@pytest.mark.parametrize("step", STEPS)
def test_parameters_defaulting_to_a_config_key_accept_what_that_key_accepts(step):
    """A step parameter that stands in for a config key (its default text
    names it) has that key's type and bounds: deployTimeout once stopped at
    3600 where the target's timeout allows 7200."""
    import re

    from jenkinsctl.config import schema

    bounds = ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum")
    for name, prop in steps.load_schema(step)["properties"].items():
        for pointer in re.findall(r"\{config:([^{}]*)\}", prop.get("x-default-text", "")):
            key = schema()
            for part in pointer.strip("/").split("/"):
                key = key[part]
            assert {b: prop.get(b) for b in bounds} == {b: key.get(b) for b in bounds}, f"{step}.{name} vs {pointer}"


def test_default_text_resolves_the_config_defaults():
    from jenkinsctl.config import schema

    target = schema()["$defs"]["deploy_target"]["properties"]
    for step in ("dockerBuildPush", "dockerRedeploy"):
        assert steps.default_text(step, "deployTimeout") == f"the target's timeout ({target['timeout']['default']})"
        assert steps.default_text(step, "keep") == f"the target's keep ({target['keep']['default']})"
    assert target["timeout"]["default"] == 120
    assert steps.default_text("dockerBuildPush", "builder") == "build.builder in the jenkinsctl config (auto)"
    text = (ROOT / "vars" / "dockerRedeploy.txt").read_text(encoding="utf-8")
    assert "<dt><code>deployTimeout</code> (Number, default: the target's timeout (120))</dt>" in text


def test_default_text_naming_no_config_default_is_an_error(monkeypatch):
    original = steps.load_schema("dockerRedeploy")
    changed = json.loads(json.dumps(original))
    changed["properties"]["keep"]["x-default-text"] = "the target's keep ({config:/$defs/deploy_target/properties/kep})"
    monkeypatch.setattr(steps, "load_schema", lambda s: changed if s == "dockerRedeploy" else original)
    with pytest.raises(ConfigError, match=r"dockerRedeploy.json: keep: x-default-text names .*kep\}, which is not"):
        steps.default_text("dockerRedeploy", "keep")


def test_check_fails_when_the_schema_changes(monkeypatch, capsys):
    assert steps.main(["--check"]) == 0
    original = steps.load_schema("dockerRedeploy")
    changed = json.loads(json.dumps(original))
    changed["properties"]["image"]["description"] = "Something else."
    monkeypatch.setattr(steps, "load_schema", lambda s: changed if s == "dockerRedeploy" else original)
    assert steps.main(["--check"]) == 1
    assert "stale: " in capsys.readouterr().err


def test_params_import_no_heavy_module_until_validation():
    code = ("import sys, jenkinsctl.steps as s\n"
            "print('BEFORE', 'jsonschema' in sys.modules)\n"
            "s.params_to_defaults('ship', {'image': 'r/app'})\n"
            "print('AFTER', 'jsonschema' in sys.modules, 'docker' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "BEFORE False" in out.stdout and "AFTER True False" in out.stdout
