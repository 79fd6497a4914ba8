"""Pipeline-step parameters: validation, mapping to CLI defaults, and docs.

The shared library's steps (``vars/dockerBuildPush.groovy`` ...) hand their
parameter Map to jenkinsctl as JSON in an environment variable
(``--params-env``).  Each step has one JSON Schema in
``resources/schemas/steps/<step>.json``; it is the single source of

* the validation done here (unknown keys, types, patterns, conflicts),
* the argparse dest each parameter becomes (``x-dest``),
* the Jenkins credential binding of ``*CredentialsId`` keys
  (``x-credential``, read by the Groovy runner),
* the keys only the Groovy runner uses (``x-runner``: ``failOnError``,
  ``timeout``), which it checks and removes before calling jenkinsctl, and
* the ``vars/<step>.txt`` help page (``python -m jenkinsctl.steps --write-docs``);
  a default that comes from the config (``x-default-text``) names the config
  schema's value as ``{config:POINTER}``, so its number cannot drift.

Which step a command serves is the schema's ``x-jenkinsctl.command``, so the
JSON object carries the step's parameters only: ``ship`` reads
dockerBuildPush's, ``deploy`` dockerRedeploy's.  jsonschema is imported only
when parameters are validated, so the CLI's fast paths stay cheap.
"""

from __future__ import annotations

import difflib
import functools
import html
import json
import pathlib
import re
import sys
from typing import Any, Iterator, Sequence

from jenkinsctl import __version__
from jenkinsctl.errors import ConfigError
from jenkinsctl.resources import config_schema, resource_path

SCHEMA_DIR = "schemas/steps"
VERSION_RESOURCE = "io/jenkinsctl/version.txt"


def step_names() -> list[str]:
    """Every step that has a schema, sorted."""
    return sorted(p.stem for p in resource_path(SCHEMA_DIR).glob("*.json"))


@functools.lru_cache(maxsize=None)
def load_schema(step: str) -> dict[str, Any]:
    path = resource_path(f"{SCHEMA_DIR}/{step}.json")
    if not path.is_file():
        raise ConfigError(f"unknown pipeline step '{step}'",
                          hint=f"steps with a schema: {', '.join(step_names())}")
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def command_of(step: str) -> str:
    return load_schema(step)["x-jenkinsctl"]["command"]


def step_for_command(command: str) -> str:
    """The step whose parameters ``jenkinsctl COMMAND --params-env`` reads."""
    for step in step_names():
        if command_of(step) == command:
            return step
    served = ", ".join(f"{command_of(s)} ({s})" for s in step_names())
    raise ConfigError(f"--params-env: command '{command}' takes no step parameters",
                      hint=f"commands that do: {served}")


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        # Case slips (credentialsID, NoCache) are the common typo in Groovy.
        close = [c for c in choices if c.lower() == word.lower()]
    return f" (did you mean '{close[0]}'?)" if close else ""


def _problems(step: str, params: dict[str, Any]) -> Iterator[str]:
    schema = load_schema(step)
    valid = list(schema["properties"])
    for key in params:
        if key not in schema["properties"]:
            yield f"unknown parameter '{key}'{_did_you_mean(key, valid)}"
    for key in schema.get("required", []):
        if key not in params:
            yield f"missing required parameter '{key}'"

    from jsonschema import Draft202012Validator  # lazy: only --params-env needs it

    known = {k: v for k, v in params.items() if k in schema["properties"]}
    errors = Draft202012Validator(schema).iter_errors(known)
    for err in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        if err.validator == "required":
            continue  # reported above, in the same words as the Groovy runner
        path = list(err.absolute_path)
        where = f"parameter '{path[0]}'" if path else "parameters"
        if len(path) > 1:
            where += " at " + "".join(f"[{p!r}]" for p in path[1:])
        # A schema may carry its own wording (x-message) where the default
        # text would be a raw regex or a dump of a nested schema.
        custom = err.schema.get("x-message") if isinstance(err.schema, dict) else None
        if custom is None and err.validator == "pattern" and path:
            custom = schema["properties"].get(path[0], {}).get("x-message")
        if custom and not path:
            yield custom
        else:
            yield f"{where}: {custom or err.message}"


