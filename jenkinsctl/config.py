"""jenkinsctl.yaml -> validated, frozen, typed objects.

Precedence, lowest first: the schema's defaults, the file, JENKINSCTL_*
environment variables, then command-line flags (applied by the commands
with dataclasses.replace).  The JSON Schema in resources/schemas is the one
source of truth for what is valid; this module adds what a schema cannot
say well: positions in the file, did-you-mean, and secret hygiene.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import os
import pathlib
from dataclasses import dataclass, field
from typing import Any, Mapping

from jenkinsctl.errors import ConfigError
from jenkinsctl.resources import resource_path

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


@dataclass(frozen=True)
class SecretRef:
    """A secret named by where it lives, never by its value."""

    env: str | None = None
    file: str | None = None
    credentials: str | None = None

    def describe(self) -> dict[str, str]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def resolve(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The secret's value, or None when its source is absent.  A
        ``credentials`` reference resolves only inside Jenkins, where the
        pipeline step has bound it to an environment variable."""
        environ = os.environ if environ is None else environ
        if self.env:
            return environ.get(self.env)
        if self.file:
            try:
                return pathlib.Path(self.file).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(f"cannot read secret file {self.file}: {exc.strerror}",
                                  hint="check the path and that this user may read it") from None
        return None


@dataclass(frozen=True)
class EngineConfig:
    host: str | None
    tls: bool
    timeout: int


@dataclass(frozen=True)
class ControllerConfig:
    external: str | None
    image: str | None
    port: int
    username: str
    password: SecretRef
    timeout: float
    ready_timeout: float

    @property
    def url(self) -> str:
        return self.external or f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class AgentGroup:
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


@dataclass(frozen=True)
class RegistryConfig:
    url: str
    username: str | SecretRef | None
    password: SecretRef | None


@dataclass(frozen=True)
class BuildConfig:
    builder: str
    moving_tags: Mapping[str, tuple[str, ...]]
    keep_images: int
    push_attempts: int


@dataclass(frozen=True)
class Health:
    http: str | None
    timeout: float
    interval: float


@dataclass(frozen=True)
class DeployTarget:
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
    # container: how the new version takes over (None: proxy when host ports
    # are published, else start-first) and the proxy mode's settings.
    switch: str | None = None
    proxy: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
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
        return {"io.jenkinsctl.managed": "true", "io.jenkinsctl.project": self.project}

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
    with resource_path("schemas/config.schema.json").open(encoding="utf-8") as fh:
        return json.load(fh)


def _defaults(node: Mapping[str, Any], value: Any, root: Mapping[str, Any]) -> Any:
    """Fill in schema defaults under ``value`` (which is not modified)."""
    if "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
    if isinstance(value, dict) and node.get("type") == "object":
        out = dict(value)
        for key, sub in node.get("properties", {}).items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
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
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        node = _schema_at(sch, path) or {}
        allowed = sorted(node.get("properties", {}))
        unknown = sorted(k for k in err.instance if k not in allowed)
        bad = unknown[0] if unknown else "?"
        key_path = path + (bad,)
        close = difflib.get_close_matches(str(bad), allowed, n=1)
        message = f"unknown key '{_fmt_path(key_path)}'"
        hint = (f"did you mean '{close[0]}'? " if close else "") + f"valid keys here: {', '.join(allowed)}"
    elif err.validator == "type":
        want = err.validator_value if isinstance(err.validator_value, str) else " or ".join(err.validator_value)
        message = f"'{_fmt_path(path)}' must be {want}, not {type(err.instance).__name__} ({err.instance!r})"
    elif err.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        node = _schema_at(sch, path) or {}
        lo = node.get("minimum", node.get("exclusiveMinimum"))
        hi = node.get("maximum", node.get("exclusiveMaximum"))
        message = f"'{_fmt_path(path)}' is {err.instance}, out of range"
        hint = f"use a value from {lo} to {hi}"
    elif err.validator == "enum":
        close = difflib.get_close_matches(str(err.instance), [str(v) for v in err.validator_value], n=1)
        message = f"'{_fmt_path(path)}' is {err.instance!r}; valid values: {', '.join(map(str, err.validator_value))}"
        hint = f"did you mean '{close[0]}'?" if close else None
    elif err.validator == "required":
        message = f"'{_fmt_path(path)}': {err.message}"
    elif err.validator == "pattern":
        node = _schema_at(sch, path) or {}
        message = f"'{_fmt_path(path)}' is {err.instance!r}, which is not valid"
        hint = node.get("description") or f"it must match {err.validator_value}"
    elif err.validator in ("anyOf", "oneOf") and path and path[-1] in SECRET_KEYS + ("username",):
        message = f"'{_fmt_path(path)}' must be a reference such as {{env: NAME}} or {{file: PATH}}"
        hint = "see the configuration reference in the README"
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


