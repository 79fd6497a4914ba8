"""Redeploy strategies behind one interface.

Every strategy deploys an image **by digest** (``REPO@sha256:...``), so what
runs is exactly what was built and pushed, whatever a moving tag points at by
then, and waits for the outcome within a time limit.  A failed deploy raises
DeployError and leaves the previous version serving.

    target = parse_target("container:web", config)
    strategy = make_strategy(target, client=docker_client, config=config)
    outcome = strategy.deploy(ImageRef("127.0.0.1:5000/app", "sha256:...", ("abc1234",)))
    outcome = strategy.rollback()
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from jenkinsctl import refs
from jenkinsctl.config import Config, DeployTarget, Health
from jenkinsctl.engine import DEPLOY_ROLE, ROLE_LABEL, engine_errors
from jenkinsctl.errors import ConfigError, EngineError, EngineNotFound, RegistryError, Timeout, UsageError
from jenkinsctl.poll import Deadline
from jenkinsctl.secrets import display_url, redact_obj

log = logging.getLogger("jenkinsctl.deploy")

STRATEGIES = ("container", "swarm", "stack", "webhook")
DEPLOY_LABEL = "io.jenkinsctl.deploy"
SEQ_LABEL = "io.jenkinsctl.deploy-seq"
IMAGE_LABEL = "io.jenkinsctl.deploy-image"
CANDIDATE_LABEL = "io.jenkinsctl.deploy-candidate"

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_SERVICE_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?$")


@dataclass(frozen=True)
class ImageRef:
    """An image pinned by digest; ``tags`` are informational (what the
    build pushed), never what gets deployed."""

    repository: str
    digest: str
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _DIGEST.match(self.digest):
            raise UsageError(f"'{self.digest}' is not an image digest", hint="a digest looks like sha256:<64 hex>")

    @property
    def pinned(self) -> str:
        return f"{self.repository}@{self.digest}"


@dataclass
class DeployOutcome:
    """What a deploy or rollback did.  ``outcome`` is one of: deployed,
    created (nothing ran before), unchanged (that digest already runs),
    rolled-back (the rollback command succeeded), triggered (webhook)."""

    strategy: str
    target: str
    outcome: str
    image: str | None
    digest: str | None
    previous: dict[str, Any] | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Strategy(Protocol):
    """One redeploy mechanism.  Implementations take their clients (Docker,
    HTTP opener, clock) in the constructor so tests can pass real or fake
    ones."""

    name: str

    def deploy(self, image: ImageRef) -> DeployOutcome:
        """Run ``image`` (by digest) at the target; raise DeployError, with
        the previous version still serving, when it cannot."""

    def rollback(self, version: str | None = None) -> DeployOutcome:
        """Go back to the version before the current one (or ``version``)."""


# --- the deploy's time limit -------------------------------------------------------

TIMEOUT_HINT = ("raise the deploy target's timeout (--timeout SECONDS, deployTimeout in a pipeline step, "
                "timeout: in the config's deploy target)")


def deploy_deadline(target: DeployTarget, clock: Callable[[], float]) -> Deadline:
    """The whole deploy's bound: every wait in a strategy (lock, pull,
    convergence, retries) takes what is left of it, so a deploy never runs
    past the target's timeout whatever step it is in."""
    return Deadline(float(target.timeout), clock)


def out_of_time(subject: str, deadline: Deadline, pending: str, hint: str = "", **details: Any) -> Timeout:
    """The error of a deploy that ran out of its timeout: which timeout,
    what was still pending, and what to do."""
    seconds = deadline.seconds if deadline.seconds is not None else deadline.elapsed()
    return Timeout(f"{subject}: the deploy's timeout of {seconds:g}s ran out while {pending}",
                   hint="; ".join(h for h in (hint, TIMEOUT_HINT) if h), timeout=seconds, pending=pending, **details)


# --- targets -------------------------------------------------------------------


def _default_target(strategy: str, target: str, name: str | None = None) -> DeployTarget:
    return DeployTarget(name=name or f"{strategy}:{target}", strategy=strategy, target=target, ports=(), env={},
                        network=None, volumes=(), health=Health(http=None, timeout=60, interval=1), keep=3,
                        compose=None, service=None, secret=None, timeout=120, retries=3)


