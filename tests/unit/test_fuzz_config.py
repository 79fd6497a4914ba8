"""Property-based fuzzing of the two inputs users write: the config file
and the pipeline steps' parameters.  Whatever they hold, the answer is a
valid config or a ConfigError (exit 2): never a crash ("unexpected ...",
exit 1), never a hang."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jenkinsctl import cli
from jenkinsctl.config import from_document, load_document, schema
from jenkinsctl.errors import ConfigError, JenkinsctlError, UsageError
from jenkinsctl.steps import params_to_defaults

SETTINGS = settings(max_examples=100, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

# Keys a user could plausibly write, mixed with ones the YAML loader makes
# from unquoted scalars (1, true, null, 1.5): the mix is where TypeErrors hid.
_KEY_WORDS = ["version", "project", "state_dir", "engine", "host", "controller", "agents", "registry", "url",
              "password", "username", "deploy", "targets", "build", "env", "file", "name", "count", "labels",
              "strategy", "target", "secret", "others", "health", "http"]
keys = st.one_of(st.sampled_from(_KEY_WORDS), st.text(max_size=8), st.integers(-3, 3), st.booleans(),
                 st.none(), st.floats(allow_nan=False, allow_infinity=False, width=16))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, width=32),
                    st.text(max_size=20), st.sampled_from(["tcp://127.0.0.1:2375", "container", "webhook", "1"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(keys, inner, max_size=5)), max_leaves=25)


def _mutated_default() -> st.SearchStrategy:
    """The valid default document with one subtree replaced: reaches deeper
    into validation than random documents do."""
    from jenkinsctl.config import _defaults

    sch = schema()
    base = _defaults(sch, {}, sch)
    base.pop("document", None)

    @st.composite
    def build(draw):
        doc = json.loads(json.dumps(base))
        node = doc
        for _ in range(draw(st.integers(0, 3))):
            if isinstance(node, dict) and node:
                k = draw(st.sampled_from(sorted(node, key=str)))
                if isinstance(node[k], (dict, list)) and node[k]:
                    node = node[k]
                    continue
            break
        if isinstance(node, dict):
            node[draw(keys)] = draw(values)
        elif isinstance(node, list):
            node.append(draw(values))
        return doc
    return build()


def _load(tmp_path, text: str):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        doc, source = load_document(str(path), env={})
    except ConfigError as exc:
        assert exc.exit_code == 2 and exc.message.startswith(str(path)), exc.message
        return None
    from_document(doc, source)  # a valid document must also make a Config
    return doc


@SETTINGS
@given(doc=st.dictionaries(keys, values, max_size=6))
@pytest.mark.case(27)
def test_any_yaml_mapping_is_a_config_or_a_config_error(doc, tmp_path):
    _load(tmp_path, yaml.safe_dump(doc, allow_unicode=True))


@SETTINGS
@given(doc=_mutated_default())
def test_a_valid_config_with_one_part_changed_is_a_config_or_a_config_error(doc, tmp_path):
    _load(tmp_path, yaml.safe_dump(doc, allow_unicode=True))


@SETTINGS
@given(text=st.text(alphabet=st.sampled_from(list("ab:- \n\t{}[],&*!|>'\"#%@`1?")), max_size=80))
def test_any_text_is_a_config_or_a_config_error(text, tmp_path):
    _load(tmp_path, text)


@pytest.mark.case(27)
@pytest.mark.parametrize("depth", [65, 5000])
@pytest.mark.parametrize("shape", ["flow-list", "flow-map", "block-map"])
def test_deep_nesting_is_a_clear_config_error(depth, shape, tmp_path):
    if shape == "flow-list":
        text = "project: " + "[" * depth + "]" * depth + "\n"
    elif shape == "flow-map":
        text = "project: " + "{a: " * depth + "1" + "}" * depth + "\n"
    else:
        text = "project:\n" + "".join(" " * (i + 1) + "a:\n" for i in range(min(depth, 3000))) + " " * 3001 + "1\n"
    _load(tmp_path, text)


@pytest.mark.case(27)
def test_mixed_key_types_name_the_key(tmp_path):
    path = tmp_path / "j.yaml"
    for text, words in (("version: 1\nprojec: z\n2: x\n", "j.yaml:3:1: the key 2 is not a name"),
                        ("agents:\n  - name: a\n    null: 1\n", "j.yaml:3:5: the key null under 'agents[0]'"),
                        ("engine: {true: 1, host: x}\n", "the key true under 'engine' is not a name")):
        path.write_text(text)
        with pytest.raises(ConfigError) as e:
            load_document(str(path), env={})
        assert words in e.value.message, e.value.message


_STEP_COMMANDS = ["build", "ship", "deploy"]


@SETTINGS
@given(command=st.sampled_from(_STEP_COMMANDS), params=st.dictionaries(st.text(max_size=12), values, max_size=6))
def test_any_step_parameters_are_defaults_or_a_config_error(command, params):
    try:
        params_to_defaults(command, params)
    except (ConfigError, UsageError) as exc:
        assert exc.exit_code == 2


@pytest.mark.case(27)
@pytest.mark.parametrize("depth", [100, 100000])
def test_deeply_nested_params_env_is_exit_2(depth, monkeypatch, capsys):
    monkeypatch.setenv("FUZZ_PARAMS", '{"image": ' + "[" * depth + "]" * depth + "}")
    assert cli.main(["--params-env", "FUZZ_PARAMS", "build"]) == 2
    err = capsys.readouterr().err
    assert "unexpected" not in err and "error:" in err
    if depth > 1000:
        assert "nested too deeply" in err


def _in_environ(text: str) -> bool:
    """An environment variable holds bytes: os.environ carries undecodable
    ones as U+DC80..U+DCFF, but no other lone surrogate (U+D800) can be set."""
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


@SETTINGS
@given(raw=st.one_of(st.text(st.characters(blacklist_characters="\x00"), max_size=40).filter(_in_environ),
                    st.recursive(scalars, lambda i: st.lists(i, max_size=3) |
                                 st.dictionaries(st.text(max_size=5), i, max_size=3), max_leaves=10).map(json.dumps)))
def test_any_params_env_value_is_parameters_or_exit_2(raw, monkeypatch):
    """Parsing and validating --params-env never crashes."""
    monkeypatch.setenv("FUZZ_PARAMS", raw)
    try:
        params_to_defaults("ship", cli._params_from_env("FUZZ_PARAMS"))
    except JenkinsctlError as exc:
        assert exc.exit_code == 2


def test_params_env_after_the_command_is_an_error_not_ignored(monkeypatch, capsys):
    monkeypatch.setenv("FUZZ_PARAMS", '{"image": "127.0.0.1:5000/a/b"}')
    assert cli.main(["build", "--params-env", "FUZZ_PARAMS"]) == 2
    assert "--params-env must come before the command" in capsys.readouterr().err
