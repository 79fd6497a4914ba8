"""plan, apply, down and status: the orchestration of a project's controller, agents, nodes and credential.

The desired state is computed from the Config alone: a project network, the
controller's home volume and container (unless ``controller.external``), one
container and one node per agent, and the agents' SSH credential.  Every
Docker resource carries the project's ownership labels and a config-hash
label (Compose's approach): a container whose hash matches is left alone, so
a second ``apply`` makes no mutating Docker or Jenkins call.  The Docker side
of that (engines, labels, hashes, create-or-replace, sshd waits) is
jenkinsctl.converge; this module decides what to converge, in which order,
and registers the result with Jenkins.

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
import io
import logging
import os
import pathlib
import signal
import tarfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from jenkinsctl import agent_image, casc, statedir
from jenkinsctl.agent_image import AGENT_USER
from jenkinsctl.config import AgentGroup, Config
from jenkinsctl.controller_image import build_controller_image, controller_image_reference
from jenkinsctl.converge import Engines, container_action, container_hash, container_state, secret_digest
from jenkinsctl.errors import ConfigError, EngineError, Interrupted, JenkinsctlError, ProvisionError, Timeout
from jenkinsctl.jenkins_api import HostKey, JenkinsAPI, NodeSpec, wait_all_online
from jenkinsctl.keys import KeyStore
from jenkinsctl.names import (
    agent_container_name,
    check_container_name,
    controller_name,
    credential_id,
    is_our_node,
    network_name,
    node_description,
    validate_node_name,
    volume_name,
)
from jenkinsctl.poll import Clock, Sleep, wait_for
from jenkinsctl.signals import Signalled

log = logging.getLogger("jenkinsctl.provision")

NODE_LABEL = "io.jenkinsctl.node"
GROUP_LABEL = "io.jenkinsctl.group"
CONTROLLER_HOME = "/var/jenkins_home"
CONTROLLER_PORT = 8080
LOCK_WAIT = 900.0


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
        casc.library_source(cfg)


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
                 say: Callable[[str], None] | None = None, clock: Clock = time.monotonic,
                 sleep: Sleep = time.sleep) -> None:
        validate(cfg)
        self.cfg = cfg
        self.environ = os.environ if environ is None else environ
        self._jenkins_factory = jenkins_factory
        self._say = say or log.info
        self._api = None
        self._agent_address: str | None = None
        self.clock = clock
        self.sleep = sleep
        self.engines = Engines(cfg, environ=self.environ, docker_factory=docker_factory, say=self._say,
                               clock=clock, sleep=sleep)
        self.keys = KeyStore(cfg.state_dir)

    # --- clients --------------------------------------------------------------

    def jenkins(self):
        if self._api is None:
            if self._jenkins_factory is not None:
                self._api = self._jenkins_factory(self.cfg)
            else:
                self._api = JenkinsAPI.from_config(self.cfg.controller, self.environ)
        return self._api

    # --- lock -------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, timeout: float = LOCK_WAIT) -> Iterator[None]:
        state = statedir.prepare(self.cfg.state_dir)
        path = state / "provision.lock"
        fd = statedir.open_lock(path)
        looks = 0

        def take() -> bool:
            nonlocal looks
            looks += 1
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if looks == 1:
                    self._say(f"waiting for another jenkinsctl run on project {self.cfg.project} (lock {path})")
                return False

        try:
            if not wait_for(take, bool, timeout=timeout, interval=0.2, clock=self.clock, sleep=self.sleep).done:
                raise Timeout(f"another jenkinsctl run held {path} for more than {timeout:g}s",
                              hint="wait for it to finish; if none runs, the lock is stale only if its "
                                   "process is gone, and then it is released already")
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # --- desired state ---------------------------------------------------------------

    def agent_image_ref(self, group: AgentGroup, *, build: bool) -> str:
        """The group's image, or the agent image: built when ``build`` (a
        content-hash tag, so an unchanged image is one inspect), else only
        its reference is computed (for ``plan``)."""
        if group.image:
            return group.image
        client = self.engines.group_docker(group)
        if build:
            return agent_image.build_agent_image(client, project=self.cfg.project, log=self._say)
        return agent_image.agent_image_reference()

    def controller_kwargs(self, password: str) -> dict[str, Any]:
        c = self.cfg.controller
        labels = self.engines.labels("controller")
        image = c.image or controller_image_reference()
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
        labels = self.engines.labels("agent", **{NODE_LABEL: agent.node, GROUP_LABEL: agent.group.name})
        kwargs = agent_image.agent_container_kwargs(
            image=image, name=agent.container, node=agent.node, group=agent.group, labels=labels,
            network=network_name(self.cfg), publish_ssh=0 if self.cfg.controller.external else None)
        if self.engines.is_local(agent.group):
            kwargs["volumes"][str(self._agent_keys_dir(agent.node))] = {"bind": agent_image.KEYS_DIR, "mode": "ro"}
        if self.cfg.controller.external and kwargs.get("ports"):
            # Published where the controller can reach it (127.0.0.1 when
            # the controller shares this host's network).
            kwargs["ports"] = {k: (self.agent_address(), v[1]) for k, v in kwargs["ports"].items()}
        return kwargs

    def _agent_keys_dir(self, node: str) -> pathlib.Path:
        return pathlib.Path(self.cfg.state_dir).resolve() / "agents" / node

    def _write_agent_keys(self, node: str) -> None:
        """STATE/agents/NODE/: the agent's host key pair and the controller's
        public key as authorized_keys, mounted read-only at /run/jenkinsctl
        (the entrypoint installs them root-owned).  Files are rewritten only
        when their content differs; the directories are 0700, files 0600."""
        files = agent_image.agent_key_files(self.keys, node)
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

    def node_spec(self, agent: Agent, host_key_line: str, *, host: str | None = None,
                  port: int | None = None) -> NodeSpec:
        g = agent.group
        return NodeSpec(name=agent.node, host=host or agent.container, port=port or g.ssh_port,
                        credentials_id=credential_id(self.cfg), host_key=HostKey.parse(host_key_line),
                        remote_fs=agent_image.node_remote_fs(g, agent.node), labels=tuple(g.labels),
                        executors=g.executors, description=node_description(self.cfg, g),
                        launch_timeout=casc.SSH_LAUNCH_TIMEOUT, max_retries=casc.SSH_MAX_RETRIES,
                        retry_wait=casc.SSH_RETRY_WAIT)

    def password(self) -> str:
        ref = self.cfg.controller.password
        value = ref.resolve(self.environ) if ref else None
        if not value:
            where = ref.describe() if ref else {}
            named = ", ".join(f"{k}: {v}" for k, v in where.items())
            raise ConfigError(f"the controller password is not set ({named})",
                              hint="export the variable or create the file that controller.password names")
        return value

    def check_collisions(self) -> None:
        """Refuse before changing anything if a name we need is taken by a
        container, network or volume that is not ours."""
        self.engines.check_collisions(
            [(a.group.docker_host or self.cfg.engine.host, a.container) for a in agents(self.cfg)])

    # --- plan ---------------------------------------------------------------------------

    def plan(self) -> list[Change]:
        """What apply would do.  Reads only: no image is built, no key made."""
        validate(self.cfg)
        check_library(self.cfg)
        changes: list[Change] = []
        self.check_collisions()
        for host in self.engines.hosts():
            net = self.engines.find_network(self.engines.docker(host), network_name(self.cfg))
            changes.append(Change("network", network_name(self.cfg), "unchanged" if net else "create",
                                  host or "default engine"))
        controller_up = False
        if not self.cfg.controller.external:
            present = self.engines.has_volume(self.engines.docker(), volume_name(self.cfg))
            changes.append(Change("volume", volume_name(self.cfg), "unchanged" if present else "create"))
            kwargs = self.controller_kwargs("")
            want = self._controller_hash(kwargs, self.password())
            current = self.engines.get_container(self.engines.docker(), controller_name(self.cfg))
            action = container_action(current, want)
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
                present = self.engines.image_id(self.engines.group_docker(a.group), ref) is not None
                if not a.group.image:
                    changes.append(Change("image", ref, "unchanged" if present else "build", f"group {key}"))
            ref = images[key]
            client = self.engines.group_docker(a.group)
            host_key = self.keys.existing_host_key(a.node)
            current = self.engines.get_container(client, a.container)
            if host_key is None or client_key is None:
                action = "create" if current is None else "update"
            else:
                kwargs = self.agent_kwargs(a, ref)
                want = self._agent_hash(kwargs, self.engines.image_id(client, ref), host_key.public_line,
                                        client_key.public_line)
                action = container_action(current, want)
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
        for name in self.engines.provisioned_containers():
            if name not in want:
                out.append(Change("container", name, "remove"))
        if api is not None:
            nodes = {a.node for a in agents(self.cfg)}
            for n in api.list_nodes():
                if is_our_node(self.cfg, n.description) and n.name not in nodes:
                    out.append(Change("node", n.name, "remove"))
        return out

    def _controller_hash(self, kwargs, password: str) -> str:
        files = {k: secret_digest(v.decode()) for k, v in self._controller_files(password).items()}
        return container_hash(kwargs, self.engines.image_id(self.engines.docker(), kwargs["image"]), {"files": files})

    def _agent_hash(self, kwargs, image_id, host_key_line: str, client_key_line: str) -> str:
        return container_hash(kwargs, image_id, {"host_key": host_key_line, "authorized_key": client_key_line})

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
                for host in self.engines.hosts():
                    self._record(done, Change("network", network_name(self.cfg), self.engines.ensure_network(host)))
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

    def _apply_base(self, done: list[Change]):
        """Volume, controller container, a ready controller, the credential."""
        if not self.cfg.controller.external:
            client = self.engines.docker()
            if not self.cfg.controller.image:
                # Before anything of the controller's exists: a failed build
                # leaves no volume or container behind.
                build_controller_image(client, log=self._say)
            vname = volume_name(self.cfg)
            self._record(done, Change("volume", vname, self.engines.ensure_volume(client, vname, "controller-home")))
            password = self.password()
            kwargs = self.controller_kwargs(password)
            if self.engines.image_id(client, kwargs["image"]) is None:
                raise EngineError(f"controller image {kwargs['image']} is not on the engine",
                                  hint="build or pull it first; Docker Hub may be unreachable from here")
            want = self._controller_hash(kwargs, password)
            action = self.engines.converge_container(client, kwargs, want,
                                                     lambda c: self._put_controller_files(c, password))
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
        def rel(path: str) -> str:
            return path.removeprefix("/run/")

        return {
            rel(casc.CASC_FILE): casc.casc_for(self.cfg, self.keys).encode(),
            rel(casc.ADMIN_PASSWORD_FILE): password.encode(),
            rel(casc.AGENT_KEY_FILE): self.keys.client_key().private_key().encode(),
        }

    def _put_controller_files(self, container, password: str) -> None:
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
        client = self.engines.group_docker(agent.group)
        host_key = self.keys.host_key(agent.node)
        client_key = self.keys.client_key()
        kwargs = self.agent_kwargs(agent, image)
        want = self._agent_hash(kwargs, self.engines.image_id(client, kwargs["image"]), host_key.public_line,
                                client_key.public_line)
        if self.engines.is_local(agent.group):
            self._write_agent_keys(agent.node)
            before_start = None
        else:
            def before_start(c):
                agent_image.install_agent_keys(c, self.keys, agent.node)
        action = self.engines.converge_container(client, kwargs, want, before_start)
        if action != "unchanged":
            self.engines.wait_sshd(client, agent.container)
        return action, [Change("container", agent.container, action)]

    def _agent_node(self, api, agent: Agent, container_action: str) -> list[Change]:
        client = self.engines.group_docker(agent.group)
        host, port = self._node_address(agent, self.engines.get_container(client, agent.container))
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
        for ch in self._orphans(api):
            try:
                if ch.kind == "container":
                    self.engines.remove_container(ch.name)
                elif ch.kind == "node":
                    api.delete_node(ch.name)
                self._record(done, ch)
            except JenkinsctlError as exc:
                failed.append({"resource": f"{ch.kind} {ch.name}", "error": exc.message})

    def _wait_online(self, api, done, failed, timeout: float) -> dict[str, Any]:
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
        removed: list[Change] = []
        problems: list[dict[str, str]] = []
        with self.lock():
            api = None
            controller = None if self.cfg.controller.external else \
                self.engines.get_container(self.engines.docker(), controller_name(self.cfg))
            reachable = self.cfg.controller.external or (
                controller is not None and self.engines.owned(controller) and controller.attrs["State"].get("Running"))
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
            gone, not_gone = self.engines.remove_all(volumes=volumes)
            removed += [Change(kind, name, "remove") for kind, name in gone]
            problems += not_gone
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
        result: dict[str, Any] = {"project": self.cfg.project, "controller": {}, "agents": []}
        ctl: dict[str, Any] = {"url": self.cfg.controller.url, "external": bool(self.cfg.controller.external)}
        engine_error = None
        containers: dict[str, Any] = {}
        try:
            containers = self.engines.provisioned_containers()
        except EngineError as exc:
            engine_error = exc.message
            result["engine_error"] = engine_error
        if not self.cfg.controller.external:
            c = containers.get(controller_name(self.cfg))
            ctl["container"] = controller_name(self.cfg)
            ctl["state"] = "unknown" if engine_error else (container_state(c) if c else "missing")
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
                "state": "unknown" if engine_error else (container_state(c) if c else "missing"),
                "node_state": ("unknown" if api is None or not ctl["reachable"] else
                               "missing" if n is None else "online" if n.online else
                               "disabled" if n.temporarily_offline else "offline"),
                "offline_reason": n.offline_reason if n is not None and not n.online else "",
                "labels": list(n.labels) if n is not None else list(a.group.labels),
                "executors": n.executors if n is not None else a.group.executors,
            }
            result["agents"].append(entry)
        return result


def advertise_address(controller: Any, *, resolve: Callable[[str], str] | None = None,
                      route: Callable[[str, int], str] | None = None) -> str:
    """controller.agent_address, else 127.0.0.1 for a controller URL on this
    host, else this host's address on the route to the controller (the
    source address the kernel picks for it; no packet is sent)."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

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


def reregister(cfg: Config, *, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """After ``jenkinsctl keys rotate``: converge what depends on the keys.

    No special path is needed: an agent container's config hash covers its
    host key and the authorized client key, a node's pinned key is compared
    by ensure_node, and the credential's description carries a digest of the
    client key.  So apply recreates exactly the rotated agents, reconfigures
    their nodes and updates the credential, and waits for them to come back.
    """
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