def parse_target(spec: str, config: Config | None = None) -> DeployTarget:
    """``--to`` as STRATEGY:TARGET or the name of a configured target.

    ``container:web`` also picks up the settings (ports, env, health...) of
    a configured target with the same strategy and target, so the short form
    and the name behave the same."""
    spec = (spec or "").strip()
    targets = dict(config.deploy_targets) if config is not None else {}
    if not spec:
        raise UsageError("--to is empty", hint="use STRATEGY:TARGET such as container:web, or a configured target name")
    strategy, sep, rest = spec.partition(":")
    if sep and strategy in STRATEGIES:
        if not rest:
            raise UsageError(f"--to {spec}: nothing after '{strategy}:'", hint=_TARGET_HINT)
        match = next((t for t in targets.values() if t.strategy == strategy and t.target == rest), None)
        target = match or _default_target(strategy, rest)
    elif spec in targets:
        target = targets[spec]
    elif sep and strategy.isalpha():
        raise UsageError(f"--to {spec}: unknown strategy '{strategy}'",
                         hint=f"valid strategies: {', '.join(STRATEGIES)}")
    else:
        known = ", ".join(sorted(targets)) or "none configured"
        src = config.source if config is not None else "the config"
        raise ConfigError(f"--to {spec}: no deploy target named '{spec}' in {src}",
                          hint=f"{_TARGET_HINT}; configured targets: {known}")
    _validate_target(target)
    return target


_TARGET_HINT = "use container:NAME, swarm:SERVICE, stack:NAME, webhook:URL or a configured target name"


def _validate_target(t: DeployTarget) -> None:
    if t.strategy == "container" and not _CONTAINER_NAME.match(t.target):
        raise UsageError(f"'{t.target}' is not a valid container name",
                         hint="use letters, digits, '_', '.' and '-', starting with a letter or digit")
    if t.strategy == "swarm" and not _SERVICE_NAME.match(t.target):
        raise UsageError(f"'{t.target}' is not a valid Swarm service name",
                         hint="use up to 63 letters, digits, '_', '.' and '-'")
    if t.strategy == "webhook" and not re.match(r"^https?://[^/\s]+", t.target):
        raise UsageError("the webhook target is not an http(s) URL", hint="use webhook:https://host/path")


def make_strategy(target: DeployTarget, *, config: Config, client=None, environ: Mapping[str, str] | None = None,
                  auth: dict | None = None, labels: Mapping[str, str] | None = None,
                  clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
                  ) -> Strategy:
    """The strategy object for ``target``.  ``labels`` are added to the
    ownership labels (tests add theirs); ``auth`` is the registry
    auth_config that nodes and pulls use."""
    environ = os.environ if environ is None else environ
    # Everything a deploy creates (containers, kept versions, volumes,
    # networks, locks, services) carries DEPLOY_ROLE: provisioning matches
    # only its own roles, so `down --volumes` never touches an app.
    own = {**config.labels, **(labels or {}), ROLE_LABEL: DEPLOY_ROLE}
    # Imported here, when chosen, because each strategy module imports this
    # package (a cycle at module top), and so a webhook deploy never loads
    # the Docker strategies.
    if target.strategy == "container":
        from jenkinsctl.deploy.container import ContainerStrategy

        return ContainerStrategy(client, target, labels=own, auth=auth, environ=environ, clock=clock, sleep=sleep)
    if target.strategy == "swarm":
        from jenkinsctl.deploy.swarm import SwarmStrategy

        return SwarmStrategy(client, target, labels=own, auth=auth, environ=environ, clock=clock, sleep=sleep)
    if target.strategy == "webhook":
        from jenkinsctl.deploy.webhook import WebhookStrategy

        return WebhookStrategy(target, environ=environ, sleep=sleep, clock=clock)
    if target.strategy == "stack":
        from jenkinsctl.deploy.stack import StackStrategy

        return StackStrategy(client, target, labels=own, auth=auth, environ=environ, clock=clock, sleep=sleep)
    raise UsageError(f"unknown deploy strategy '{target.strategy}'", hint=_TARGET_HINT)


# --- ports -------------------------------------------------------------------------


def port_bindings(ports: tuple[str, ...] | list[str]) -> dict[str, list[dict[str, str]]]:
    """A target's ports (``[HOST_IP:]HOST_PORT:CONTAINER_PORT[/proto]``, as
    the schema's pattern checked them) as the engine's PortBindings,
    ``{"8080/tcp": [{"HostIp": "", "HostPort": "80"}]}``: the one reading of
    the port syntax, which each strategy turns into its own API's form."""
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in ports:
        spec, _, proto = spec.partition("/")
        parts = spec.split(":")
        ip, host_port, cport = parts if len(parts) == 3 else ["", parts[0], parts[1]]
        bindings.setdefault(f"{cport}/{proto or 'tcp'}", []).append({"HostIp": ip, "HostPort": host_port})
    return bindings


# --- image references ----------------------------------------------------------