def _reject_literal_secrets(doc: Any, path: tuple, source: str, positions) -> None:
    """A literal password in a config file ends up in git, backups and
    `validate` output; only references are accepted."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            p = path + (key,)
            if key in SECRET_KEYS and isinstance(value, (str, int, float)) and not isinstance(value, bool):
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


def load_document(path: str | None, env: Mapping[str, str] | None = None) -> tuple[dict, str]:
    """The merged, validated plain document and its source name."""
    from jenkinsctl.yamlload import load_yaml

    env = os.environ if env is None else env
    sch = schema()
    doc: Any = {}
    positions: dict = {}
    source = "<defaults>"
    if path is None and pathlib.Path(DEFAULT_FILE).is_file():
        path = DEFAULT_FILE
    if path is not None:
        source = str(path)
        data = _read_file(pathlib.Path(path))
        if not data.strip():
            raise ConfigError(f"{source}: the file is empty", hint="write at least 'version: 1', or leave out "
                              "--config to use the built-in defaults", file=source)
        doc, positions = load_yaml(data, source)
        if doc is None:
            raise ConfigError(f"{source}: the file holds no settings (only comments or '---')",
                              hint="write at least 'version: 1'", file=source)
        if not isinstance(doc, dict):
            raise ConfigError(f"{source}:1:1: the top level must be a mapping of keys to values, not a "
                              f"{type(doc).__name__}", hint="start with keys such as 'project:' and 'agents:'",
                              file=source, line=1)
    _reject_literal_secrets(doc, (), source, positions)
    overrides = {var: env[var] for var in ENV_OVERRIDES if env.get(var)}
    if path is None and not overrides:
        # The built-in defaults are valid by construction (a test checks
        # it), so skip jsonschema: importing it is a large part of an
        # unchanged `jenkinsctl build`.
        doc = _defaults(sch, {}, sch)
        if env.get("DOCKER_HOST"):
            doc["engine"]["host"] = env["DOCKER_HOST"]
        return doc, source
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
    names = [g["name"] for g in doc["agents"]]
    for i, name in enumerate(names):
        if names.index(name) != i:
            where = positions.get(("agents", i, "name"))
            loc = f"{source}:{where[0]}:{where[1]}" if where else source
            raise ConfigError(f"{loc}: agent group '{name}' is defined twice", hint="give each group its own name",
                              file=source, key=f"agents[{i}].name")
    return doc, source


def _secret(value: Any) -> SecretRef | None:
    return SecretRef(**value) if isinstance(value, dict) else None


def from_document(doc: Mapping[str, Any], source: str = "<defaults>") -> Config:
    c, r, b = doc["controller"], doc["registry"], doc["build"]
    targets = {}
    for name, t in doc["deploy"]["targets"].items():
        h = t.get("health") or {}
        targets[name] = DeployTarget(
            name=name, strategy=t["strategy"], target=t["target"], ports=tuple(t["ports"]),
            env={k: (_secret(v) or v) for k, v in t["env"].items()}, network=t["network"],
            volumes=tuple(t["volumes"]),
            health=Health(http=h.get("http"), timeout=h.get("timeout", 60), interval=h.get("interval", 1)),
            keep=t["keep"], compose=t["compose"], service=t["service"], secret=_secret(t["secret"]),
            timeout=t["timeout"], retries=t["retries"], switch=t.get("switch"), proxy=dict(t.get("proxy") or {}))
    return Config(
        version=doc["version"], project=doc["project"], state_dir=doc["state_dir"],
        engine=EngineConfig(**doc["engine"]),
        controller=ControllerConfig(external=c["external"], image=c["image"], port=c["port"],
                                    username=c["username"], password=_secret(c["password"]),
                                    timeout=c["timeout"], ready_timeout=c["ready_timeout"]),
        agents=tuple(AgentGroup(**{**g, "labels": tuple(g["labels"])}) for g in doc["agents"]),
        registry=RegistryConfig(url=r["url"], username=_secret(r["username"]) or r["username"],
                                password=_secret(r["password"])),
        build=BuildConfig(builder=b["builder"], moving_tags={k: tuple(v) for k, v in b["moving_tags"].items()},
                          keep_images=b["keep_images"], push_attempts=b["push_attempts"]),
        deploy_targets=targets, source=source, document=doc)


def load_config(path: str | None = None, env: Mapping[str, str] | None = None) -> Config:
    doc, source = load_document(path, env)
    cfg = from_document(doc, source)
    if path is not None and not pathlib.Path(cfg.state_dir).is_absolute():
        base = pathlib.Path(path).resolve().parent
        cfg = dataclasses.replace(cfg, state_dir=str(base / cfg.state_dir))
    return cfg


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