def validate(step: str, params: dict[str, Any]) -> None:
    """Raise one ConfigError that lists every problem with ``params``."""
    problems = list(dict.fromkeys(_problems(step, params)))
    if not problems:
        return
    valid = list(load_schema(step)["properties"])
    raise ConfigError(
        f"{step}: " + "; ".join(problems),
        hint=f"valid parameters: {', '.join(sorted(valid))}; see vars/{step}.txt",
        step=step, problems=problems, valid=valid)


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def params_to_defaults(command: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validate a step's parameters and turn them into argparse defaults.

    ``None`` means "not given" (a Groovy ``env.X`` that is unset), so it is
    dropped before validation.  Credential ids are consumed by the Groovy
    runner (``withCredentials``); they are valid here but map to nothing,
    because secrets reach jenkinsctl only through environment variables.
    """
    step = step_for_command(command)
    given = {k: v for k, v in params.items() if v is not None}
    validate(step, given)
    props = load_schema(step)["properties"]
    defaults: dict[str, Any] = {}
    for key, value in given.items():
        dest = props[key].get("x-dest")
        if dest is None:
            continue
        if props[key].get("x-format") == "key=value":
            value = [f"{k}={_format(v)}" for k, v in value.items()]
        elif "array" in _types(props[key]) and isinstance(value, str):
            value = [value]
        defaults[dest] = value
    return defaults


def _types(prop: dict[str, Any]) -> list[str]:
    t = prop.get("type", [])
    return [t] if isinstance(t, str) else list(t)


# --- vars/<step>.txt --------------------------------------------------------

_TYPE_NAMES = {"string": "String", "boolean": "boolean", "integer": "int", "number": "Number",
               "array": "List<String>", "object": "Map<String, String>"}


def _type_text(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return "String, one of " + ", ".join(f"'{v}'" for v in prop["enum"])
    return " or ".join(_TYPE_NAMES[t] for t in _types(prop))


def _groovy(value: Any) -> str:
    """A JSON value written as a Groovy literal, for the examples."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[" + ", ".join(_groovy(v) for v in value) + "]"
    if isinstance(value, dict):
        return "[" + ", ".join(f"{_groovy(k)}: {_groovy(v)}" for k, v in value.items()) + "]"
    return json.dumps(value)


# {config:/$defs/deploy_target/properties/timeout}: a JSON pointer into
# resources/schemas/config.schema.json, to a property that has a default.
_CONFIG_DEFAULT = r"\{config:(/[^{}]*)\}"


def default_text(step: str, name: str) -> str:
    """Parameter ``name``'s ``x-default-text`` with each ``{config:POINTER}``
    replaced by that config schema property's default."""
    text = load_schema(step)["properties"][name]["x-default-text"]
    sch = config_schema()

    def value(m: re.Match[str]) -> str:
        node: Any = sch
        for part in m.group(1).split("/")[1:]:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or "default" not in node:
            raise ConfigError(f"{step}.json: {name}: x-default-text names {m.group(0)}, which is not a property "
                              "with a default in config.schema.json",
                              hint="write a JSON pointer such as {config:/$defs/deploy_target/properties/timeout}")
        v = node["default"]
        return v if isinstance(v, str) else json.dumps(v)

    return re.sub(_CONFIG_DEFAULT, value, text)


def render_docs(step: str) -> str:
    """The ``vars/<step>.txt`` page: HTML that Jenkins shows under Pipeline
    Syntax > Global Variables Reference, generated so it cannot drift."""
    schema = load_schema(step)
    meta = schema["x-jenkinsctl"]
    required = set(schema.get("required", []))
    def e(text: str) -> str:
        return html.escape(text, quote=False)

    out = [f"<!-- Generated from resources/schemas/steps/{step}.json by "
           "'python -m jenkinsctl.steps --write-docs'. Do not edit. -->",
           f"<p><code>{step}(Map)</code>: {e(schema['description'])}</p>",
           "<p>Parameters:</p>", "<dl>"]
    for name, prop in schema["properties"].items():
        if name in required:
            status = "required"
        elif "default" in prop:
            status = f"default: <code>{e(_groovy(prop['default']))}</code>"
        elif "x-default-text" in prop:
            status = f"default: {e(default_text(step, name))}"
        else:
            status = "optional"
        out.append(f"  <dt><code>{name}</code> ({e(_type_text(prop))}, {status})</dt>")
        dd = e(prop["description"])
        if prop.get("examples"):
            dd += f" Example: <code>{e(name)}: {e(_groovy(prop['examples'][0]))}</code>"
        out.append(f"  <dd>{dd}</dd>")
    out.append("</dl>")
    out.append(f"<p>Unknown parameters are an error. The step runs <code>jenkinsctl {meta['command']}</code>"
               " on the agent in one <code>sh</code> and fails the build with jenkinsctl's message and hint"
               " (with <code>failOnError: false</code>, marks it UNSTABLE with the same message).</p>")
    out.append("<p>The agent's jenkinsctl must be of the library's MAJOR.MINOR series: agents built with"
               " <code>jenkinsctl agent-image</code> and <code>jenkinsctl apply</code> of that series are."
               " Call the step on the agent itself, never inside <code>docker.image().inside</code>.</p>")
    out.append("<p>Returns a Map:</p>")
    out.append("<dl>")
    for key, text in meta["returns"].items():
        out.append(f"  <dt><code>{key}</code></dt>")
        out.append(f"  <dd>{e(text)}</dd>")
    out.append("</dl>")
    out.append("<p>Example:</p>")
    out.append(f"<pre>{e(meta['example'])}</pre>")
    return "\n".join(out) + "\n"


def _checkout_root() -> pathlib.Path:
    root = pathlib.Path(__file__).resolve().parent.parent
    if not (root / "vars").is_dir():
        raise ConfigError("the step docs live in a checkout's vars/, and this jenkinsctl is not run from one",
                          hint="run it from the repository: python -m jenkinsctl.steps --write-docs")
    return root


def generated_files() -> dict[pathlib.Path, str]:
    """Every file generated from the schemas and the package version."""
    root = _checkout_root()
    files = {root / "vars" / f"{step}.txt": render_docs(step) for step in step_names()}
    files[root / "resources" / VERSION_RESOURCE] = __version__ + "\n"
    return files


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m jenkinsctl.steps",
                                description="Generate vars/<step>.txt and the library version from the step schemas.")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write-docs", action="store_true", help="write the generated files")
    g.add_argument("--check", action="store_true", help="exit 1 when a generated file is stale")
    args = p.parse_args(argv)
    stale = []
    for path, text in generated_files().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if args.write_docs:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if args.check and stale:
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        print("run: python -m jenkinsctl.steps --write-docs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
