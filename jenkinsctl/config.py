"""jenkinsctl.yaml -> validated, frozen, typed objects.

Precedence, lowest first: the schema's defaults, the file, JENKINSCTL_*
environment variables, then command-line flags (applied by the commands
with dataclasses.replace).  The JSON Schema in resources/schemas is the one
source of truth for what is valid; this module adds what a schema cannot
say well: positions in the file, did-you-mean, and secret hygiene.
"""

from __future__ import annotations

import json
import os
import re

from jenkinsctl.engine import ownership_labels
from jenkinsctl.errors import ConfigError
from jenkinsctl.record import Record, asdict, field, replace
from jenkinsctl.resources import config_schema
from jenkinsctl.secrets import read_secret_file, sensitive, sensitive_url

TYPE_CHECKING = False  # typing and pathlib are imported only where they are needed
if TYPE_CHECKING:
    import pathlib
    from typing import Any, Mapping

DEFAULT_FILE = "jenkinsctl.yaml"
SECRET_KEYS = ("password", "secret")

# JENKINSCTL_* variable -> key path it sets.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "JENKINSCTL_PROJECT": ("project",),
    "JENKINSCTL_STATE_DIR": ("state_dir",),
    "JENKINSCTL_ENGINE_HOST": ("engine", "host"),
    "JENKINSCTL_CONTROLLER_URL": ("controller", "external"),
    "JENKINSCTL_CONTROLLER_USERNAME": ("controller", "username"),
    "JENKINSCTL_REGISTRY_URL": ("registry", "url"),
    "JENKINSCTL_BUILDER": ("build", "builder"),
}


# --- typed, frozen configuration --------------------------------------------


