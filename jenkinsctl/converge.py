"""Docker convergence for provisioning: engines, network, volume and containers by config hash, ownership, sshd waits.

What the provisioner asks of an engine lives here: one client per engine,
the ownership and role labels, "is this name taken by something not ours",
create-or-replace of a container by its config-hash label (Compose's
approach), and waiting for an agent's sshd.  It knows nothing of Jenkins;
plan, apply, down and status (provision.py) decide what to ask for.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from typing import Any, Callable, Mapping

from jenkinsctl.config import AgentGroup, Config
from jenkinsctl.engine import (
    CONFIG_HASH_LABEL,
    engine_errors,
    is_provisioned,
    ownership_labels,
    provisioned_filters,
    translate,
)
from jenkinsctl.engine import client as engine_client
from jenkinsctl.engine import log_tail as engine_log_tail
from jenkinsctl.errors import EngineError, EngineNotFound, ProvisionError
from jenkinsctl.names import controller_name, network_name, volume_name
from jenkinsctl.poll import Clock, Sleep, wait_for

# Suffix of a container whose files are not in yet; see Engines.converge_container.
INCOMPLETE = ".incomplete"
# How long an agent's sshd may take to listen after its container starts.
SSHD_WAIT = 60.0


def config_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def secret_digest(text: str) -> str:
    """A digest of a secret for a config hash: it changes with the secret and
    does not reveal it (the prefix keeps it apart from other digests)."""
    return hashlib.sha256(b"jenkinsctl-secret\0" + text.encode()).hexdigest()[:16]


def container_hash(kwargs: Mapping[str, Any], image_id: str | None, extra: Mapping[str, Any]) -> str:
    return config_hash({"kwargs": {k: v for k, v in kwargs.items() if k != "labels"},
                        "labels": kwargs.get("labels"), "image_id": image_id, **extra})


def engine_text(exc: BaseException) -> str | None:
    """The engine client's own text of ``exc`` when it is an engine error
    that ``translate`` would turn into a jenkinsctl one, None otherwise
    (ours, or not the engine's).  Removal problems and ``down``'s output
    quote the engine client's text as it always has."""
    err = translate(exc, "")
    return None if err is None or err is exc else str(exc)


def container_action(container, want_hash: str) -> str:
    """What converging ``container`` (None: missing) to ``want_hash`` takes:
    create, update, start or unchanged."""
    if container is None:
        return "create"
    labels = container.attrs.get("Config", {}).get("Labels") or {}
    if labels.get(CONFIG_HASH_LABEL) != want_hash:
        return "update"
    state = container.attrs.get("State", {})
    if state.get("Running") and not state.get("Restarting"):
        return "unchanged"
    return "start"


def container_state(container) -> str:
    """``running``, ``exited``...; ``running (healthy)`` with a health check."""
    state = container.attrs.get("State", {})
    status = state.get("Status", "unknown")
    health = (state.get("Health") or {}).get("Status")
    return f"{status} ({health})" if health and status == "running" else status


def log_tail(container, lines: int = 5) -> str:
    """The container's last log lines on one line, for an error message."""
    return " | ".join(line for line in engine_log_tail(container, lines=lines).splitlines() if line.strip())[-800:]


class Engines:
    """The project's Docker engines: the controller's and each agent group's.
    Clients are made on first use and can be injected (tests pass their own)."""

    def __init__(self, cfg: Config, *, environ: Mapping[str, str],
                 docker_factory: Callable[[str | None], Any] | None = None,
                 say: Callable[[str], None], clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> None:
        self.cfg = cfg
        self.environ = environ
        self._docker_factory = docker_factory
        self._say = say
        self._clients: dict[str | None, Any] = {}
        self._client_lock = threading.Lock()
        self.clock = clock
        self.sleep = sleep

    # --- clients --------------------------------------------------------------

    def docker(self, host: str | None = None) -> Any:
        host = host or self.cfg.engine.host
        with self._client_lock:
            if host not in self._clients:
                if self._docker_factory is not None:
                    self._clients[host] = self._docker_factory(host)
                else:
                    self._clients[host] = engine_client(host, timeout=self.cfg.engine.timeout, tls=self.cfg.engine.tls)
            return self._clients[host]

    def group_docker(self, group: AgentGroup) -> Any:
        return self.docker(group.docker_host)

    def hosts(self) -> list[str | None]:
        """Every engine the project uses, the controller's first."""
        hosts = [self.cfg.engine.host] if not self.cfg.controller.external else []
        for g in self.cfg.agents:
            h = g.docker_host or self.cfg.engine.host
            if h not in hosts:
                hosts.append(h)
        return hosts or [self.cfg.engine.host]

    def is_local(self, group: AgentGroup) -> bool:
        """A unix-socket engine on this machine can bind-mount the state dir;
        a tcp:// or ssh:// engine gets the keys copied in before start."""
        host = group.docker_host or self.cfg.engine.host or self.environ.get("DOCKER_HOST") or "unix://"
        return host.startswith("unix://")

    # --- labels and lookups ------------------------------------------------------

    def labels(self, role: str, **extra: str) -> dict[str, str]:
        return {**ownership_labels(self.cfg.project, role=role), **extra}

    def image_id(self, client, ref: str) -> str | None:
        try:
            with engine_errors(f"inspect image {ref}"):
                return client.images.get(ref).id
        except EngineNotFound:
            return None

    def get_container(self, client, name: str):
        try:
            with engine_errors(f"inspect container {name}"):
                return client.containers.get(name)
        except EngineNotFound:
            return None

    def find_network(self, client, name: str):
        return next((n for n in client.networks.list(names=[name]) if n.name == name), None)

    def get_volume(self, client, name: str):
        try:
            with engine_errors(f"inspect volume {name}"):
                return client.volumes.get(name)
        except EngineNotFound:
            return None

    def has_volume(self, client, name: str) -> bool:
        return self.get_volume(client, name) is not None

    def owned(self, obj, kind: str = "container") -> bool:
        """Whether provisioning made ``obj``: ownership labels *and* a
        provisioning role, so an app that deploy made under the same project
        is never taken for one of ours."""
        labels = (obj.attrs.get("Config") or {}).get("Labels") if "Config" in obj.attrs else obj.attrs.get("Labels")
        return is_provisioned(labels, self.cfg.project, kind)

    def provisioned(self, client, kind: str) -> list:
        """The containers, networks or volumes provisioning made for this
        project on ``client``'s engine; never what deploy made."""
        listing = {"container": lambda f: client.containers.list(all=True, filters=f),
                   "network": lambda f: client.networks.list(filters=f),
                   "volume": lambda f: client.volumes.list(filters=f)}[kind]
        found: dict[str, Any] = {}
        for filters in provisioned_filters(self.cfg.project, kind):
            for obj in listing(filters):
                found.setdefault(obj.id, obj)
        return list(found.values())

    def provisioned_containers(self) -> dict[str, Any]:
        """Name -> container, over every engine."""
        try:
            return {c.name: c for host in self.hosts() for c in self.provisioned(self.docker(host), "container")}
        except Exception as exc:
            text = engine_text(exc)
            if text is None:
                raise
            raise EngineError(text) from None

    def collision(self, kind: str, name: str) -> ProvisionError:
        return ProvisionError(
            f"a {kind} named '{name}' exists and is not managed by jenkinsctl project '{self.cfg.project}'; "
            "refusing to touch it",
            hint=f"remove or rename it (docker {kind} rm {name}) if it is yours to drop, or choose another "
                 "project name in the config so the names do not collide", resource=name)

    def check_collisions(self, containers: list[tuple[str | None, str]]) -> None:
        """Refuse before changing anything if a name we need is taken by a
        container, network or volume that is not ours.  ``containers`` are
        the agents' (engine, name); the controller's are added here."""
        names = [] if self.cfg.controller.external else [(self.cfg.engine.host, controller_name(self.cfg))]
        for host, name in names + containers:
            c = self.get_container(self.docker(host), name)
            if c is not None and not self.owned(c):
                raise self.collision("container", name)
        for host in self.hosts():
            client = self.docker(host)
            net = self.find_network(client, network_name(self.cfg))
            if net is not None and not self.owned(net, "network"):
                raise self.collision("network", network_name(self.cfg))
        if not self.cfg.controller.external:
            vol = self.get_volume(self.docker(), volume_name(self.cfg))
            if vol is not None and not self.owned(vol, "volume"):
                raise self.collision("volume", volume_name(self.cfg))

    # --- converging -------------------------------------------------------------

    def ensure_network(self, host: str | None) -> str:
        """The project network on ``host``'s engine; returns the action."""
        client = self.docker(host)
        name = network_name(self.cfg)
        if self.find_network(client, name) is not None:
            return "unchanged"
        labels = self.labels("network", **{CONFIG_HASH_LABEL: config_hash({"driver": "bridge"})})
        try:
            with engine_errors(f"create network {name}"):
                client.networks.create(name, driver="bridge", labels=labels, check_duplicate=True)
        except EngineError as err:
            # Another apply made it since find_network: ours all the same.
            if "already exists" not in str(getattr(err, "explanation", None) or err):
                raise
        return "create"

    def ensure_volume(self, client, name: str, role: str) -> str:
        if self.has_volume(client, name):
            return "unchanged"
        client.volumes.create(name, labels=self.labels(role))
        return "create"

    def converge_container(self, client, kwargs: dict[str, Any], want_hash: str,
                           before_start: Callable[[Any], None] | None = None) -> str:
        """Create, recreate or start one container; returns the action."""
        name = kwargs["name"]
        current = self.get_container(client, name)
        if current is not None and not self.owned(current):
            raise self.collision("container", name)
        action = container_action(current, want_hash)
        if action == "unchanged":
            return action
        with engine_errors(f"{action} container {name}"):
            if action == "start":
                current.start()
                return action
            if current is not None:
                current.remove(force=True)
            # A created container carries the wanted hash, so under its real
            # name the next run would only start it, even if it was killed
            # before its CasC, secrets or keys were in.  It is therefore made
            # as NAME.incomplete and renamed only once its files are in; a
            # leftover NAME.incomplete (SIGKILL) is removed here or as an
            # orphan.
            kw = dict(kwargs)
            kw["name"] = name + INCOMPLETE
            kw["labels"] = {**kwargs["labels"], CONFIG_HASH_LABEL: want_hash}
            stale = self.get_container(client, kw["name"])
            if stale is not None and self.owned(stale):
                stale.remove(force=True)
            container = self._create_container(client, kw, image=kwargs["image"], action=f"{action} container {name}")
            renamed = False
            try:
                if before_start is not None:
                    before_start(container)
                container.rename(name)
                renamed = True
                container.start()
            except BaseException:
                # Undo the resource in progress (SIGTERM arrives here as
                # signals.Signalled).  Renamed but not started, it is complete and
                # the next apply only starts it.
                if not renamed:
                    with contextlib.suppress(Exception):
                        container.remove(force=True)
                raise
        return action

    @staticmethod
    def _create_container(client, kw: dict[str, Any], *, image: str, action: str):
        """Create a container from ``kw``.  Its 404 is a missing image or a
        missing network; the engine says which ("No such image: ..."), and
        only the first is worth its own message."""
        try:
            with engine_errors(action):
                return client.containers.create(**kw)
        except EngineNotFound as err:
            explanation = str(getattr(err, "explanation", None) or err)
            if "no such image" not in explanation.lower():
                raise
            name = kw["name"].removesuffix(INCOMPLETE)
            raise EngineError(f"image {image} for {name} is not on the engine: {explanation}",
                              hint="build it, or fix the image name in the config") from None

    def wait_sshd(self, client, name: str, timeout: float = SSHD_WAIT) -> None:
        """Until the agent's sshd listens (its log says so, or it is healthy).
        A container that exits or restarts is a failure with its last log
        lines.  The log is polled often, the state about once a second, to
        keep the load on the engine low when many agents start at once."""
        seen: dict[str, Any] = {"container": None, "looks": 0}

        def look() -> bool:
            c = seen["container"]
            if c is None or seen["looks"] % 5 == 0:
                c = seen["container"] = self.get_container(client, name)
                if c is None:
                    raise EngineError(f"agent container {name} disappeared")
                state = c.attrs.get("State", {})
                if not state.get("Running") or state.get("Restarting") or c.attrs.get("RestartCount", 0) > 0:
                    tail = log_tail(c)
                    raise EngineError(f"agent container {name} did not stay up (status {state.get('Status')}, "
                                      f"exit code {state.get('ExitCode')})" + (f": {tail}" if tail else ""),
                                      hint="check the agent image (agents[].image) and `docker logs " + name + "`")
                if (state.get("Health") or {}).get("Status") == "healthy":
                    return True
            seen["looks"] += 1
            return "Server listening on" in c.logs(tail=20).decode("utf-8", "replace")

        if not wait_for(look, bool, timeout=timeout, interval=0.2, clock=self.clock, sleep=self.sleep).done:
            self._say(f"{name}: sshd not confirmed after {timeout:g}s; registering anyway")

    # --- removing ---------------------------------------------------------------

    def remove_container(self, name: str) -> None:
        """Remove our container ``name`` from every engine that has it."""
        for host in self.hosts():
            c = self.get_container(self.docker(host), name)
            if c is not None and self.owned(c):
                try:
                    c.remove(force=True)
                except Exception as exc:
                    text = engine_text(exc)
                    if text is None:
                        raise
                    raise EngineError(text) from None

    def remove_all(self, *, volumes: bool) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
        """Remove every container and network provisioning made, and its
        volumes when ``volumes``: the (kind, name) removed and the problems,
        one per resource that could not be removed."""
        removed: list[tuple[str, str]] = []
        problems: list[dict[str, str]] = []
        kinds = ["container", "network"] + (["volume"] if volumes else [])
        for host in self.hosts():
            client = self.docker(host)
            for kind in kinds:
                for obj in self.provisioned(client, kind):
                    try:
                        if kind == "network":
                            obj.remove()
                        else:
                            obj.remove(force=True)
                        removed.append((kind, obj.name))
                    except Exception as exc:
                        err = translate(exc, f"remove {kind} {obj.name}")
                        if err is None or err is exc:
                            raise
                        if kind == "container" and isinstance(err, EngineNotFound):
                            continue  # gone already (its --rm, or a concurrent down)
                        # down has always reported the engine client's own text
                        problems.append({"resource": f"{kind} {obj.name}", "error": str(exc)})
        return removed, problems

