"""The ``stack`` strategy: redeploy a Swarm stack from its compose file with
one service's image pinned to the digest that was just pushed.

``docker stack deploy`` is a client-side feature of the docker CLI (there is
no engine API for it), so this strategy runs the CLI:

    docker stack deploy --with-registry-auth -c COMPOSE -c PIN NAME

PIN is a temporary compose file that sets only ``services.SERVICE.image`` to
``REPO@sha256:...`` (plus jenkinsctl's ownership labels on the service).
Layering it over the user's file, instead of rewriting a copy of it, keeps
everything else byte for byte: relative paths, ``${VAR}`` interpolation,
anchors and comments.  Services whose spec does not change (the database in
examples/pyapp) are left as they are by Swarm: same task, same container.

Registry credentials reach the nodes through ``--with-registry-auth``: the
CLI reads them from a per-run ``DOCKER_CONFIG`` directory filled by
``docker login --password-stdin`` (never argv) and removed afterwards, on
SIGTERM and SIGINT too (see secrets.private_tempdir).

The outcome comes from the service's ``UpdateStatus``: ``completed``,
``rollback_completed`` (the new tasks failed their health check and Swarm
went back: a DeployError carrying the health output), or ``paused``.  A
service the deploy creates has no update status; it is done when a task of
the new digest runs (Swarm reports a task running only once its HEALTHCHECK
passes).  The target's ``timeout`` bounds the whole deploy or rollback: the
docker CLI calls and every wait get what is left of it.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import subprocess
import time
from typing import Any, Callable, Mapping

from jenkinsctl.deploy import IMAGE_LABEL, DeployOutcome, ImageRef, deploy_deadline, out_of_time
from jenkinsctl.engine import docker_host, engine_cli, engine_errors, log_tail, version_refusal
from jenkinsctl.errors import ConfigError, DeployError, EngineError, EngineNotFound, RegistryError, Timeout
from jenkinsctl.poll import Deadline, wait_for
from jenkinsctl.secrets import private_tempdir

log = logging.getLogger("jenkinsctl.deploy.stack")

# The least a clean-up CLI call (docker logout) gets even when the deploy's
# time is up: it only removes what the login wrote.
CLEANUP_SECONDS = 5.0

COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
SUCCESS_STATES = ("completed",)
ROLLBACK_STATES = ("rollback_completed",)
PAUSED_STATES = ("paused", "rollback_paused")

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class StackStrategy:
    """Deploy a compose file as a Swarm stack, one service pinned by digest."""

    name = "stack"

    def __init__(self, client, target, *, labels: Mapping[str, str] | None = None, auth: dict | None = None,
                 environ: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, runner: Runner = subprocess.run,
                 docker_cli: str | None = None, cwd: str | None = None) -> None:
        self.client = client
        # docker-py ships no types; None only for dry construction in tests.
        self.api: Any = client.api if client is not None else None
        self.target = target
        self.stack = target.target
        self.labels = dict(labels or {})
        self.auth = auth
        self.environ = dict(os.environ if environ is None else environ)
        self.clock = clock
        self.sleep = sleep
        self.runner = runner
        self.cwd = pathlib.Path(cwd or os.getcwd())
        self._docker_cli = docker_cli
        self.poll = 0.5
        self._deadline: Deadline | None = None
        self._seen: dict[str, list[str]] = {}  # task id -> health output lines (see observe)

    @property
    def docker_cli(self) -> str:
        """The CLI for ``docker stack``: the first on PATH that the engine
        accepts (one whose API is below the engine's MinAPIVersion would be
        refused, as Docker 29 refuses Debian 12's 20.10), chosen on first use."""
        if self._docker_cli is None:
            self._docker_cli = engine_cli(self.client, self.environ, host=self._engine_host())
        return self._docker_cli

    def _engine_host(self) -> str | None:
        if self.client is None:
            return self.environ.get("DOCKER_HOST")
        return docker_host(self.client)

    # --- the interface ----------------------------------------------------------

    def deploy(self, image: ImageRef) -> DeployOutcome:
        self._deadline = deploy_deadline(self.target, self.clock)
        return self._deploy(image)

    def _deploy(self, image: ImageRef) -> DeployOutcome:
        start = self.clock()
        compose = self.compose_file()
        doc = load_compose(compose)
        service = self.service_name(doc, image)
        full = f"{self.stack}_{service}"
        self._require_manager()
        before = self._service(full)
        previous = _spec_image(before) if before else None
        pin = pin_document(doc, service, image.pinned, {**self.labels, IMAGE_LABEL: image.pinned})
        self._stack_deploy(compose, pin, image)
        details: dict[str, Any] = {"service": full, "compose": str(compose)}
        if before is None:
            outcome = "created"
            details.update(self._wait_created(full, image))
        elif _digest_of(previous) == image.digest and _spec_image(self._service(full) or {}) == previous:
            outcome = "unchanged"
            details.update(self._wait_running(full, image, what="the running version"))
        else:
            outcome = "deployed"
            details.update(self._wait_update(full, before, image))
        return DeployOutcome(strategy=self.name, target=self.stack, outcome=outcome, image=image.pinned,
                             digest=image.digest, previous={"image": previous} if previous else None,
                             seconds=round(self.clock() - start, 3), details=details)

    def rollback(self, version: str | None = None) -> DeployOutcome:
        """Swarm's own rollback to the service's previous spec; with
        ``version`` (a digest or REPO@DIGEST), a deploy of that digest."""
        start = self.clock()
        self._deadline = deploy_deadline(self.target, self.clock)
        compose = self.compose_file()
        doc = load_compose(compose)
        service = self.service_name(doc, None)
        full = f"{self.stack}_{service}"
        self._require_manager()
        svc = self._service(full)
        if svc is None:
            raise DeployError(f"stack {self.stack}: service {full} does not exist, so there is nothing to roll back",
                              hint=f"deploy it first: jenkinsctl deploy --to stack:{self.stack} --image REF")
        current = _spec_image(svc)
        if version:
            repo, _, digest = version.rpartition("@") if "@" in version else (current.split("@")[0], "", version)
            repo = repo or current.split("@")[0].rsplit(":", 1)[0]
            out = self._deploy(ImageRef(repo, digest))   # within the rollback's own deadline
            out.outcome = "rolled-back"
            return out
        if not svc.get("PreviousSpec"):
            raise DeployError(f"stack {self.stack}: service {full} has no previous version to roll back to",
                              hint="Swarm keeps one previous spec per service; deploy a digest with --image instead")
        self._run([self.docker_cli, "service", "rollback", "--detach", full], what=f"docker service rollback {full}")
        svc2 = self._wait_state(full, svc, ROLLBACK_STATES + PAUSED_STATES)
        state = (svc2.get("UpdateStatus") or {}).get("State")
        now = _spec_image(svc2)
        if state not in ROLLBACK_STATES:
            raise DeployError(f"stack {self.stack}: the rollback of {full} stopped in state '{state}': "
                              f"{(svc2.get('UpdateStatus') or {}).get('Message', '')}",
                              hint=f"inspect it with: docker service ps --no-trunc {full}")
        return DeployOutcome(strategy=self.name, target=self.stack, outcome="rolled-back", image=now,
                             digest=_digest_of(now), previous={"image": current},
                             seconds=round(self.clock() - start, 3), details={"service": full, "state": state})

    # --- the compose file -------------------------------------------------------

    def compose_file(self) -> pathlib.Path:
        if self.target.compose:
            path = pathlib.Path(self.target.compose)
            path = path if path.is_absolute() else self.cwd / path
            if not path.is_file():
                raise ConfigError(f"stack {self.stack}: compose file {path} does not exist",
                                  hint="set the deploy target's compose: to the stack's compose file")
            return path
        for name in COMPOSE_NAMES:
            if (self.cwd / name).is_file():
                return self.cwd / name
        raise ConfigError(f"stack {self.stack}: no compose file given and none of {', '.join(COMPOSE_NAMES)} "
                          f"is in {self.cwd}",
                          hint="run from the directory that holds compose.yaml (dir('...') in a pipeline), or "
                               "configure a deploy target with strategy: stack, compose: PATH and service: NAME")

    def service_name(self, doc: Mapping[str, Any], image: ImageRef | None) -> str:
        """The configured service; else the one named like the image's last
        path component (…/pyapp/web -> web); else the only service."""
        services = list((doc.get("services") or {}).keys())
        if self.target.service:
            if self.target.service not in services:
                raise ConfigError(f"stack {self.stack}: the compose file has no service '{self.target.service}'",
                                  hint=f"its services: {', '.join(services) or 'none'}")
            return self.target.service
        if image is not None:
            last = image.repository.rsplit("/", 1)[-1]
            if last in services:
                return last
        if len(services) == 1:
            return services[0]
        raise ConfigError(f"stack {self.stack}: cannot tell which service runs the image "
                          f"({', '.join(services)})",
                          hint="configure a deploy target with strategy: stack and service: NAME, or name the "
                               "service like the image's last path component")

    # --- docker stack deploy ----------------------------------------------------

    def _stack_deploy(self, compose: pathlib.Path, pin: Mapping[str, Any], image: ImageRef) -> None:
        # The login below writes user:password into config_dir: private, and
        # removed even when the build is aborted with SIGTERM.
        with private_tempdir("jenkinsctl-stack-", self.environ) as tmp:
            config_dir = os.path.join(tmp, "docker-config")
            os.mkdir(config_dir, 0o700)
            pin_path = os.path.join(tmp, "pin.yaml")
            with open(pin_path, "w", encoding="utf-8") as fh:
                json.dump(pin, fh, indent=2)  # JSON is YAML, and needs no quoting rules
            env = dict(self.environ, DOCKER_CONFIG=config_dir)
            host = self._engine_host()
            if host:  # the CLI talks to the engine the client does
                env["DOCKER_HOST"] = host
                env.pop("DOCKER_CONTEXT", None)
            registry = None
            if self.auth and self.auth.get("username"):
                registry = self.auth.get("serveraddress") or _registry_of(image.repository)
                self._run([self.docker_cli, "login", "--username", self.auth["username"], "--password-stdin",
                           registry], what=f"docker login {registry}", env=env,
                          stdin=self.auth.get("password") or "", error=RegistryError)
            try:
                out = self._run([self.docker_cli, "stack", "deploy", "--with-registry-auth",
                                 "-c", str(compose), "-c", pin_path, self.stack],
                                what=f"docker stack deploy {self.stack}", env=env, cwd=str(compose.parent))
                for line in out.splitlines():
                    log.info("%s", line)
            finally:
                if registry:
                    self._run([self.docker_cli, "logout", registry], what="docker logout", env=env, check=False,
                              cleanup=True)

    def _run(self, argv: list[str], *, what: str, env: Mapping[str, str] | None = None, stdin: str | None = None,
             cwd: str | None = None, check: bool = True, error=DeployError, cleanup: bool = False) -> str:
        """Run one docker CLI call within what is left of the deploy's
        timeout (a clean-up call gets at least CLEANUP_SECONDS)."""
        deadline = self._bound()
        left = deadline.remaining()
        if cleanup:
            left = max(left, CLEANUP_SECONDS)
        elif left <= 0:
            raise out_of_time(f"stack {self.stack}", deadline, f"{what} had not started yet")
        try:
            proc = self.runner(argv, input=stdin, capture_output=True, text=True, env=dict(env or self.environ),
                               cwd=cwd, timeout=left)
        except FileNotFoundError:
            raise DeployError(f"{what}: the docker CLI ({self.docker_cli}) is not installed",
                              hint="the stack strategy needs the docker CLI: docker stack deploy has no engine API"
                              ) from None
        except subprocess.TimeoutExpired:
            if cleanup:
                log.warning("%s: no answer within %gs", what, left)
                return ""
            raise out_of_time(f"stack {self.stack}", deadline, f"{what} had not finished (stopped after {left:g}s)",
                              hint=f"'docker stack ps {self.stack}' shows what the stack got so far") from None
        if check and proc.returncode != 0:
            text = (proc.stderr or proc.stdout or "").strip()
            refused = version_refusal(text, client=f"the docker CLI {argv[0]}", host=self._engine_host())
            if refused is not None:  # a newer CLI fixes it, not the compose file
                raise refused
            raise error(f"{what} failed (exit {proc.returncode}): {text}",
                        hint=_hint_for(text, self.stack))
        return proc.stdout or ""

    # --- waiting ----------------------------------------------------------------

    def _require_manager(self) -> None:
        try:
            info = self.api.info()
        except Exception as exc:  # noqa: BLE001 - docker-py raises several kinds
            raise EngineError(f"stack {self.stack}: cannot ask the engine for its Swarm state: {exc}") from None
        swarm = info.get("Swarm") or {}
        if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
            raise DeployError(f"stack {self.stack}: this engine is not a Swarm manager "
                              f"(swarm state: {swarm.get('LocalNodeState') or 'inactive'})",
                              hint="run 'docker swarm init' on it (add --advertise-addr ADDR on a host with several "
                                   "addresses), or point DOCKER_HOST at a manager")

    def _service(self, name: str) -> dict[str, Any] | None:
        try:
            with engine_errors(f"inspect service {name}"):
                return self.api.inspect_service(name)
        except EngineNotFound:
            return None

    def _tasks(self, name: str) -> list[dict[str, Any]]:
        return self.api.tasks(filters={"service": name})

    def others(self, name: str) -> str:
        """One line per other service of the stack: a web task that cannot
        get healthy is often waiting for its database."""
        out = []
        try:
            with engine_errors(f"list the services of stack {self.stack}"):
                services = self.api.services(filters={"label": f"com.docker.stack.namespace={self.stack}"})
                for svc in services:
                    sname = svc["Spec"]["Name"]
                    if sname == name:
                        continue
                    tasks = self.api.tasks(filters={"service": sname, "desired-state": "running"})
                    states = sorted({(t.get("Status") or {}).get("State", "?") for t in tasks}) or ["no tasks"]
                    errs = [(t.get("Status") or {}).get("Err") for t in self.api.tasks(filters={"service": sname})]
                    err = next((e for e in errs if e), "")
                    out.append(f"  {sname}: {', '.join(states)}" + (f" (last error: {err})" if err else ""))
        except EngineError:
            return ""
        return ("other services of the stack:\n" + "\n".join(out)) if out else ""

    def _bound(self) -> Deadline:
        if self._deadline is None:   # a step called on its own, as tests do
            self._deadline = deploy_deadline(self.target, self.clock)
        return self._deadline

    def _until(self, look: Callable[[], Any], done: Callable[[Any], bool], name: str, digest: str | None):
        """Look until ``done`` or the deploy's deadline, remembering the
        health output of ``digest``'s tasks between looks (see observe)."""
        def watched() -> Any:
            seen = look()
            if digest and not done(seen):
                self.observe(name, digest)
            return seen

        return wait_for(watched, done, timeout=self._bound().remaining(), interval=self.poll, clock=self.clock,
                        sleep=self.sleep)

    def _deadline_error(self, name: str, image: ImageRef, waited: str) -> Timeout:
        health = "\n".join(x for x in (self.health_output(name, image.digest), self.others(name)) if x)
        return out_of_time(f"stack {self.stack}", self._bound(),
                           f"{name} had not converged on {image.pinned} ({waited})"
                           + (f"\n{health}" if health else ""),
                           hint=f"see 'docker service ps --no-trunc {name}'", service=name)

    def _wait_created(self, name: str, image: ImageRef) -> dict[str, Any]:
        return self._wait_running(name, image, what="the new service")

    def _wait_running(self, name: str, image: ImageRef, *, what: str) -> dict[str, Any]:
        """Until every wanted replica runs the digest (running = healthy
        when the image has a HEALTHCHECK)."""
        def look() -> tuple[int, int]:
            svc = self._service(name)
            if svc is None:
                raise DeployError(f"stack {self.stack}: service {name} disappeared while deploying")
            want = ((svc["Spec"].get("Mode") or {}).get("Replicated") or {}).get("Replicas", 1)
            running = [t for t in self._tasks(name) if t.get("DesiredState") == "running"
                       and (t.get("Status") or {}).get("State") == "running"
                       and _digest_of(_task_image(t)) == image.digest]
            return len(running), want

        got = self._until(look, lambda seen: seen[0] >= seen[1], name, image.digest)
        running, want = got.last
        if not got.done:
            raise self._deadline_error(name, image, f"{running}/{want} tasks of {what} running")
        return {"state": "running", "replicas": running}

    def _wait_state(self, name: str, before: Mapping[str, Any], states: tuple[str, ...]) -> dict[str, Any]:
        """Until the service's update (the one after ``before``) is in
        ``states``."""
        old = before.get("UpdateStatus") or {}

        def look() -> tuple[dict[str, Any], bool]:
            svc = self._service(name)
            if svc is None:
                raise DeployError(f"stack {self.stack}: service {name} disappeared while deploying")
            us = svc.get("UpdateStatus") or {}
            fresh = us and (us.get("StartedAt") != old.get("StartedAt") or us.get("State") != old.get("State"))
            return svc, bool(fresh and us.get("State") in states)

        got = self._until(look, lambda seen: seen[1], name, None)
        svc = got.last[0]
        if not got.done:
            state = (svc.get("UpdateStatus") or {}).get("State") or "updating"
            raise out_of_time(f"stack {self.stack}", self._bound(), f"{name} was still '{state}'",
                              hint=f"see 'docker service ps --no-trunc {name}'", service=name)
        return svc

    def _wait_update(self, name: str, before: Mapping[str, Any], image: ImageRef) -> dict[str, Any]:
        old = before.get("UpdateStatus") or {}
        old_index = (before.get("Version") or {}).get("Index", 0)

        def look() -> tuple[str | None, dict[str, Any] | None]:
            """(the update's state, the outcome once it succeeded); a
            rollback or a pause ends the wait with an error."""
            svc = self._service(name)
            if svc is None:
                raise DeployError(f"stack {self.stack}: service {name} disappeared while deploying")
            us = svc.get("UpdateStatus") or {}
            newer = (svc.get("Version") or {}).get("Index", 0) > old_index
            fresh = newer and us and (us.get("StartedAt") != old.get("StartedAt")
                                      or us.get("State") != old.get("State"))
            state = us.get("State")
            if fresh and state in SUCCESS_STATES:
                # completed: the new tasks passed their health checks and the monitor window.
                return state, {"state": state, "message": us.get("Message", "")}
            if fresh and state in ROLLBACK_STATES:
                health = self.health_output(name, image.digest)
                back = _spec_image(svc)
                serving = "which is serving again"
                back_digest = _digest_of(back)
                if back and back_digest:
                    try:
                        self._wait_running(name, ImageRef(back.rsplit("@", 1)[0], back_digest),
                                           what="the previous version")
                    except Timeout:
                        serving = "but it is not running yet"
                raise DeployError(
                    f"stack {self.stack}: {name} rolled back: the new version {image.pinned} failed, and Swarm "
                    f"went back to {back}, {serving}.\n"
                    f"update status: {us.get('Message', '')}\n{health}",
                    hint="the previous version is serving. Fix the image (see the health output above) and "
                         "ship again", outcome="rolled-back", service=name, state=state, health=health)
            if fresh and state in PAUSED_STATES:
                health = self.health_output(name, image.digest)
                what = ("the rollback paused half-way" if state == "rollback_paused" else "the update paused")
                raise DeployError(
                    f"stack {self.stack}: {name}: the new version {image.pinned} failed and {what}: "
                    f"{us.get('Message', '')}\n{health}",
                    hint=f"inspect it with 'docker service ps --no-trunc {name}', then run 'docker service rollback "
                         f"{name}' or deploy a fixed image. In the compose file, update_config.failure_action: "
                         "rollback goes back automatically, and rollback_config.failure_action: continue lets the "
                         "rollback finish", outcome="paused", service=name,
                    state=state, health=health)
            return state, None

        got = self._until(look, lambda seen: seen[1] is not None, name, image.digest)
        state, details = got.last
        if details is None:
            raise self._deadline_error(name, image, f"update state '{state or 'none'}'")
        return details

    # --- what went wrong --------------------------------------------------------

    def observe(self, name: str, digest: str) -> None:
        """Remember the health probes and log lines of ``digest``'s tasks
        while their containers exist: Swarm removes a failed task's
        container during the rollback, and with it the reason."""
        try:
            with engine_errors(f"list the tasks of service {name}"):
                tasks = [t for t in self._tasks(name) if _digest_of(_task_image(t)) == digest]
        except EngineError:
            return
        for t in tasks:
            cid = ((t.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
            if not cid:
                continue
            try:
                with engine_errors(f"inspect container {cid}"):
                    attrs = self.api.inspect_container(cid)
            except EngineError:
                continue
            health = (attrs.get("State") or {}).get("Health") or {}
            probes = health.get("Log") or []
            if not any(p.get("ExitCode") for p in probes) and attrs["State"].get("Running"):
                continue  # nothing has gone wrong in this one (yet)
            lines = []
            if probes:
                lines.append(f"  health status {health.get('Status')}; last probes:")
                for p in probes[-3:]:
                    lines.append(f"    exit {p.get('ExitCode')}: {(p.get('Output') or '').strip()}")
            logs = log_tail(self.api, cid)
            if logs:
                lines.append("  last log lines:")
                lines.extend("    " + line for line in logs.splitlines())
            self._seen[t["ID"]] = lines

    def health_output(self, name: str, digest: str) -> str:
        """The failing tasks of ``digest``: Swarm's error and, where the
        container is (or was, see observe) on this engine, its last health
        probes and log lines."""
        self.observe(name, digest)
        try:
            with engine_errors(f"list the tasks of service {name}"):
                tasks = [t for t in self._tasks(name) if _digest_of(_task_image(t)) == digest]
        except EngineError:
            return ""
        # The tasks that failed first, newest first: they carry the reason.
        tasks.sort(key=lambda t: t.get("CreatedAt", ""), reverse=True)
        tasks.sort(key=lambda t: (t["ID"] not in self._seen,
                                  (t.get("Status") or {}).get("State") not in ("failed", "rejected")))
        if any(t["ID"] in self._seen for t in tasks):
            # Tasks that never ran (pending, rejected for a busy port) add only noise.
            tasks = [t for t in tasks if t["ID"] in self._seen]
        lines: list[str] = []
        for t in tasks[:2]:
            st = t.get("Status") or {}
            lines.append(f"task {t['ID'][:12]}: {st.get('State')}: {st.get('Err') or st.get('Message') or ''}".rstrip())
            lines.extend(self._seen.get(t["ID"]) or ["  (no health output: the container ran on another node, "
                                                     "or was removed before it could be read)"])
        return ("health output:\n" + "\n".join(lines)) if lines else ""


# --- helpers --------------------------------------------------------------------


def load_compose(path: pathlib.Path) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read compose file {path}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict) or not doc["services"]:
        raise ConfigError(f"compose file {path} has no services:", hint="a stack's compose file lists its services")
    return doc


def pin_document(doc: Mapping[str, Any], service: str, pinned: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """The compose file layered over the user's: this service's image by
    digest and jenkinsctl's labels on the service (not its containers, so
    they cause no task restart)."""
    pin: dict[str, Any] = {}
    if "version" in doc:
        pin["version"] = str(doc["version"])
    pin["services"] = {service: {"image": pinned, "deploy": {"labels": {k: str(v) for k, v in labels.items()}}}}
    return pin


def _registry_of(repository: str) -> str:
    first, sep, _ = repository.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "https://index.docker.io/v1/"


def _spec_image(svc: Mapping[str, Any]) -> str:
    return ((svc.get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec", {}).get("Image", "")


def _task_image(task: Mapping[str, Any]) -> str:
    return ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Image", "")


def _digest_of(ref: str | None) -> str | None:
    if not ref or "@" not in ref:
        return None
    return ref.rsplit("@", 1)[1]


def _hint_for(text: str, stack: str) -> str:
    if "not a swarm manager" in text or "This node is not a swarm manager" in text:
        return "run 'docker swarm init' on the engine, or point DOCKER_HOST at a manager"
    if "secret not found" in text or "secret" in text and "not found" in text:
        return "create the stack's external secrets first (docker secret create NAME -)"
    if "unauthorized" in text or "denied" in text:
        return "check the registry credentials (JENKINSCTL_REGISTRY_USERNAME / _PASSWORD)"
    return f"run the same 'docker stack deploy' by hand to see more; 'docker stack ps {stack}' shows the tasks"