class SecretRef(Record):
    """A secret named by where it lives, never by its value."""

    env: str | None = None
    file: str | None = None
    credentials: str | None = None

    def describe(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def resolve(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The secret's value, or None when its source is absent.  A
        ``credentials`` reference resolves only inside Jenkins, where the
        pipeline step has bound it to an environment variable.  The value is
        registered for redaction, and refused if it holds a control character
        (a file's final line break is not part of the secret)."""
        environ = os.environ if environ is None else environ
        if self.env:
            return sensitive(environ.get(self.env), f"the secret in environment variable {self.env}")
        if self.file:
            return read_secret_file(self.file, f"secret file {self.file}")
        return None


class EngineConfig(Record):
    """engine: the Docker engine jenkinsctl talks to."""

    host: str | None
    tls: bool
    timeout: int


class ControllerConfig(Record):
    """controller: the Jenkins controller, provisioned here or ``external``."""

    external: str | None
    image: str | None
    port: int
    username: str
    password: SecretRef | None  # None when the document names no reference
    timeout: float
    ready_timeout: float
    agent_address: str | None = None  # external only: where the controller reaches agents

    @property
    def url(self) -> str:
        return self.external or f"http://127.0.0.1:{self.port}"


class AgentGroup(Record):
    """One entry of agents: ``count`` SSH agents built alike."""

    name: str
    count: int
    labels: tuple[str, ...]
    executors: int
    remote_fs: str
    image: str | None
    docker_host: str | None
    docker_socket: str
    ssh_port: int

    def node_names(self) -> list[str]:
        return [f"{self.name}-{i}" for i in range(1, self.count + 1)]


class RegistryLogin(Record):
    """Credentials for one more registry (registry.others)."""

    url: str
    username: str | SecretRef
    password: SecretRef


class RegistryConfig(Record):
    """registry: where images are pushed, and the credentials for it."""

    url: str
    username: str | SecretRef | None
    password: SecretRef | None
    # Each sent only to its own registry; see image.registry_auth.
    others: tuple[RegistryLogin, ...] = ()


class BuildConfig(Record):
    """build: builder choice, moving tags, tag pruning and push retries."""

    builder: str
    moving_tags: Mapping[str, tuple[str, ...]]
    keep_images: int
    push_attempts: int


class Health(Record):
    """A deploy target's health gate."""

    http: str | None
    timeout: float
    interval: float


class DeployTarget(Record):
    """One entry of deploy.targets: how and where a new image is rolled out."""

    name: str
    strategy: str
    target: str
    ports: tuple[str, ...]
    env: Mapping[str, str | SecretRef]
    network: str | None
    volumes: tuple[str, ...]
    health: Health
    keep: int
    compose: str | None
    service: str | None
    secret: SecretRef | None
    timeout: float
    retries: int
    idempotent: bool = False  # webhook: a POST that may have arrived may be sent again
    # container: NAME -> reference, installed as /run/secrets/NAME (deploy/secret_files.py)
    secrets: Mapping[str, SecretRef] = field(default_factory=dict)
    # container: how the new version takes over (None: proxy when host ports
    # are published, else start-first) and the proxy mode's settings.
    switch: str | None = None
    proxy: Mapping[str, Any] = field(default_factory=dict)


class Config(Record):
    """The resolved config: the document checked against the schema, then typed."""

    version: int
    project: str
    state_dir: str
    engine: EngineConfig
    controller: ControllerConfig
    agents: tuple[AgentGroup, ...]
    registry: RegistryConfig
    build: BuildConfig
    deploy_targets: Mapping[str, DeployTarget]
    source: str = "<defaults>"
    # The plain resolved document (secrets as references), for `validate`
    # and for config-hash labels.
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def labels(self) -> dict[str, str]:
        """Ownership labels carried by everything this project creates."""
        return ownership_labels(self.project)

    def deploy_target(self, name: str) -> DeployTarget:
        try:
            return self.deploy_targets[name]
        except KeyError:
            known = ", ".join(sorted(self.deploy_targets)) or "none configured"
            raise ConfigError(f"no deploy target named '{name}' in {self.source}",
                              hint=f"use STRATEGY:TARGET (container:NAME, swarm:SERVICE, stack:NAME, "
                                   f"webhook:URL) or one of: {known}") from None


# --- loading ------------------------------------------------------------------


def schema() -> dict[str, Any]:
    return config_schema()


def _json_copy(value: Any) -> Any:
    """A deep copy of a JSON value, such as a schema default (copy.deepcopy
    without the copy module's import)."""
    if isinstance(value, dict):
        return {k: _json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_copy(v) for v in value]
    return value


def _defaults(node: Mapping[str, Any], value: Any, root: Mapping[str, Any]) -> Any:
    """Fill in schema defaults under ``value`` (which is not modified)."""
    if "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
    if isinstance(value, dict) and node.get("type") == "object":
        out = dict(value)
        for key, sub in node.get("properties", {}).items():
            if key not in out and "default" in sub:
                out[key] = _json_copy(sub["default"])
            elif key not in out and sub.get("type") == "object":
                out[key] = {}
            if key in out:
                out[key] = _defaults(sub, out[key], root)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            for key in out:
                if key not in node.get("properties", {}):
                    out[key] = _defaults(extra, out[key], root)
        return out
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [_defaults(node["items"], v, root) for v in value]
    return value


def _set_path(doc: dict, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc.setdefault(key, {})
    doc[path[-1]] = value


def _schema_at(sch: Mapping[str, Any], path: tuple) -> Mapping[str, Any] | None:
    node: Mapping[str, Any] | None = sch
    for part in path:
        if node is None:
            return None
        if "$ref" in node:
            node = sch["$defs"][node["$ref"].rsplit("/", 1)[1]]
        if isinstance(part, int):
            node = node.get("items")
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        else:
            extra = node.get("additionalProperties")
            node = extra if isinstance(extra, dict) else None
    if node is not None and "$ref" in node:
        node = sch["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _close_matches(word: str, choices: list[str]) -> list[str]:
    """The "did you mean" candidate; difflib is imported only when a hint is built."""
    import difflib

    return difflib.get_close_matches(word, choices, n=1)


def _fmt_path(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _validation_error(err, source: str, positions: Mapping[tuple, tuple[int, int]],
                      sch: Mapping[str, Any]) -> ConfigError:
    path = tuple(err.absolute_path)
    hint = None
    key_path = path
    # Under a secret-keyed field the value itself may be the secret (a token
    # pasted in place of a reference): describe it, never echo it.
    secret_field = any(p in SECRET_KEYS + ("secrets",) for p in path if isinstance(p, str))
    shown = "a value that is hidden because the field holds a secret" if secret_field else None
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        node = _schema_at(sch, path) or {}
        allowed = sorted(node.get("properties", {}))
        unknown = sorted((k for k in err.instance if k not in allowed), key=str)
        bad = unknown[0] if unknown else "?"
        key_path = path + (bad,)
        close = _close_matches(str(bad), allowed)
        message = f"unknown key '{_fmt_path(key_path)}'"
        hint = (f"did you mean '{close[0]}'? " if close else "") + f"valid keys here: {', '.join(allowed)}"
    elif err.validator == "type":
        want = err.validator_value if isinstance(err.validator_value, str) else " or ".join(err.validator_value)
        what = shown or repr(err.instance)
        message = f"'{_fmt_path(path)}' must be {want}, not {type(err.instance).__name__} ({what})"
    elif err.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        node = _schema_at(sch, path) or {}
        lo = node.get("minimum", node.get("exclusiveMinimum"))
        hi = node.get("maximum", node.get("exclusiveMaximum"))
        message = f"'{_fmt_path(path)}' is {shown or err.instance}, out of range"
        hint = f"use a value from {lo} to {hi}"
    elif err.validator == "enum":
        close = _close_matches(str(err.instance), [str(v) for v in err.validator_value])
        message = f"'{_fmt_path(path)}' is {shown or repr(err.instance)}; valid values: " \
                  f"{', '.join(map(str, err.validator_value))}"
        hint = f"did you mean '{close[0]}'?" if close and not secret_field else None
    elif err.validator == "required":
        message = f"'{_fmt_path(path)}': {err.message}"
    elif err.validator == "pattern":
        node = _schema_at(sch, path) or {}
        message = f"'{_fmt_path(path)}' is {shown or repr(err.instance)}, which is not valid"
        hint = node.get("description") or f"it must match {err.validator_value}"
    elif err.validator in ("anyOf", "oneOf") and path and path[-1] in SECRET_KEYS + ("username",):
        message = f"'{_fmt_path(path)}' must be a reference such as {{env: NAME}} or {{file: PATH}}"
        hint = "see the configuration reference in the README"
    elif secret_field:
        # jsonschema's own message starts with the offending value.
        message = f"'{_fmt_path(path)}' is not valid here ({shown}): it fails the '{err.validator}' rule"
        hint = "a secret is written as a reference: {env: NAME}, {file: PATH} or {credentials: ID}"
    else:
        message = f"'{_fmt_path(path)}': {err.message}"
    line_col = None
    for p in (key_path, path):
        while p and p not in positions:
            p = p[:-1]
        if p in positions:
            line_col = positions[p]
            break
    if line_col:
        line, col = line_col
        return ConfigError(f"{source}:{line}:{col}: {message}", hint=hint, file=source, line=line,
                           column=col, key=_fmt_path(key_path))
    return ConfigError(f"{source}: {message}", hint=hint, file=source, key=_fmt_path(key_path))


def _reject_odd_keys(doc: Any, path: tuple, source: str, positions) -> None:
    """Every key in the config is a name.  YAML makes ``1:``, ``true:`` and
    ``null:`` into a number, a boolean and None, which validation cannot
    compare with names; say so here, with the place."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if not isinstance(key, str):
                text = "null" if key is None else str(key).lower() if isinstance(key, bool) else str(key)
                where = positions.get(path + (text,)) or positions.get(path + (str(key),))
                loc = f"{source}:{where[0]}:{where[1]}" if where else source
                inside = f" under '{_fmt_path(path)}'" if path else ""
                kind = ("a boolean" if isinstance(key, bool) else "null" if key is None
                        else "a number" if isinstance(key, (int, float)) else f"a {type(key).__name__}")
                raise ConfigError(f"{loc}: the key {text}{inside} is not a name (YAML reads it as {kind})",
                                  hint=f"keys are names such as 'project'; quote it ('{text}':) if it is meant "
                                       "as text", file=source, line=where[0] if where else None,
                                  key=_fmt_path(path + (text,)))
            _reject_odd_keys(value, path + (key,), source, positions)
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            _reject_odd_keys(value, path + (i,), source, positions)


def _reject_literal_secrets(doc: Any, path: tuple, source: str, positions) -> None:
    """A literal password in a config file ends up in git, backups and
    `validate` output; only references are accepted."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            p = path + (key,)
            named = key in SECRET_KEYS or (path[-1:] == ("secrets",) and isinstance(key, str))
            if named and isinstance(value, (str, int, float)) and not isinstance(value, bool):
                where = positions.get(p)
                loc = f"{source}:{where[0]}:{where[1]}" if where else source
                env = "JENKINSCTL_" + "_".join(str(x).upper() for x in p if isinstance(x, str))
                env = "".join(c if c.isalnum() or c == "_" else "_" for c in env)
                raise ConfigError(f"{loc}: '{_fmt_path(p)}' holds a literal secret; secrets are accepted only "
                                  "by reference", hint=f"write '{key}: {{env: {env}}}' or "
                                  f"'{key}: {{file: /run/secrets/{key}}}', and remove the value from the file",
                                  file=source, line=where[0] if where else None, key=_fmt_path(p))
            _reject_literal_secrets(value, p, source, positions)
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            _reject_literal_secrets(value, path + (i,), source, positions)


def _read_file(path: pathlib.Path) -> bytes:
    if not path.exists():
        raise ConfigError(f"{path}: no such file", hint="check the path, or run without --config to use the "
                          "built-in defaults", file=str(path))
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a file",
                          hint=f"point --config at a file, such as {path / DEFAULT_FILE}", file=str(path))
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", file=str(path)) from None


def load_document(path: str | None, env: Mapping[str, str] | None = None, *,
                  discover: bool = True) -> tuple[dict, str]:
    """The merged, validated plain document and its source name.  With
    ``discover``, a ./jenkinsctl.yaml is read when no path is given."""
    env = os.environ if env is None else env
    sch = schema()
    doc: Any = {}
    positions: dict = {}
    source = "<defaults>"
    if path is None and discover and os.path.isfile(DEFAULT_FILE):
        path = DEFAULT_FILE
    if path is not None:
        import pathlib  # only with a file; its import costs a build on the defaults

        source = str(path)
        data = _read_file(pathlib.Path(path))
        if not data.strip():
            raise ConfigError(f"{source}: the file is empty", hint="write at least 'version: 1', or leave out "
                              "--config to use the built-in defaults", file=source)
        # PyYAML only when there is a file: its import (about 20 ms, most of
        # it regular expressions compiled by its resolver) is a large part of
        # a command that runs on the built-in defaults.
        from jenkinsctl.yamlload import load_yaml

        doc, positions = load_yaml(data, source)
        if doc is None:
            raise ConfigError(f"{source}: the file holds no settings (only comments or '---')",
                              hint="write at least 'version: 1'", file=source)
        if not isinstance(doc, dict):
            raise ConfigError(f"{source}:1:1: the top level must be a mapping of keys to values, not a "
                              f"{type(doc).__name__}", hint="start with keys such as 'project:' and 'agents:'",
                              file=source, line=1)
    _reject_odd_keys(doc, (), source, positions)
    _reject_literal_secrets(doc, (), source, positions)
    overrides = {var: env[var] for var in ENV_OVERRIDES if env.get(var)}
    if path is None:
        # The built-in defaults are valid by construction (a test checks
        # it), so skip jsonschema: importing it is a large part of an
        # unchanged `jenkinsctl build`.
        doc = _defaults(sch, {}, sch)
        if not overrides:
            if env.get("DOCKER_HOST"):
                doc["engine"]["host"] = env["DOCKER_HOST"]
            return doc, source
        # Environment overrides on the defaults change only the leaves they
        # name, and no rule of the schema ties one key to another, so the
        # leaves' own rules decide.  Anything the small check cannot prove
        # valid goes through jsonschema below, for its exact message.
        changed = {ENV_OVERRIDES[var]: value for var, value in overrides.items()}
        if doc["engine"].get("host") is None and env.get("DOCKER_HOST") and ("engine", "host") not in changed:
            changed[("engine", "host")] = env["DOCKER_HOST"]
        if all(_plainly_valid(_schema_at(sch, key), value) for key, value in changed.items()):
            for key, value in changed.items():
                _set_path(doc, key, value)
            _register_url_secrets(doc)
            return doc, source
        doc = {}
    import jsonschema

    validator = jsonschema.Draft202012Validator(sch)
    errors = sorted(validator.iter_errors(doc), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        # The deepest, most specific error first: that is the one to fix.
        best = jsonschema.exceptions.best_match(errors)
        raise _validation_error(best, source, positions, sch)
    doc = _defaults(sch, doc, sch)
    for var, value in overrides.items():
        _set_path(doc, ENV_OVERRIDES[var], value)
    if doc["engine"].get("host") is None and env.get("DOCKER_HOST"):
        doc["engine"]["host"] = env["DOCKER_HOST"]
    errors = list(validator.iter_errors(doc))
    if errors:
        bad = jsonschema.exceptions.best_match(errors)
        raise ConfigError(f"environment: {bad.message} (at {_fmt_path(tuple(bad.absolute_path))})",
                          hint="check the JENKINSCTL_* variables: " + ", ".join(ENV_OVERRIDES))
    _register_url_secrets(doc)
    names = [g["name"] for g in doc["agents"]]
    for i, name in enumerate(names):
        if names.index(name) != i:
            where = positions.get(("agents", i, "name"))
            loc = f"{source}:{where[0]}:{where[1]}" if where else source
            raise ConfigError(f"{loc}: agent group '{name}' is defined twice", hint="give each group its own name",
                              file=source, key=f"agents[{i}].name")
    return doc, source


# The keywords _plainly_valid understands; a leaf with any other rule is
# left to jsonschema.
_PLAIN_KEYWORDS = {"type", "pattern", "minLength", "maxLength", "enum", "description", "default"}


def _plainly_valid(node: Mapping[str, Any] | None, value: str) -> bool:
    """Whether a string ``value`` passes the schema leaf ``node``, when its
    rules are simple ones (type, pattern, length, enum).  False means
    "not proven": the caller then asks jsonschema, which names the rule."""
    if node is None or any(k not in _PLAIN_KEYWORDS and not k.startswith("x-") for k in node):
        return False
    types = node.get("type", "string")
    if "string" not in (types if isinstance(types, list) else [types]):
        return False
    if "enum" in node and value not in node["enum"]:
        return False
    if len(value) < node.get("minLength", 0) or len(value) > node.get("maxLength", len(value)):
        return False
    return "pattern" not in node or re.search(node["pattern"], value) is not None


def _register_url_secrets(doc: Mapping[str, Any]) -> None:
    """Tokens written into URLs (https://user:token@host in
    controller.external, Portainer's /api/webhooks/<token> in a webhook
    target) are secrets like any other: registered, so no output shows
    them, `validate`'s included."""
    sensitive_url((doc.get("controller") or {}).get("external"))
    for t in ((doc.get("deploy") or {}).get("targets") or {}).values():
        if isinstance(t, dict) and t.get("strategy") == "webhook" and isinstance(t.get("target"), str):
            sensitive_url(t["target"])


def _secret(value: Any) -> SecretRef | None:
    return SecretRef(**value) if isinstance(value, dict) else None


def from_document(doc: Mapping[str, Any], source: str = "<defaults>") -> Config:
    c, r, b = doc["controller"], doc["registry"], doc["build"]
    _register_url_secrets(doc)
    targets = {}
    for name, t in doc["deploy"]["targets"].items():
        h = t.get("health") or {}
        targets[name] = DeployTarget(
            name=name, strategy=t["strategy"], target=t["target"], ports=tuple(t["ports"]),
            env={k: (_secret(v) or v) for k, v in t["env"].items()}, network=t["network"],
            volumes=tuple(t["volumes"]),
            health=Health(http=h.get("http"), timeout=h.get("timeout", 60), interval=h.get("interval", 1)),
            keep=t["keep"], compose=t["compose"], service=t["service"], secret=_secret(t["secret"]),
            timeout=t["timeout"], retries=t["retries"], idempotent=t.get("idempotent", False),
            secrets={k: SecretRef(**v) for k, v in (t.get("secrets") or {}).items()},
            switch=t.get("switch"), proxy=dict(t.get("proxy") or {}))
    return Config(
        version=doc["version"], project=doc["project"], state_dir=doc["state_dir"],
        engine=EngineConfig(**doc["engine"]),
        controller=ControllerConfig(external=c["external"], image=c["image"], port=c["port"],
                                    username=c["username"], password=_secret(c["password"]),
                                    timeout=c["timeout"], ready_timeout=c["ready_timeout"],
                                    agent_address=c.get("agent_address")),
        agents=tuple(AgentGroup(**{**g, "labels": tuple(g["labels"])}) for g in doc["agents"]),
        registry=RegistryConfig(url=r["url"], username=_secret(r["username"]) or r["username"],
                                password=_secret(r["password"]),
                                others=tuple(RegistryLogin(url=o["url"], username=_secret(o["username"]) or
                                                           o["username"], password=SecretRef(**o["password"]))
                                             for o in r.get("others", ()))),
        build=BuildConfig(builder=b["builder"], moving_tags={k: tuple(v) for k, v in b["moving_tags"].items()},
                          keep_images=b["keep_images"], push_attempts=b["push_attempts"]),
        deploy_targets=targets, source=source, document=doc)


def load_config(path: str | None = None, env: Mapping[str, str] | None = None, *,
                step_mode: bool = False) -> Config:
    """``step_mode``: jenkinsctl runs for a pipeline step (``--params-env``),
    in a workspace whose content a pull request may have written; see
    confine_for_step."""
    doc, source = load_document(path, env, discover=not step_mode)
    cfg = from_document(doc, source)
    if path is not None and not os.path.isabs(cfg.state_dir):
        import pathlib

        base = pathlib.Path(path).resolve().parent
        cfg = replace(cfg, state_dir=str(base / cfg.state_dir))
    if step_mode:
        cfg = confine_for_step(cfg, os.environ if env is None else env)
    return cfg


# --- step mode: repository content must not steer the steps ------------------


class StepRefusedFileRef(SecretRef):
    """A {file: PATH} reference that a pipeline step may not read: the path is
    not one of the credential files Jenkins bound for the step, so it may be
    any file the agent can read (/proc/self/environ, another job's secret)."""

    def resolve(self, environ: Mapping[str, str] | None = None) -> str | None:
        raise ConfigError(f"secret reference {{file: {self.file}}}: in a pipeline step, jenkinsctl reads only the "
                          "secret files Jenkins bound for the step",
                          hint="bind the secret with the step's credentials parameter (such as "
                               "webhookSecretFileCredentialsId or credentialsId) instead of naming a file")


def _step_credentials() -> list[dict[str, str]]:
    """The withCredentials bindings the steps declare (x-credential in the
    step schemas): which variables a step's credentials arrive in."""
    # Imported here: only a pipeline step's run needs the step schemas, and
    # steps imports html and difflib, which a plain build or push would pay.
    from jenkinsctl import steps

    return [prop["x-credential"] for step in steps.step_names()
            for prop in steps.load_schema(step)["properties"].values() if prop.get("x-credential")]


def _step_file_variables() -> list[str]:
    """The variables through which the steps' file bindings pass their paths."""
    return [cred["variable"] for cred in _step_credentials() if cred.get("binding") == "file"]


def _step_credential_variables() -> list[str]:
    return ["JENKINSCTL_REGISTRY_PASSWORD_FILE"] + [
        cred[k] for cred in _step_credentials() for k in ("variable", "usernameVariable", "passwordVariable")
        if k in cred]


def _step_refs(cfg: Config) -> list[SecretRef]:
    """The secret references a step may send (the controller's password is
    for provisioning, which no step does)."""
    found = [cfg.registry.password, cfg.registry.username]
    for t in cfg.deploy_targets.values():
        found += [t.secret, *t.env.values()]
    return [r for r in found if isinstance(r, SecretRef)]


def confine_for_step(cfg: Config, env: Mapping[str, str]) -> Config:
    """What a config may do when jenkinsctl runs for a pipeline step.

    * A tcp:// engine without TLS is refused whenever credentials are in play
      (bound by the step, or referenced by the config): the push sends them
      to the engine in X-Registry-Auth, in clear text, to whatever host the
      address names.
    * A {file: PATH} secret reference resolves only when PATH is one of the
      credential files Jenkins bound for this step; any other becomes a
      StepRefusedFileRef, which fails when (and only when) it is used.
    """
    def allowed(path: str) -> bool:
        return os.path.realpath(path) in bound

    bound = {os.path.realpath(env[v]) for v in _step_file_variables() if env.get(v)}
    credentials = [v for v in _step_credential_variables() if env.get(v)]
    refs = [r.describe() for r in _step_refs(cfg)]
    host = cfg.engine.host or env.get("DOCKER_HOST") or ""
    tls = cfg.engine.tls or bool(env.get("DOCKER_TLS_VERIFY"))
    if host.startswith("tcp://") and not tls and (credentials or refs):
        what = ", ".join(credentials) if credentials else "the secret references in " + cfg.source
        raise ConfigError(f"engine {host} is a tcp:// engine without TLS, and credentials are in play ({what}): "
                          "the push would send them to it in clear text",
                          hint="in a pipeline step use the agent's own engine socket (unix://), or an engine with "
                               "TLS (engine.tls: true, DOCKER_CERT_PATH)", key="engine.host")

    def confine(value):
        if isinstance(value, SecretRef) and value.file and not allowed(value.file):
            return StepRefusedFileRef(file=value.file)
        return value

    targets = {name: replace(t, secret=confine(t.secret),
                                         env={k: confine(v) for k, v in t.env.items()})
               for name, t in cfg.deploy_targets.items()}
    return replace(
        cfg,
        controller=replace(cfg.controller, password=confine(cfg.controller.password)),
        registry=replace(cfg.registry, username=confine(cfg.registry.username),
                                     password=confine(cfg.registry.password)),
        deploy_targets=targets)


# --- the configuration reference, generated from the schema ------------------


def reference_markdown() -> str:
    """docs/configuration.md, generated so the reference cannot drift from
    what validation accepts (tests/unit/test_config_docs.py compares them)."""
    sch = schema()
    lines = ["# Configuration reference", "",
             "<!-- Generated from resources/schemas/config.schema.json by scripts/gen-docs; do not edit. -->", "",
             sch["description"], "",
             "Precedence, lowest first: these defaults, the file, `JENKINSCTL_*` environment variables, "
             "command-line flags. Secrets are accepted only by reference: `{env: NAME}`, `{file: PATH}` "
             "or, inside Jenkins, `{credentials: ID}`.", "",
             "| key | type | default | description |", "|---|---|---|---|"]

    def typ(node: Mapping[str, Any]) -> str:
        if "$ref" in node:
            return node["$ref"].rsplit("/", 1)[1]
        if "enum" in node:
            return " \\| ".join(f"`{v}`" for v in node["enum"])
        if "anyOf" in node:
            return " or ".join(typ(n) for n in node["anyOf"])
        t = node.get("type", "any")
        return " or ".join(t) if isinstance(t, list) else t

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        if "$ref" in node and node["$ref"].endswith(("agent_group", "deploy_target", "health")):
            node = {**sch["$defs"][node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}}
        for key, sub in node.get("properties", {}).items():
            path = f"{prefix}{key}"
            default = json.dumps(sub["default"]) if "default" in sub else ""
            lines.append(f"| `{path}` | {typ(sub)} | {'`' + default + '`' if default else ''} | "
                         f"{sub.get('description', '')} |")
            if sub.get("type") == "object" or "$ref" in sub and sub["$ref"].endswith("health"):
                walk(sub, path + ".")
            if sub.get("type") == "array" and isinstance(sub.get("items"), dict) and "$ref" in sub["items"]:
                walk(sub["items"], path + "[].")
            extra = sub.get("additionalProperties")
            if isinstance(extra, dict) and "$ref" in extra:
                walk(extra, path + ".NAME.")

    walk(sch, "")
    lines += ["", "## Environment variables", "", "| variable | sets |", "|---|---|"]
    lines += [f"| `{var}` | `{'.'.join(path)}` |" for var, path in ENV_OVERRIDES.items()]
    lines += ["| `DOCKER_HOST` | `engine.host` when the file leaves it empty |",
              "| `JENKINSCTL_REGISTRY_USERNAME`, `JENKINSCTL_REGISTRY_PASSWORD`, `JENKINSCTL_REGISTRY_PASSWORD_FILE` "
              "| registry credentials; they win over `registry.username` / `registry.password` |", ""]
    return "\n".join(lines)
