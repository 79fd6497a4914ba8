"""The ``swarm`` strategy: update a Swarm service to a new digest.

Swarm's own defaults are the wrong ones for a redeploy (failure_action
pause, order stop-first), so every update sets its update and rollback
config explicitly: parallelism 1, a delay, a monitor window,
``failure_action=rollback`` and ``order=start-first`` unless the service
publishes ports in ``mode=host`` (two tasks on one node cannot bind the same
host port; the ingress mesh, where start-first works, is not always
available).  Registry auth goes along in X-Registry-Auth so every node can
pull (``docker service update --with-registry-auth``).  Then it waits for
UpdateStatus to reach ``completed`` (converged) or ``rollback_completed``
(Swarm rolled back: a DeployError naming the failing tasks' errors), within
the target's timeout, which bounds the whole deploy or rollback: each wait
gets what is left of it.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from typing import Any, Callable, Mapping

from jenkinsctl.config import SecretRef
from jenkinsctl.deploy import (
    DEPLOY_LABEL,
    IMAGE_LABEL,
    DeployOutcome,
    ImageRef,
    deploy_deadline,
    out_of_time,
    port_bindings,
)
from jenkinsctl.deploy import parse_time as _ts
from jenkinsctl.deploy.health import health_log
from jenkinsctl.engine import engine_errors, log_tail, post_spec
from jenkinsctl.errors import DeployError, EngineError
from jenkinsctl.poll import Deadline, wait_for

log = logging.getLogger("jenkinsctl.deploy")

SECOND = 1_000_000_000


class SwarmStrategy:
    name = "swarm"

    def __init__(self, client, target, *, labels: Mapping[str, str], auth: dict | None = None,
                 environ: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, parallelism: int = 1, delay: float = 1.0,
                 monitor: float = 5.0, poll: float = 0.5) -> None:
        self.client = client
        # docker-py ships no types; None only for dry construction in tests.
        self.api: Any = client.api if client is not None else None
        self.target = target
        self.service = target.target
        self.labels = dict(labels)
        self.auth = auth
        self.environ = os.environ if environ is None else environ
        self.clock = clock
        self.sleep = sleep
        self.parallelism = parallelism
        self.delay = delay
        self.monitor = monitor
        self.poll = poll
        self._deadline: Deadline | None = None

    # --- public ---------------------------------------------------------------

    def deploy(self, image: ImageRef) -> DeployOutcome:
        start = self.clock()
        self._deadline = deploy_deadline(self.target, self.clock)
        self._require_manager()
        with engine_errors(f"update service {self.service}"):
            svc = self._find()
            if svc is None:
                details = self._create(image)
                return DeployOutcome(self.name, self.service, "created", image.pinned, image.digest, None,
                                     round(self.clock() - start, 3), details)
            spec = svc["Spec"]
            current = spec["TaskTemplate"]["ContainerSpec"]["Image"]
            previous = {"image": current, "digest": current.partition("@")[2] or None}
            if current == image.pinned and (svc.get("UpdateStatus") or {}).get("State") != "rollback_completed":
                return DeployOutcome(self.name, self.service, "unchanged", image.pinned, image.digest, previous,
                                     round(self.clock() - start, 3), {"service": self.service})
            order = self._order(spec)
            spec["TaskTemplate"]["ContainerSpec"]["Image"] = image.pinned
            # A forced update would otherwise be needed if only the digest
            # label changed; the image change alone starts the rollout.
            spec["Labels"] = {**(spec.get("Labels") or {}), IMAGE_LABEL: image.pinned}
            spec["UpdateConfig"] = self._update_config(order, "rollback")
            spec["RollbackConfig"] = self._update_config(order, "pause")
            since = self._engine_now()
            self._post_update(svc["ID"], svc["Version"]["Index"], spec, rollback=False)
            state, details = self._wait(svc["ID"], image.pinned, since, expect_rollback=False)
        details.update({"service": self.service, "order": order})
        return DeployOutcome(self.name, self.service, "deployed", image.pinned, image.digest, previous,
                             round(self.clock() - start, 3), details)

    def rollback(self, version: str | None = None) -> DeployOutcome:
        if version:
            raise DeployError("swarm rollback goes to the service's previous spec only; --version is for "
                              "container targets", hint=f"deploy the version you want: jenkinsctl deploy "
                              f"--image REPO@sha256:... --to swarm:{self.service}")
        start = self.clock()
        self._deadline = deploy_deadline(self.target, self.clock)
        self._require_manager()
        with engine_errors(f"roll back service {self.service}"):
            svc = self._find()
            if svc is None:
                raise DeployError(f"swarm service {self.service} does not exist", hint="check the name with "
                                  "'docker service ls'")
            prev = svc.get("PreviousSpec")
            if not prev:
                if (svc.get("UpdateStatus") or {}).get("State") == "rollback_completed":
                    raise DeployError(f"swarm service {self.service}: Swarm already rolled back the last update; "
                                      "there is no older version kept", hint="deploy the version you want by "
                                      "digest with jenkinsctl deploy")
                raise DeployError(f"swarm service {self.service} has no previous version to roll back to")
            current = svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
            goal = prev["TaskTemplate"]["ContainerSpec"]["Image"]
            since = self._engine_now()
            self._post_update(svc["ID"], svc["Version"]["Index"], svc["Spec"], rollback=True)
            state, details = self._wait(svc["ID"], goal, since, expect_rollback=True)
        details["service"] = self.service
        return DeployOutcome(self.name, self.service, "rolled-back", goal, goal.partition("@")[2] or None,
                             {"image": current, "digest": current.partition("@")[2] or None},
                             round(self.clock() - start, 3), details)

    # --- steps ------------------------------------------------------------------

    def _require_manager(self) -> None:
        info = self.client.info().get("Swarm") or {}
        if info.get("LocalNodeState") != "active":
            raise DeployError("this engine is not part of a Swarm", hint="run 'docker swarm init' "
                              "(here: --advertise-addr 127.0.0.1), or deploy with container:NAME")
        if not info.get("ControlAvailable"):
            raise DeployError("this engine is a Swarm worker; services can be updated only on a manager",
                              hint="point DOCKER_HOST / engine.host at a manager node")

    def _find(self) -> dict | None:
        for s in self.api.services(filters={"name": self.service}):
            if s["Spec"]["Name"] == self.service:
                return s
        return None

    def _order(self, spec: Mapping[str, Any]) -> str:
        ports = ((spec.get("EndpointSpec") or {}).get("Ports") or [])
        if any(p.get("PublishMode") == "host" and p.get("PublishedPort") for p in ports):
            return "stop-first"
        return "start-first"

    def _update_config(self, order: str, failure_action: str) -> dict[str, Any]:
        return {"Parallelism": self.parallelism, "Delay": int(self.delay * SECOND),
                "FailureAction": failure_action, "Monitor": int(self.monitor * SECOND),
                "MaxFailureRatio": 0, "Order": order}

    def _post_update(self, sid: str, version: int, spec: dict, *, rollback: bool) -> None:
        params: dict[str, Any] = {"version": version}
        if rollback:
            params["rollback"] = "previous"
            params["registryAuthFrom"] = "previous-spec"
        body = post_spec(self.api, "/services/{0}/update", spec, args=(sid,), params=params, auth=self.auth) or {}
        for w in body.get("Warnings") or []:
            log.warning("swarm: %s", w)

    def _create(self, image: ImageRef) -> dict[str, Any]:
        t = self.target
        env = []
        for k, v in t.env.items():
            if isinstance(v, SecretRef):
                v = v.resolve(self.environ)
                if v is None:
                    raise DeployError(f"swarm service {self.service}: env {k} refers to a secret that is not set")
            env.append(f"{k}={v}")
        ports = []
        for cport, binds in port_bindings(t.ports).items():
            number, _, proto = cport.partition("/")
            for b in binds:
                if b["HostIp"] not in ("", "0.0.0.0"):
                    log.warning("swarm publishes on every address of the node; the address %s in '%s:%s:%s' is "
                                "ignored", b["HostIp"], b["HostIp"], b["HostPort"], number)
                ports.append({"Protocol": proto, "TargetPort": int(number), "PublishedPort": int(b["HostPort"]),
                              "PublishMode": "host"})
        labels = {**self.labels, DEPLOY_LABEL: self.service, IMAGE_LABEL: image.pinned}
        spec: dict[str, Any] = {
            "Name": self.service, "Labels": labels,
            "TaskTemplate": {"ContainerSpec": {"Image": image.pinned, "Env": env, "Labels": dict(self.labels)},
                             "RestartPolicy": {"Condition": "any", "Delay": SECOND, "MaxAttempts": 0}},
            "Mode": {"Replicated": {"Replicas": 1}},
            "EndpointSpec": {"Mode": "vip", "Ports": ports},
        }
        if t.network:
            spec["TaskTemplate"]["Networks"] = [{"Target": t.network}]
        order = self._order(spec)
        spec["UpdateConfig"] = self._update_config(order, "rollback")
        spec["RollbackConfig"] = self._update_config(order, "pause")
        sid = post_spec(self.api, "/services/create", spec, auth=self.auth)["ID"]
        got = wait_for(lambda: self._converged(sid, image.pinned), lambda seen: seen[0],
                       timeout=self._left(), interval=self.poll, clock=self.clock, sleep=self.sleep)
        if not got.done:
            raise out_of_time(f"swarm service {self.service}", self._bound(),
                              f"waiting for the new service's tasks to run ({got.last[1]} running):\n"
                              + "\n".join(self._task_errors(sid) or ["no task error reported"]),
                              hint=f"see 'docker service ps --no-trunc {self.service}'", outcome="timeout")
        return {"service": self.service, "order": order, "state": "created", "tasks": got.last[1]}

    def _bound(self) -> Deadline:
        if self._deadline is None:   # a step called on its own, as tests do
            self._deadline = deploy_deadline(self.target, self.clock)
        return self._deadline

    def _left(self) -> float:
        return self._bound().remaining()

    def _engine_now(self) -> _dt.datetime:
        """The manager's clock, which stamps UpdateStatus.StartedAt; an
        UpdateStatus that started before our request is a previous one."""
        return _ts(self.client.info().get("SystemTime"))

    def _wait(self, sid: str, goal_image: str, since: _dt.datetime, *, expect_rollback: bool
              ) -> tuple[str, dict[str, Any]]:
        def look() -> tuple[str, str, dict[str, Any] | None]:
            """(state, message, the outcome once there is one); Swarm's
            rollback of a deploy and a paused update end the wait with an
            error."""
            svc = self.api.inspect_service(sid)
            us = svc.get("UpdateStatus") or {}
            fresh = us and _ts(us.get("StartedAt")) >= since
            state = us.get("State", "") if fresh else "pending"
            message = us.get("Message", "") if fresh else ""
            if state == "completed" and not expect_rollback:
                ok, tasks = self._converged(sid, goal_image)
                if ok:
                    return state, message, {"state": "converged", "message": message, "tasks": tasks}
            elif state == "rollback_completed":
                if expect_rollback:
                    ok, tasks = self._converged(sid, goal_image)
                    if ok:
                        return state, message, {"state": "rolled back", "message": message, "tasks": tasks}
                else:
                    errors = self._task_errors(sid, goal_image)
                    raise DeployError(
                        f"swarm service {self.service}: the update failed and Swarm rolled it back; the previous "
                        f"version is serving.\nupdate status: {message}\nthe new version's tasks:\n"
                        + "\n".join(f"  {e}" for e in errors or ["(no task error reported)"]),
                        hint=f"see 'docker service ps --no-trunc {self.service}' and the new image's health check",
                        outcome="rolled-back", tasks=errors)
            elif state in ("paused", "rollback_paused"):
                errors = self._task_errors(sid)
                raise DeployError(f"swarm service {self.service}: update {state}: {message}\n"
                                  + "\n".join(f"  {e}" for e in errors),
                                  hint=f"fix the cause, then 'docker service update --rollback {self.service}' "
                                       "or deploy again", outcome=state, tasks=errors)
            return state, message, None

        got = wait_for(look, lambda seen: seen[2] is not None, timeout=self._left(), interval=self.poll,
                       clock=self.clock, sleep=self.sleep)
        state, message, details = got.last
        if details is None:
            goal = "the rollback" if expect_rollback else "the update"
            raise out_of_time(f"swarm service {self.service}", self._bound(),
                              f"{goal} to {goal_image} had not converged (update state: {state or 'none'}"
                              f"{': ' + message if message else ''})",
                              hint=f"see 'docker service ps --no-trunc {self.service}'", outcome=state or "timeout")
        return state, details

    def _converged(self, sid: str, image: str) -> tuple[bool, int]:
        svc = self.api.inspect_service(sid)
        want = ((svc["Spec"].get("Mode") or {}).get("Replicated") or {}).get("Replicas")
        tasks = self.api.tasks(filters={"service": sid, "desired-state": "running"})
        running = [t for t in tasks if t["Status"]["State"] == "running"
                   and _same_image(t["Spec"]["ContainerSpec"]["Image"], image)]
        if want is None:  # global mode: every running-desired task
            return bool(tasks) and len(running) == len(tasks), len(running)
        return len(running) == want and len(tasks) == want, len(running)

    def _task_errors(self, sid: str, image: str | None = None) -> list[str]:
        """What the newest tasks (of ``image``, when given) ended with, plus
        the health output and last log lines of the newest one's container
        when this engine still has it (always so on a single node)."""
        tasks = self.api.tasks(filters={"service": sid})
        if image:
            tasks = [t for t in tasks if _same_image(t["Spec"]["ContainerSpec"]["Image"], image)]
        tasks.sort(key=lambda t: t.get("UpdatedAt", ""), reverse=True)
        out = []
        for t in tasks[:3]:
            st = t["Status"]
            cs = st.get("ContainerStatus") or {}
            err = st.get("Err") or ""
            out.append(f"task {t['ID'][:12]}: {st.get('State')} ({st.get('Message', '')}"
                       f"{', exit ' + str(cs.get('ExitCode')) if cs.get('ExitCode') is not None else ''})"
                       f"{': ' + err if err else ''}")
        # The task that ran longest shows the most: prefer one whose health
        # check already reported.
        found = []
        for t in tasks[:5]:
            cid = ((t["Status"].get("ContainerStatus") or {}).get("ContainerID"))
            if not cid:
                continue
            try:
                with engine_errors(f"inspect container {cid}"):
                    attrs = self.api.inspect_container(cid)
            except EngineError:
                continue
            found.append((bool((attrs["State"].get("Health") or {}).get("Log")), cid, attrs))
        found.sort(key=lambda f: f[0], reverse=True)
        for _, cid, attrs in found[:1]:
            health = attrs["State"].get("Health")
            if health:
                out.append("health output:")
                out.extend("  " + line for line in health_log(health).splitlines())
            logs = log_tail(self.api, cid)
            if logs:
                out.append("last log lines:")
                out.extend("  " + line for line in logs.splitlines())
        return out


def _same_image(task_image: str, image: str) -> bool:
    return task_image == image or task_image.endswith("@" + image.rpartition("@")[2])