def resolve_image(client, ref: str | refs.Reference, auth: dict | None = None, tags: tuple[str, ...] = ()) -> ImageRef:
    """Pin ``ref`` to a digest.  A reference that carries a digest is used
    as is; a tag is resolved at the registry (the truth a node would pull),
    falling back to the local image's RepoDigests when the registry has no
    answer."""
    parsed = ref if isinstance(ref, refs.Reference) else refs.parse(ref)
    repository, tag, digest = parsed.repository, parsed.tag, parsed.digest
    if digest:
        return ImageRef(repository, digest, tuple(tags) or ((tag,) if tag else ()))
    tag = tag or "latest"
    named = f"{repository}:{tag}"
    registry_err = None
    try:
        with engine_errors(f"ask the registry for {named}"):
            data = client.images.get_registry_data(named, auth_config=auth)
        return ImageRef(repository, data.id, tuple(tags) or (tag,))
    except EngineError as exc:
        registry_err = getattr(exc, "explanation", None) or exc.message
    try:
        with engine_errors(f"inspect image {named}"):
            local = client.images.get(named)
    except EngineNotFound:
        local = None
    if local is not None:
        for rd in local.attrs.get("RepoDigests") or []:
            repo, _, dig = rd.partition("@")
            if repo == repository and _DIGEST.match(dig):
                log.info("registry did not answer for %s (%s); using the local image's digest %s",
                         named, registry_err, dig)
                return ImageRef(repository, dig, tuple(tags) or (tag,))
    raise RegistryError(f"cannot resolve {named} to a digest: {registry_err}",
                        hint="push the image first (jenkinsctl push), or pass --image REPO@sha256:...")


def pull_by_digest(client, image: ImageRef, auth: dict | None) -> str:
    """Make ``image.pinned`` present locally; returns the local image id.
    Skips the pull when the engine already has that digest (the usual
    case right after a push from this host)."""
    try:
        with engine_errors(f"inspect image {image.pinned}"):
            return client.images.get(image.pinned).id
    except EngineError:
        pass   # not here (or not readable): pulled below
    last_error = None
    try:
        with engine_errors(f"pull {image.pinned}"):
            for event in client.api.pull(image.repository, tag=image.digest, auth_config=auth, stream=True,
                                         decode=True):
                if "error" in event or "errorDetail" in event:
                    last_error = (event.get("errorDetail") or {}).get("message") or event.get("error")
    except EngineError as exc:
        last_error = getattr(exc, "explanation", None) or exc.message
    if last_error:
        hint = ("check that the digest was pushed to this registry and that the registry "
                "credentials (JENKINSCTL_REGISTRY_USERNAME/PASSWORD) are set")
        if auth is None:
            hint = ("jenkinsctl sent no credentials for this image: they go only to registry.url and the "
                    "registry.others entries; " + hint)
        raise RegistryError(f"cannot pull {image.pinned}: {last_error}", hint=hint)
    try:
        with engine_errors(f"inspect image {image.pinned}"):
            return client.images.get(image.pinned).id
    except EngineNotFound:
        raise RegistryError(f"pulled {image.pinned} but the engine does not list it") from None


# --- results ------------------------------------------------------------------------


def deploy_summary(outcome: DeployOutcome | None, target: DeployTarget, error: Exception | None = None
                   ) -> dict[str, Any]:
    """The ``deploy`` part of a --result document."""
    if outcome is None:
        out: dict[str, Any] = {"strategy": target.strategy, "target": display_target(target),
                               "outcome": "failed", "previous": None}
        if error is not None:
            out["error"] = getattr(error, "message", None) or str(error)
        return out
    return {"strategy": outcome.strategy, "target": display_target(target), "outcome": outcome.outcome,
            "previous": outcome.previous, "details": outcome.details}


def display_target(target: DeployTarget) -> str:
    if target.strategy == "webhook":
        return f"webhook:{display_url(target.target)}"
    return f"{target.strategy}:{target.target}"


def write_result(path: str, result: Mapping[str, Any]) -> None:
    """Write --result atomically, so a reader never sees half a file.
    Redacted like every other output: it is archived with the build."""
    import json
    import tempfile

    result = redact_obj(result)

    directory = os.path.dirname(os.path.abspath(path))
    try:
        if os.path.exists(path) and not os.path.isfile(path):
            # A device or a pipe (--result /dev/null, /dev/stdout): write
            # into it.  Renaming over it would replace /dev/null itself with
            # a regular file when jenkinsctl runs as root.
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(result, fh, indent=2, sort_keys=True, default=str)
                fh.write("\n")
            return
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".result-", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"cannot write --result {path}: {exc.strerror or exc}") from None


_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")


def parse_time(value: str | None) -> datetime.datetime:
    """Parse the engine's RFC 3339 nano timestamps (Python's parser takes at
    most microseconds)."""
    if not value:
        return datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    m = _TS.match(value)
    if not m:
        return datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    tz = m.group(3) or "Z"
    tz = "+00:00" if tz == "Z" else tz
    return datetime.datetime.fromisoformat(f"{m.group(1)}.{frac}{tz}")
