"""plan / apply / down / status for the controller and its SSH agents.

The desired state is computed from the Config alone: a project network, the
controller's home volume and container (unless ``controller.external``), one
container and one node per agent, and the agents' SSH credential.  Every
Docker resource carries the project's ownership labels and a config-hash
label (Compose's approach): a container whose hash matches is left alone, so
a second ``apply`` makes no mutating Docker or Jenkins call.

Concurrency and failure:

* ``apply`` and ``down`` hold an exclusive ``fcntl.flock`` on
  ``STATE_DIR/provision.lock``: two concurrent applies run one after the
  other, and the second finds nothing to do.
* Agents are set up in parallel; one agent's failure does not stop the
  others.  The ProvisionError then lists what was done and what was not,
  and a re-run picks up from there (it recreates only what differs).
* Every wait has a time limit.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import pathlib
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from jenkinsctl import statedir
from jenkinsctl.config import AgentGroup, Config
from jenkinsctl.engine import (
    CONFIG_HASH_LABEL,
    MANAGED_LABEL,
    PROJECT_LABEL,
    ROLE_LABEL,
    api_error,
    is_provisioned,
    provisioned_filters,
)
from jenkinsctl.errors import EngineError, Interrupted, JenkinsctlError, ProvisionError, Timeout
from jenkinsctl.names import (
    agent_container_name,
    check_container_name,
    controller_name,
    credential_id,
    is_our_node,
    network_name,
    node_description,
    volume_name,
)
from jenkinsctl.signals import Signalled

log = logging.getLogger("jenkinsctl.provision")

NODE_LABEL = "io.jenkinsctl.node"
# Suffix of a container whose files are not in yet; see _converge_container.
INCOMPLETE = ".incomplete"
GROUP_LABEL = "io.jenkinsctl.group"
CONTROLLER_HOME = "/var/jenkins_home"
CONTROLLER_PORT = 8080
AGENT_USER = "jenkins"
LOCK_WAIT = 900.0
# How long an agent's sshd may take to listen after its container starts.
SSHD_WAIT = 60.0


# --- the agents ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Agent:
    group: AgentGroup
    node: str
    container: str


def agents(cfg: Config) -> list[Agent]:
    return [Agent(g, n, agent_container_name(cfg, n)) for g in cfg.agents for n in g.node_names()]


def validate(cfg: Config) -> None:
    """Refuse names Jenkins or Docker cannot take, before anything is created."""
    from jenkinsctl.errors import ConfigError
    from jenkinsctl.jenkins_api import validate_node_name

    seen: dict[str, str] = {}
    for a in agents(cfg):
        validate_node_name(a.node)
        check_container_name(a.container)
        if a.node in seen:
            raise ConfigError(f"node '{a.node}' comes from two agent groups ({seen[a.node]} and {a.group.name})",
                              hint="group names must not make the same NAME-i; rename one group")
        seen[a.node] = a.group.name


def check_library(cfg: Config) -> None:
    """The CasC of a controller jenkinsctl runs registers the shared library,
    which has no default URL: plan and apply fail before anything exists."""
    if not cfg.controller.external:
        from jenkinsctl.casc import library_source

        library_source(cfg)


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _secret_digest(text: str) -> str:
    return hashlib.sha256(b"jenkinsctl-secret\0" + text.encode()).hexdigest()[:16]


# --- the result ------------------------------------------------------------------------


@dataclass
class Change:
    kind: str  # image | network | volume | container | credential | node
    name: str
    action: str  # create | update | remove | unchanged | start | build | unknown
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


# --- the provisioner -------------------------------------------------------------------


class Provisioner:
    """One project's controller and agents.  Clients are made lazily and can
    be injected (tests pass their own)."""

    def __init__(self, cfg: Config, *, environ: Mapping[str, str] | None = None,
                 docker_factory: Callable[[str | None], Any] | None = None,
                 jenkins_factory: Callable[..., Any] | None = None,
                 say: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        validate(cfg)
        self.cfg = cfg
        self.environ = os.environ if environ is None else environ
        self._docker_factory = docker_factory
        self._jenkins_factory = jenkins_factory
        self._say = say or log.info
        self._clients: dict[str | None, Any] = {}
        self._client_lock = threading.Lock()
        self._api = None
        self._agent_address: str | None = None
        self.clock = clock
        from jenkinsctl.keys import KeyStore

        self.keys = KeyStore(cfg.state_dir)

    # --- clients --------------------------------------------------------------

    def docker(self, host: str | None = None) -> Any:
        host = host or self.cfg.engine.host
        with self._client_lock:
            if host not in self._clients:
                if self._docker_factory is not None:
                    self._clients[host] = self._docker_factory(host)
                else:
                    from jenkinsctl.engine import client

                    self._clients[host] = client(host, timeout=self.cfg.engine.timeout, tls=self.cfg.engine.tls)
            return self._clients[host]

    def group_docker(self, group: AgentGroup) -> Any:
        return self.docker(group.docker_host)

    def engines(self) -> list[str | None]:
        hosts = [self.cfg.engine.host] if not self.cfg.controller.external else []
        for g in self.cfg.agents:
            h = g.docker_host or self.cfg.engine.host
            if h not in hosts:
                hosts.append(h)
        return hosts or [self.cfg.engine.host]

    def jenkins(self):
        if self._api is None:
            if self._jenkins_factory is not None:
                self._api = self._jenkins_factory(self.cfg)
            else:
                from jenkinsctl.jenkins_api import JenkinsAPI

                self._api = JenkinsAPI.from_config(self.cfg.controller, self.environ)
        return self._api

    # --- lock -------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, timeout: float = LOCK_WAIT) -> Iterator[None]:
        state = statedir.prepare(self.cfg.state_dir)
        path = state / "provision.lock"
        fd = statedir.open_lock(path)
        try:
            deadline = self.clock() + timeout
            told = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not told:
                        self._say(f"waiting for another jenkinsctl run on project {self.cfg.project} "
                                  f"(lock {path})")
                        told = True
                    if self.clock() >= deadline:
                        raise Timeout(f"another jenkinsctl run held {path} for more than {timeout:g}s",
                                      hint="wait for it to finish; if none runs, the lock is stale only if its "
                                           "process is gone, and then it is released already") from None
                    time.sleep(0.2)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # --- desired state ---------------------------------------------------------------

    def _labels(self, role: str, **extra: str) -> dict[str, str]:
        labels = {MANAGED_LABEL: "true", PROJECT_LABEL: self.cfg.project, ROLE_LABEL: role}
        labels.update(extra)
        return labels

    def _image_id(self, client, ref: str) -> str | None:
        import docker.errors

        try:
            return client.images.get(ref).id
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as exc:
            raise api_error(f"inspect image {ref}", exc) from None

    def agent_image_ref(self, group: AgentGroup, *, build: bool) -> str:
        """The group's image, or the agent image: built when ``build`` (a
        content-hash tag, so an unchanged image is one inspect), else only
        its reference is computed (for ``plan``)."""
        if group.image:
            return group.image
        from jenkinsctl import agent_image

        client = self.group_docker(group)
        if build:
            return agent_image.build_agent_image(client, project=self.cfg.project, log=self._say)
        return agent_image.agent_image_reference()

    def controller_kwargs(self, password: str) -> dict[str, Any]:
        from jenkinsctl import casc

        c = self.cfg.controller
        labels = self._labels("controller")
        if c.image:
            image = c.image
        else:
            from jenkinsctl.controller_image import controller_image_reference

            image = controller_image_reference()
        kwargs = {
            "image": image,
            "name": controller_name(self.cfg),
            "hostname": "controller",
            "detach": True,
            "labels": labels,
            # No secret in the environment: the CasC file and the secrets it
            # reads are put into the container before it starts.
            "environment": {
                "JAVA_OPTS": "-Djenkins.install.runSetupWizard=false",
                "CASC_JENKINS_CONFIG": casc.CASC_FILE,
            },
            "ports": {f"{CONTROLLER_PORT}/tcp": ("127.0.0.1", c.port)},
            "volumes": {volume_name(self.cfg): {"bind": CONTROLLER_HOME, "mode": "rw"}},
            "network": network_name(self.cfg),
            "restart_policy": {"Name": "unless-stopped"},
        }
        return kwargs

    def agent_kwargs(self, agent: Agent, image: str) -> dict[str, Any]:
        from jenkinsctl import agent_image

        labels = self._labels("agent", **{NODE_LABEL: agent.node, GROUP_LABEL: agent.group.name})
        kwargs = agent_image.agent_container_kwargs(
            image=image, name=agent.container, node=agent.node, group=agent.group, labels=labels,
            network=network_name(self.cfg), publish_ssh=0 if self.cfg.controller.external else None)
        if self._local_engine(agent.group):
            kwargs["volumes"][str(self._agent_keys_dir(agent.node))] = {"bind": agent_image.KEYS_DIR, "mode": "ro"}
        if self.cfg.controller.external and kwargs.get("ports"):
            # Published where the controller can reach it (127.0.0.1 when
            # the controller shares this host's network).
            kwargs["ports"] = {k: (self.agent_address(), v[1]) for k, v in kwargs["ports"].items()}
        return kwargs

    def _local_engine(self, group: AgentGroup) -> bool:
        """A unix-socket engine on this machine can bind-mount the state dir;
        a tcp:// or ssh:// engine gets the keys copied in before start."""
        host = group.docker_host or self.cfg.engine.host or self.environ.get("DOCKER_HOST") or "unix://"
        return host.startswith("unix://")

    def _agent_keys_dir(self, node: str) -> pathlib.Path:
        return pathlib.Path(self.cfg.state_dir).resolve() / "agents" / node

    def _write_agent_keys(self, node: str) -> None:
        """STATE/agents/NODE/: the agent's host key pair and the controller's
        public key as authorized_keys, mounted read-only at /run/jenkinsctl
        (the entrypoint installs them root-owned).  Files are rewritten only
        when their content differs; the directories are 0700, files 0600."""
        from jenkinsctl import agent_image

        host = self.keys.host_key(node)
        client = self.keys.client_key()
        files = {
            agent_image.HOST_KEY_FILE: host.private_path.read_bytes(),
            agent_image.HOST_KEY_FILE + ".pub": (host.public_line + "\n").encode(),
            agent_image.AUTHORIZED_KEYS_FILE: (client.public_line + "\n").encode(),
        }
        d = self._agent_keys_dir(node)
        d.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        d.mkdir(mode=0o700, exist_ok=True)
        for name, data in files.items():
            path = d / name
            if path.exists() and path.read_bytes() == data:
                continue
            tmp = d / f".{name}.{os.getpid()}.{threading.get_ident()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)

    def container_hash(self, kwargs: Mapping[str, Any], image_id: str | None, extra: Mapping[str, Any]) -> str:
        return _hash({"kwargs": {k: v for k, v in kwargs.items() if k != "labels"},
                      "labels": kwargs.get("labels"), "image_id": image_id, **extra})

    def node_spec(self, agent: Agent, host_key_line: str, *, host: str | None = None, port: int | None = None):
        from jenkinsctl import agent_image, casc
        from jenkinsctl.jenkins_api import HostKey, NodeSpec

        g = agent.group
        return NodeSpec(name=agent.node, host=host or agent.container, port=port or g.ssh_port,
                        credentials_id=credential_id(self.cfg), host_key=HostKey.parse(host_key_line),
                        remote_fs=agent_image.node_remote_fs(g, agent.node), labels=tuple(g.labels),
                        executors=g.executors, description=node_description(self.cfg, g),
                        launch_timeout=casc.SSH_LAUNCH_TIMEOUT, max_retries=casc.SSH_MAX_RETRIES,
                        retry_wait=casc.SSH_RETRY_WAIT)

    def password(self) -> str:
        from jenkinsctl.errors import ConfigError

        ref = self.cfg.controller.password
        value = ref.resolve(self.environ) if ref else None
        if not value:
            where = ref.describe() if ref else {}
            named = ", ".join(f"{k}: {v}" for k, v in where.items())
            raise ConfigError(f"the controller password is not set ({named})",
                              hint="export the variable or create the file that controller.password names")
        return value

    # --- inspection ------------------------------------------------------------------

    def _get_container(self, client, name: str):
        import docker.errors

        try:
            return client.containers.get(name)
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as exc:
            raise api_error(f"inspect container {name}", exc) from None

    def _owned(self, obj, kind: str = "container") -> bool:
        """Whether provisioning made ``obj``: ownership labels *and* a
        provisioning role, so an app that deploy made under the same project
        is never taken for one of ours."""
        labels = (obj.attrs.get("Config") or {}).get("Labels") if "Config" in obj.attrs else obj.attrs.get("Labels")
        return is_provisioned(labels, self.cfg.project, kind)

    def _provisioned(self, client, kind: str) -> list:
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

    def _collision(self, kind: str, name: str) -> ProvisionError:
        return ProvisionError(
            f"a {kind} named '{name}' exists and is not managed by jenkinsctl project '{self.cfg.project}'; "
            "refusing to touch it",
            hint=f"remove or rename it (docker {kind} rm {name}) if it is yours to drop, or choose another "
                 "project name in the config so the names do not collide", resource=name)

    def _find_network(self, client, name: str):
        return next((n for n in client.networks.list(names=[name]) if n.name == name), None)

    def check_collisions(self) -> None:
        """Refuse before changing anything if a name we need is taken by a
        container, network or volume that is not ours."""
        import docker.errors

        names = [] if self.cfg.controller.external else [(self.cfg.engine.host, controller_name(self.cfg))]
        names += [(a.group.docker_host or self.cfg.engine.host, a.container) for a in agents(self.cfg)]
        for host, name in names:
            c = self._get_container(self.docker(host), name)
            if c is not None and not self._owned(c):
                raise self._collision("container", name)
        for host in self.engines():
            client = self.docker(host)
            net = self._find_network(client, network_name(self.cfg))
            if net is not None and not self._owned(net, "network"):
                raise self._collision("network", network_name(self.cfg))
        if not self.cfg.controller.external:
            try:
                vol = self.docker().volumes.get(volume_name(self.cfg))
                if not self._owned(vol, "volume"):
                    raise self._collision("volume", volume_name(self.cfg))
            except docker.errors.NotFound:
                pass

    def _container_action(self, container, want_hash: str) -> str:
        if container is None:
            return "create"
        labels = container.attrs.get("Config", {}).get("Labels") or {}
        if labels.get(CONFIG_HASH_LABEL) != want_hash:
            return "update"
        state = container.attrs.get("State", {})
        if state.get("Running") and not state.get("Restarting"):
            return "unchanged"
        return "start"

    # --- plan ---------------------------------------------------------------------------

    def plan(self) -> list[Change]:
        """What apply would do.  Reads only: no image is built, no key made."""
        import docker.errors

        validate(self.cfg)
        check_library(self.cfg)
        changes: list[Change] = []
        self.check_collisions()
        for host in self.engines():
            net = self._find_network(self.docker(host), network_name(self.cfg))
            changes.append(Change("network", network_name(self.cfg), "unchanged" if net else "create",
                                  host or "default engine"))
        controller_up = False
        if not self.cfg.controller.external:
            try:
                self.docker().volumes.get(volume_name(self.cfg))
                changes.append(Change("volume", volume_name(self.cfg), "unchanged"))
            except docker.errors.NotFound:
                changes.append(Change("volume", volume_name(self.cfg), "create"))
            kwargs = self.controller_kwargs("")
            want = self._controller_hash(kwargs, self.password())
            current = self._get_container(self.docker(), controller_name(self.cfg))
            action = self._container_action(current, want)
            controller_up = action == "unchanged"
            changes.append(Change("container", controller_name(self.cfg), action, f"image {kwargs['image']}"))
        else:
            controller_up = True
        api = None
        if controller_up:
            api = self.jenkins()
            api.wait_ready(min(api.ready_timeout, 10))
        client_key = self.keys.existing_client_key()
        if api is not None and client_key is not None:
            action = api.plan_credential(credential_id(self.cfg), AGENT_USER, client_key.private_key())
        else:
            action = "create"
        changes.append(Change("credential", credential_id(self.cfg), action))
        images: dict[str, str] = {}
        for a in agents(self.cfg):
            key = a.group.name
            if key not in images:
                ref = self.agent_image_ref(a.group, build=False)
                images[key] = ref
                present = self._image_id(self.group_docker(a.group), ref) is not None
                if not a.group.image:
                    changes.append(Change("image", ref, "unchanged" if present else "build", f"group {key}"))
            ref = images[key]
            client = self.group_docker(a.group)
            host_key = self.keys.existing_host_key(a.node)
            current = self._get_container(client, a.container)
            if host_key is None or client_key is None:
                action = "create" if current is None else "update"
            else:
                kwargs = self.agent_kwargs(a, ref)
                want = self._agent_hash(kwargs, self._image_id(client, ref), host_key.public_line,
                                        client_key.public_line)
                action = self._container_action(current, want)
            changes.append(Change("container", a.container, action, f"image {ref}"))
            if api is None or host_key is None:
                changes.append(Change("node", a.node, "create"))
            else:
                host, port = self._node_address(a, current)
                node_action, diff = api.plan_node(self.node_spec(a, host_key.public_line, host=host, port=port))
                changes.append(Change("node", a.node, node_action, ", ".join(sorted(diff))))
        changes += self._orphans(api)
        return changes

    def _orphans(self, api) -> list[Change]:
        want = {a.container for a in agents(self.cfg)}
        if not self.cfg.controller.external:
            want.add(controller_name(self.cfg))
        out = []
        for host in self.engines():
            for c in self._provisioned(self.docker(host), "container"):
                if c.name not in want:
                    out.append(Change("container", c.name, "remove"))
        if api is not None:
            nodes = {a.node for a in agents(self.cfg)}
            for n in api.list_nodes():
                if is_our_node(self.cfg, n.description) and n.name not in nodes:
                    out.append(Change("node", n.name, "remove"))
        return out

    def _controller_hash(self, kwargs, password: str) -> str:
        files = {k: _secret_digest(v.decode()) for k, v in self._controller_files(password).items()}
        return self.container_hash(kwargs, self._image_id(self.docker(), kwargs["image"]), {"files": files})

    def _agent_hash(self, kwargs, image_id, host_key_line: str, client_key_line: str) -> str:
        return self.container_hash(kwargs, image_id, {"host_key": host_key_line, "authorized_key": client_key_line})

    def agent_address(self) -> str:
        """Where an external controller reaches the agents' published sshd."""
        if self._agent_address is None:
            self._agent_address = advertise_address(self.cfg.controller)
        return self._agent_address

    def _node_address(self, agent: Agent, container) -> tuple[str | None, int | None]:
        """External controllers reach agents through a port published on
        the advertise address; a controller on the project network by
        container name."""
        if not self.cfg.controller.external:
            return None, None
        address = self.agent_address()
        if container is None:
            return address, None
        ports = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
        bound = ports.get(f"{agent.group.ssh_port}/tcp") or []
        return address, int(bound[0]["HostPort"]) if bound else None

    # --- apply ------------------------------------------------------------------------

    def apply(self, *, wait: bool = True, wait_timeout: float = 180.0) -> dict[str, Any]:
        validate(self.cfg)
        check_library(self.cfg)
        done: list[Change] = []
        failed: list[dict[str, str]] = []
        with self.lock():
            self.check_collisions()
            try:
                if self.cfg.controller.external:
                    # An existing controller must answer before anything is created.
                    self.jenkins().wait_ready(starting=False)
                for host in self.engines():
                    self._ensure_network(host, done)
                images = self._agent_images(done, failed)
                todo = [a for a in agents(self.cfg) if a.group.name in images]
                for a in agents(self.cfg):
                    if a.group.name not in images:
                        failed.append({"resource": f"agent {a.node}", "error": "its image is not available"})
                with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(16, len(todo))),
                                                           thread_name_prefix="agent") as pool:
                    # Agent containers start while the controller starts.
                    containers = {pool.submit(self._agent_container, a, images[a.group.name]): a for a in todo}
                    try:
                        api = self._apply_base(done)
                    except BaseException:
                        self._collect(containers, done, failed)
                        raise
                    nodes: dict[Any, Agent] = {}
                    self._collect(containers, done, failed,
                                  then=lambda a, v: nodes.__setitem__(pool.submit(self._agent_node, api, a, v[0]), a))
                    self._collect(nodes, done, failed)
                self._remove_orphans(api, done, failed)
                online = self._wait_online(api, done, failed, wait_timeout) if wait else {}
            except Signalled as exc:
                changed = ", ".join(f"{c.action} {c.kind} {c.name}" for c in done if c.action != "unchanged")
                raise Interrupted(exc.signum, f"apply interrupted by {signal.Signals(exc.signum).name}; done: "
                                  f"{changed or 'nothing changed'}") from None
            except JenkinsctlError as exc:
                if not failed and all(c.action == "unchanged" for c in done):
                    raise  # nothing happened yet: the cause itself is the clearest error
                failed.append({"resource": "apply", "error": exc.message})
                raise self._partial(done, failed, exc) from None
        if failed:
            raise self._partial(done, failed, None)
        return {"project": self.cfg.project, "changes": [c.to_dict() for c in done],
                "changed": sum(1 for c in done if c.action != "unchanged"), "nodes": online}

    def _partial(self, done: list[Change], failed: list[dict[str, str]],
                 cause: JenkinsctlError | None) -> ProvisionError:
        changed = [f"{c.action} {c.kind} {c.name}" for c in done if c.action != "unchanged"]
        lines = [f"{f['resource']}: {f['error']}" for f in failed]
        msg = (f"apply did not finish: {len(failed)} problem(s)\n  " + "\n  ".join(lines)
               + ("\ndone: " + ", ".join(changed) if changed else "\ndone: nothing changed"))
        err = ProvisionError(msg, hint=(cause.hint if cause and cause.hint else
                                        "fix the cause and run apply again: it redoes only what is missing"),
                             done=[c.to_dict() for c in done], not_done=failed)
        return err

    def _record(self, done: list[Change], change: Change) -> None:
        done.append(change)
        if change.action != "unchanged":
            self._say(f"{change.action} {change.kind} {change.name}" + (f" ({change.detail})" if change.detail else ""))

    def _ensure_network(self, host, done) -> None:
        import docker.errors

        client = self.docker(host)
        name = network_name(self.cfg)
        if self._find_network(client, name) is not None:
            self._record(done, Change("network", name, "unchanged"))
            return
        labels = self._labels("network", **{CONFIG_HASH_LABEL: _hash({"driver": "bridge"})})
        try:
            client.networks.create(name, driver="bridge", labels=labels, check_duplicate=True)
        except docker.errors.APIError as exc:
            if "already exists" not in str(exc):
                raise api_error(f"create network {name}", exc) from None
        self._record(done, Change("network", name, "create"))

    def _apply_base(self, done: list[Change]):
        """Volume, controller container, a ready controller, the credential."""
        import docker.errors

        if not self.cfg.controller.external:
            client = self.docker()
            if not self.cfg.controller.image:
                # Before anything of the controller's exists: a failed build
                # leaves no volume or container behind.
                from jenkinsctl.controller_image import build_controller_image

                build_controller_image(client, log=self._say)
            vname = volume_name(self.cfg)
            try:
                client.volumes.get(vname)
                self._record(done, Change("volume", vname, "unchanged"))
            except docker.errors.NotFound:
                client.volumes.create(vname, labels=self._labels("controller-home"))
                self._record(done, Change("volume", vname, "create"))
            password = self.password()
            kwargs = self.controller_kwargs(password)
            if self._image_id(client, kwargs["image"]) is None:
                raise EngineError(f"controller image {kwargs['image']} is not on the engine",
                                  hint="build or pull it first; Docker Hub may be unreachable from here")
            want = self._controller_hash(kwargs, password)
            action = self._converge_container(client, kwargs, want, lambda c: self._put_controller_files(c, password))
            self._record(done, Change("container", kwargs["name"], action))
        api = self.jenkins()
        if not self.cfg.controller.external:
            api.wait_ready(starting=True)
        client_key = self.keys.client_key()
        action = api.ensure_credential(credential_id(self.cfg), AGENT_USER, client_key.private_key())
        self._record(done, Change("credential", credential_id(self.cfg), action.replace("created", "create")
                                  .replace("updated", "update")))
        return api

    def _controller_files(self, password: str) -> dict[str, bytes]:
        """Paths under /run -> content: the generated CasC and the two
        secrets it reads with ${readFile:}.  Files, not environment
        variables, so no secret shows in `docker inspect`."""
        from jenkinsctl import casc

        def rel(path: str) -> str:
            return path.removeprefix("/run/")

        return {
            rel(casc.CASC_FILE): casc.casc_for(self.cfg, self.keys).encode(),
            rel(casc.ADMIN_PASSWORD_FILE): password.encode(),
            rel(casc.AGENT_KEY_FILE): self.keys.client_key().private_key().encode(),
        }

    def _put_controller_files(self, container, password: str) -> None:
        import io
        import tarfile

        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            dirs = sorted({str(pathlib.PurePosixPath(p).parent) for p in self._controller_files(password)})
            for d in dirs:
                info = tarfile.TarInfo(d)
                info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o700, 1000, 1000
                tar.addfile(info)
            for name, data in self._controller_files(password).items():
                # Owned by uid 1000: the official image runs Jenkins as jenkins.
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.uid, info.gid = len(data), 0o400, 1000, 1000
                tar.addfile(info, io.BytesIO(data))
        if not container.put_archive("/run", buf.getvalue()):
            raise EngineError(f"could not put the configuration and secrets into {container.name}")

    def _converge_container(self, client, kwargs: dict[str, Any], want_hash: str,
                            before_start: Callable[[Any], None] | None = None) -> str:
        """Create, recreate or start one container; returns the action."""
        import docker.errors

        name = kwargs["name"]
        current = self._get_container(client, name)
        if current is not None and not self._owned(current):
            raise self._collision("container", name)
        action = self._container_action(current, want_hash)
        if action == "unchanged":
            return action
        try:
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
            stale = self._get_container(client, kw["name"])
            if stale is not None and self._owned(stale):
                stale.remove(force=True)
            container = client.containers.create(**kw)
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
        except docker.errors.ImageNotFound as exc:
            raise EngineError(f"image {kwargs['image']} for {name} is not on the engine: "
                              f"{getattr(exc, 'explanation', exc)}",
                              hint="build it, or fix the image name in the config") from None
        except docker.errors.APIError as exc:
            raise api_error(f"{action} container {name}", exc) from None
        return action

    def _wait_sshd(self, client, name: str, timeout: float = SSHD_WAIT) -> None:
        """Until the agent's sshd listens (its log says so, or it is healthy).
        A container that exits or restarts is a failure with its last log
        lines.  The log is polled often, the state about once a second, to
        keep the load on the engine low when many agents start at once."""
        deadline = self.clock() + timeout
        c = None
        checks = 0
        while True:
            if c is None or checks % 5 == 0:
                c = self._get_container(client, name)
                if c is None:
                    raise EngineError(f"agent container {name} disappeared")
                state = c.attrs.get("State", {})
                if not state.get("Running") or state.get("Restarting") or c.attrs.get("RestartCount", 0) > 0:
                    tail = _log_tail(c)
                    raise EngineError(f"agent container {name} did not stay up (status {state.get('Status')}, "
                                      f"exit code {state.get('ExitCode')})" + (f": {tail}" if tail else ""),
                                      hint="check the agent image (agents[].image) and `docker logs " + name + "`")
                if (state.get("Health") or {}).get("Status") == "healthy":
                    return
            checks += 1
            if "Server listening on" in c.logs(tail=20).decode("utf-8", "replace"):
                return
            if self.clock() >= deadline:
                self._say(f"{name}: sshd not confirmed after {timeout:g}s; registering anyway")
                return
            time.sleep(0.2)

    def _agent_images(self, done: list[Change], failed: list[dict[str, str]]) -> dict[str, str]:
        images: dict[str, str] = {}
        for g in self.cfg.agents:
            if g.count == 0:
                continue
            try:
                ref = self.agent_image_ref(g, build=True)
                images[g.name] = ref
                if not g.image:
                    self._record(done, Change("image", ref, "unchanged", f"group {g.name}"))
            except JenkinsctlError as exc:
                failed.append({"resource": f"image for group {g.name}", "error": exc.message})
        return images

    def _agent_container(self, agent: Agent, image: str) -> tuple[str, list[Change]]:
        """Converge one agent's container and wait for its sshd.  Needs no
        controller, so it runs while the controller starts."""
        from jenkinsctl import agent_image

        client = self.group_docker(agent.group)
        host_key = self.keys.host_key(agent.node)
        client_key = self.keys.client_key()
        kwargs = self.agent_kwargs(agent, image)
        want = self._agent_hash(kwargs, self._image_id(client, kwargs["image"]), host_key.public_line,
                                client_key.public_line)
        if self._local_engine(agent.group):
            self._write_agent_keys(agent.node)
            before_start = None
        else:
            def before_start(c):
                agent_image.install_agent_keys(c, self.keys, agent.node)
        action = self._converge_container(client, kwargs, want, before_start)
        if action != "unchanged":
            self._wait_sshd(client, agent.container)
        return action, [Change("container", agent.container, action)]

    def _agent_node(self, api, agent: Agent, container_action: str) -> list[Change]:
        client = self.group_docker(agent.group)
        host, port = self._node_address(agent, self._get_container(client, agent.container))
        spec = self.node_spec(agent, self.keys.host_key(agent.node).public_line, host=host, port=port)
        node_action = api.ensure_node(spec)
        out = [Change("node", agent.node, node_action.replace("created", "create").replace("updated", "update"))]
        if node_action == "unchanged" and container_action != "unchanged":
            # A new or restarted container under an unchanged node: the
            # controller may still hold the old container's connection.
            api.reconnect(agent.node)
            out.append(Change("node", agent.node, "relaunch"))
        elif node_action == "unchanged":
            node = api.get_node(agent.node)
            if node is not None and not node.online and not node.temporarily_offline:
                # The container was replaced or restarted under an unchanged
                # node: connect now rather than at the controller's next retry.
                api.relaunch(agent.node)
                out.append(Change("node", agent.node, "relaunch"))
        return out

    def _collect(self, futures: Mapping[Any, Agent], done: list[Change], failed: list[dict[str, str]],
                 then: Callable[[Agent, Any], None] | None = None) -> None:
        for fut in concurrent.futures.as_completed(futures):
            a = futures[fut]
            try:
                value = fut.result()
                changes = value[1] if isinstance(value, tuple) else value
                for ch in changes:
                    self._record(done, ch)
                if then is not None:
                    then(a, value)
            except JenkinsctlError as exc:
                failed.append({"resource": f"agent {a.node}", "error": exc.message})
            except Exception as exc:  # noqa: BLE001 - one agent's bug must not hide the others' results
                failed.append({"resource": f"agent {a.node}", "error": f"{type(exc).__name__}: {exc}"})

    def _remove_orphans(self, api, done, failed) -> None:
        import docker.errors

        for ch in self._orphans(api):
            try:
                if ch.kind == "container":
                    for host in self.engines():
                        c = self._get_container(self.docker(host), ch.name)
                        if c is not None and self._owned(c):
                            c.remove(force=True)
                elif ch.kind == "node":
                    api.delete_node(ch.name)
                self._record(done, ch)
            except (JenkinsctlError, docker.errors.APIError) as exc:
                failed.append({"resource": f"{ch.kind} {ch.name}", "error": getattr(exc, "message", str(exc))})

    def _wait_online(self, api, done, failed, timeout: float) -> dict[str, Any]:
        from jenkinsctl.jenkins_api import wait_all_online

        names = [a.node for a in agents(self.cfg)
                 if not any(f["resource"] == f"agent {a.node}" for f in failed)]
        if not names:
            return {}
        result = wait_all_online(api, names, timeout, poll=0.25)
        out = {}
        for name, value in result.items():
            if isinstance(value, Timeout):
                failed.append({"resource": f"node {name}", "error": value.message})
                out[name] = {"online": False, "reason": value.details.get("offline_reason", "")}
            else:
                out[name] = {"online": True}
        return out

    # --- down ---------------------------------------------------------------------------

    def down(self, *, volumes: bool = False) -> dict[str, Any]:
        import docker.errors

        removed: list[Change] = []
        problems: list[dict[str, str]] = []
        with self.lock():
            api = None
            controller = None if self.cfg.controller.external else \
                self._get_container(self.docker(), controller_name(self.cfg))
            reachable = self.cfg.controller.external or (
                controller is not None and self._owned(controller) and controller.attrs["State"].get("Running"))
            if reachable:
                try:
                    api = self.jenkins()
                    api.wait_ready(min(api.ready_timeout, 30))
                    for n in api.list_nodes():
                        if is_our_node(self.cfg, n.description):
                            api.delete_node(n.name)
                            removed.append(Change("node", n.name, "remove"))
                    if api.delete_credential(credential_id(self.cfg)):
                        removed.append(Change("credential", credential_id(self.cfg), "remove"))
                except JenkinsctlError as exc:
                    problems.append({"resource": "controller", "error": exc.message})
            for host in self.engines():
                client = self.docker(host)
                for c in self._provisioned(client, "container"):
                    try:
                        c.remove(force=True)
                        removed.append(Change("container", c.name, "remove"))
                    except docker.errors.NotFound:
                        pass
                    except docker.errors.APIError as exc:
                        problems.append({"resource": f"container {c.name}", "error": str(exc)})
                for n in self._provisioned(client, "network"):
                    try:
                        n.remove()
                        removed.append(Change("network", n.name, "remove"))
                    except docker.errors.APIError as exc:
                        problems.append({"resource": f"network {n.name}", "error": str(exc)})
                if volumes:
                    for v in self._provisioned(client, "volume"):
                        try:
                            v.remove(force=True)
                            removed.append(Change("volume", v.name, "remove"))
                        except docker.errors.APIError as exc:
                            problems.append({"resource": f"volume {v.name}", "error": str(exc)})
        for ch in removed:
            self._say(f"remove {ch.kind} {ch.name}")
        if problems:
            raise ProvisionError("down did not remove everything:\n  "
                                 + "\n  ".join(f"{p['resource']}: {p['error']}" for p in problems),
                                 hint="fix the cause and run down again", removed=[c.to_dict() for c in removed],
                                 not_done=problems)
        return {"project": self.cfg.project, "removed": [c.to_dict() for c in removed]}

    # --- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        import docker.errors

        result: dict[str, Any] = {"project": self.cfg.project, "controller": {}, "agents": []}
        ctl: dict[str, Any] = {"url": self.cfg.controller.url, "external": bool(self.cfg.controller.external)}
        engine_error = None
        containers: dict[str, Any] = {}
        try:
            for host in self.engines():
                for c in self._provisioned(self.docker(host), "container"):
                    containers[c.name] = c
        except (EngineError, docker.errors.DockerException) as exc:
            engine_error = getattr(exc, "message", str(exc))
            result["engine_error"] = engine_error
        if not self.cfg.controller.external:
            c = containers.get(controller_name(self.cfg))
            ctl["container"] = controller_name(self.cfg)
            ctl["state"] = "unknown" if engine_error else (_state(c) if c else "missing")
        api = None
        nodes: dict[str, Any] = {}
        try:
            api = self.jenkins()
            api.wait_ready(0.0)
            nodes = {n.name: n for n in api.list_nodes()}
            ctl["reachable"] = True
        except JenkinsctlError as exc:
            ctl["reachable"] = False
            ctl["error"] = exc.message
        result["controller"] = ctl
        for a in agents(self.cfg):
            c = containers.get(a.container)
            n = nodes.get(a.node)
            entry = {
                "node": a.node, "group": a.group.name, "container": a.container,
                "state": "unknown" if engine_error else (_state(c) if c else "missing"),
                "node_state": ("unknown" if api is None or not ctl["reachable"] else
                               "missing" if n is None else "online" if n.online else
                               "disabled" if n.temporarily_offline else "offline"),
                "offline_reason": n.offline_reason if n is not None and not n.online else "",
                "labels": list(n.labels) if n is not None else list(a.group.labels),
                "executors": n.executors if n is not None else a.group.executors,
            }
            result["agents"].append(entry)
        return result


def _state(container) -> str:
    state = container.attrs.get("State", {})
    status = state.get("Status", "unknown")
    health = (state.get("Health") or {}).get("Status")
    return f"{status} ({health})" if health and status == "running" else status


def _log_tail(container, lines: int = 5) -> str:
    try:
        text = container.logs(tail=lines).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - the logs are a bonus in an error message
        return ""
    return " | ".join(line for line in text.splitlines() if line.strip())[-800:]


def advertise_address(controller: Any, *, resolve: Callable[[str], str] | None = None,
                      route: Callable[[str, int], str] | None = None) -> str:
    """controller.agent_address, else 127.0.0.1 for a controller URL on this
    host, else this host's address on the route to the controller (the
    source address the kernel picks for it; no packet is sent)."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    from jenkinsctl.errors import ConfigError

    if controller.agent_address:
        return controller.agent_address
    parts = urlsplit(controller.external or "")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)

    def _resolve(name: str) -> str:
        return str(socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)[0][4][0])

    def _route(ip: str, p: int) -> str:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((ip, p))  # UDP connect: picks the route, sends nothing
            return s.getsockname()[0]

    try:
        ip = (resolve or _resolve)(host)
        if ipaddress.ip_address(ip).is_loopback:
            return "127.0.0.1"
        return (route or _route)(ip, port)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot tell which address of this host the controller at {controller.external} "
                          f"reaches agents on ({exc})",
                          hint="set controller.agent_address to this host's address as the controller sees it"
                          ) from None


def reregister(cfg: Config, keystore: Any, *, client_rotated: bool, nodes: list[str],
               environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """After ``jenkinsctl keys rotate``: converge what depends on the keys.

    No special path is needed: an agent container's config hash covers its
    host key and the authorized client key, a node's pinned key is compared
    by ensure_node, and the credential's description carries a digest of the
    client key.  So apply recreates exactly the rotated agents, reconfigures
    their nodes and updates the credential, and waits for them to come back.
    """
    del keystore, client_rotated, nodes  # apply derives all of it from the key files
    return Provisioner(cfg, environ=environ).apply()


# --- rendering helpers for the commands ------------------------------------------------------


def render_changes(changes: list[dict[str, str]]) -> str:
    if not changes:
        return "nothing to do"
    width = max(len(c["kind"]) for c in changes)
    lines = []
    for c in changes:
        mark = {"create": "+", "remove": "-", "update": "~", "start": ">", "build": "+", "relaunch": ">"}.get(
            c["action"], " ")
        detail = f"  ({c['detail']})" if c.get("detail") else ""
        lines.append(f"{mark} {c['action']:<9} {c['kind']:<{width}}  {c['name']}{detail}")
    summary: dict[str, int] = {}
    for c in changes:
        summary[c["action"]] = summary.get(c["action"], 0) + 1
    lines.append(", ".join(f"{n} {a}" for a, n in sorted(summary.items())))
    return "\n".join(lines)


def render_status(result: Mapping[str, Any]) -> str:
    ctl = result["controller"]
    head = f"controller  {ctl['url']}"
    if "state" in ctl:
        head += f"  container {ctl['container']}: {ctl['state']}"
    head += "  api: " + ("reachable" if ctl.get("reachable") else f"unreachable ({ctl.get('error', '')})")
    rows = [("NODE", "CONTAINER", "STATE", "NODE STATE", "LABELS", "EXECUTORS", "WHY OFFLINE")]
    for a in result["agents"]:
        rows.append((a["node"], a["container"], a["state"], a["node_state"], ",".join(a["labels"]),
                     str(a["executors"]), a["offline_reason"] or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [head]
    if result.get("engine_error"):
        lines.append(f"engine: {result['engine_error']}")
    for r in rows:
        lines.append("  ".join(f"{v:<{widths[i]}}" for i, v in enumerate(r[:-1])) + "  " + r[-1])
    if not result["agents"]:
        lines.append("(no agents configured)")
    return "\n".join(line.rstrip() for line in lines)
