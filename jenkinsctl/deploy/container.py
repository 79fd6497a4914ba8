"""The ``container`` strategy: replace a named container, health-gated.

How a deploy of NAME goes (all under an engine-wide lock, see deploy/lock.py):

1. Pull the image by digest (skipped when the engine has it).
2. Work out the new container's settings from the running one: its env,
   ports, networks and aliases, volumes (anonymous ones kept by name),
   labels and restart policy, minus what came from the old *image* (so the
   new image's ENV, CMD and HEALTHCHECK win).  With no container yet, from
   the deploy target in the config.
3. Start a **candidate** next to the old container, without published ports
   and without network aliases, so it gets no traffic, and gate it on the
   image's HEALTHCHECK or the HTTP probe (aimed at the candidate's own
   address; in proxy mode, from inside the proxy when that address is out
   of this process's reach, see deploy/proxy.py).  If it is unhealthy the old container was never touched: the
   command fails with the health output and the candidate's last log lines.
4. Switch (``switch`` in the target; the default follows from the ports):
   - *proxy* (host ports published, the default then; see deploy/proxy.py
     for the design): the ports belong to a per-target HAProxy,
     ``NAME.proxy``, and the apps publish none.  One runtime-API call sends
     new requests to the candidate; the old container drains (in-flight
     requests finish), stays running through the watch window (``proxy.
     watch``, 30 s) while the new one's answers are counted, and is stopped
     only then.  Too many 5xx or connection errors in the window switch back
     to it and fail the deploy (DeployError, exit 6) with the numbers and
     the new container's log lines.  A target that published its ports
     itself migrates on its next deploy: the only switch with a gap (the
     old container must free the ports before the proxy can bind them).
     Every proxy-mode run first reconciles: the proxy is made to serve NAME
     and containers an interrupted run left running are stopped.
   - *start-first* (nothing published on host ports): the candidate itself
     takes the network aliases and the name, then the old one stops.  No
     downtime for clients that reach it by name.
   - *stop-first* (fixed host ports, which two containers cannot share): a
     final container with the ports is **created** ahead, then old stop +
     new start happen back to back; the gap is measured (``switch_ms``).
     If the new one does not come up healthy, the old one is started again.
5. The old container is kept stopped as ``NAME.vSEQ`` (restart policy off so
   a daemon restart does not revive it); only the newest ``keep`` are kept.
   ``rollback`` starts the previous one again the same way; in proxy mode
   it starts the kept container, waits until it answers at its own address,
   and switches the proxy to it (no stop-first gap); the container it
   replaces is told to stop once drained, not waited for.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import dataclasses
import logging
import os
import re
import socket
import time
import urllib.parse
from typing import Any, Callable, Mapping

from jenkinsctl.config import SecretRef
from jenkinsctl.deploy import (
    CANDIDATE_LABEL,
    DEPLOY_LABEL,
    IMAGE_LABEL,
    SEQ_LABEL,
    DeployOutcome,
    ImageRef,
    deploy_deadline,
    parse_time,
    port_bindings,
    pull_by_digest,
)
from jenkinsctl.deploy.health import health_log, http_probe, rewrite_host
from jenkinsctl.deploy.lock import engine_lock
from jenkinsctl.deploy.proxy import (
    Proxy,
    ProxySettings,
    bindings_from_port_bindings,
    counters_of,
    ensure_image,
    port_bindings_of,
    tripped,
)
from jenkinsctl.deploy.secret_files import install_secret_files
from jenkinsctl.engine import engine_errors, log_tail
from jenkinsctl.errors import DeployError, EngineError, EngineNotFound
from jenkinsctl.poll import Deadline, wait_for

log = logging.getLogger("jenkinsctl.deploy")

BUILTIN_NETWORKS = ("bridge", "host", "none", "default")
SWITCH_PROBE_INTERVAL = 0.02
NO_RESTART = {"Name": "no", "MaximumRetryCount": 0}
MIN_UPTIME = 2.0  # seconds a container without any health check must stay up


class ContainerStrategy:
    name = "container"

    def __init__(self, client, target, *, labels: Mapping[str, str], auth: dict | None = None,
                 environ: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.api = client.api
        self.target = target
        self.cname = target.target
        self.labels = dict(labels)
        self.auth = auth
        self.environ = os.environ if environ is None else environ
        self.clock = clock
        self.sleep = sleep
        self.health_url = target.health.http
        self.health_timeout = float(target.health.timeout)
        self.health_interval = float(target.health.interval)
        # The target's timeout bounds the whole deploy or rollback, health
        # gates included (health.timeout bounds each gate on its own).
        self._deadline: Deadline | None = None
        known = {f.name for f in dataclasses.fields(ProxySettings)}
        self.proxy_settings = ProxySettings(**{k: v for k, v in dict(getattr(target, "proxy", None) or {}).items()
                                               if k in known})
        self.proxy = Proxy(client, self.cname, self.labels, self.proxy_settings, clock=clock, sleep=sleep)
        # Set while proxy mode probes apps from a container on the engine's
        # host network (see _probes_on_engine_host); None: from here.
        self._probe_via: str | None = None

    def _lock_hold(self) -> float:
        """How long one deploy or rollback of this target may hold its lock:
        the target's own timeout plus the proxy's watch window and drain,
        which run under the lock too.  Waiters elsewhere break it only after."""
        return self.target.timeout + self.proxy_settings.watch + self.proxy_settings.drain

    # --- public --------------------------------------------------------------

    def deploy(self, image: ImageRef) -> DeployOutcome:
        start = self.clock()
        self._deadline = deploy_deadline(self.target, self.clock)
        pull_by_digest(self.client, image, self.auth)
        with engine_lock(self.client, f"{self.cname}.lock", image.pinned, self.labels, self.clock, self.sleep,
                         deadline=self._deadline, hold=self._lock_hold()):
            current = self._current()
            proxied = self.proxy.find() is not None
            if proxied:
                # An interrupted deploy may have left the proxy on another
                # container: back to NAME before anything is removed.
                self._reconcile_proxy(current)
            self._remove_leftovers()
            previous = self._describe(current) if current is not None else None
            if current is not None and self._already_running(current, image):
                return DeployOutcome(self.name, self.cname, "unchanged", image.pinned, image.digest, previous,
                                     round(self.clock() - start, 3),
                                     {"container": self.cname, "id": current.id[:12]})
            seq = self._next_seq()
            spec = self._spec_from(current) if current is not None else self._spec_from_target()
            self._apply_target_env(spec)
            # self.labels carry the deploy role (make_strategy).
            labels = {**spec["labels"], **self.labels, DEPLOY_LABEL: self.cname,
                      SEQ_LABEL: str(seq), IMAGE_LABEL: image.pinned}
            bindings = self._bindings(spec, proxied)
            mode = self._switch_mode(bindings, proxied)
            publishes = bool(spec["host_config"].get("PortBindings"))
            details: dict[str, Any] = {"container": self.cname, "seq": seq}
            with engine_errors(f"deploy to container {self.cname}"):
                if mode == "proxy":
                    spec["host_config"]["PortBindings"] = port_bindings_of(bindings)
                    spec["networks"].setdefault(self.proxy.network, {"Aliases": [], "IPAMConfig": None,
                                                                     "Links": None})
                    if current is None:
                        details.update(self._proxy_create(image, spec, labels, bindings))
                        outcome = "created"
                    elif not proxied:
                        details.update(self._proxy_migrate(image, spec, labels, bindings, current))
                        outcome = "deployed"
                    else:
                        details.update(self._proxy_switch(image, spec, labels, bindings, current))
                        outcome = "deployed"
                elif current is None:
                    details.update(self._create_first(image, spec, labels))
                    outcome = "created"
                elif publishes:
                    details.update(self._stop_first(image, spec, labels, current, seq))
                    outcome = "deployed"
                else:
                    details.update(self._start_first(image, spec, labels, current))
                    outcome = "deployed"
            details["pruned"] = self._prune()
        return DeployOutcome(self.name, self.cname, outcome, image.pinned, image.digest, previous,
                             round(self.clock() - start, 3), details)

    def rollback(self, version: str | None = None) -> DeployOutcome:
        start = self.clock()
        self._deadline = deploy_deadline(self.target, self.clock)
        current = self._current()
        retired = self._retired()
        if not retired:
            raise DeployError(f"container {self.cname}: no previous version is kept to roll back to",
                              hint="rollback needs an earlier deploy by jenkinsctl (keep > 0)")
        cur_seq = _seq_of(current) if current is not None else None
        chosen = _choose(retired, version, cur_seq)
        if chosen is None:
            have = ", ".join(f"v{s} ({_image_of(c).rpartition('@')[2][:19]})" for s, c in retired)
            what = f"matches '{version}'" if version else f"is older than the current v{cur_seq}"
            raise DeployError(f"container {self.cname}: no kept version {what}",
                              hint=f"kept versions: {have}; pick one with --version")
        seq, target = chosen
        lock_image = target.attrs["Image"]
        with engine_lock(self.client, f"{self.cname}.lock", lock_image, self.labels, self.clock, self.sleep,
                         deadline=self._deadline, hold=self._lock_hold()):
            with engine_errors(f"roll back container {self.cname}"):
                pc = self.proxy.find()
                if pc is not None:
                    details = self._proxy_rollback(current, target, pc)
                else:
                    details = self._switch_to_existing(current, target)
        pinned = _image_of(target)
        digest = pinned.partition("@")[2] or None
        previous = self._describe(current) if current is not None else None
        details.update({"container": self.cname, "seq": seq})
        return DeployOutcome(self.name, self.cname, "rolled-back", pinned, digest, previous,
                             round(self.clock() - start, 3), details)

    # --- finding containers -----------------------------------------------------

    def _get(self, name: str):
        try:
            with engine_errors(f"inspect container {name}"):
                c = self.client.containers.get(name)
        except EngineNotFound:
            return None
        return c if c.name == name else None  # get() also matches id prefixes

    def _owned(self) -> list:
        return self.client.containers.list(all=True, filters={"label": f"{DEPLOY_LABEL}={self.cname}"})

    def _retired(self) -> list[tuple[int, Any]]:
        """Kept versions, newest first: NAME.vSEQ containers."""
        pat = re.compile(rf"^{re.escape(self.cname)}\.v(\d+)(?:-\d+)?$")
        out = []
        for c in self._owned():
            m = pat.match(c.name)
            if m:
                out.append((int(m.group(1)), c))
        out.sort(key=lambda sc: (sc[0], sc[1].attrs.get("Created", "")), reverse=True)
        return out

    def _current(self):
        current = self._get(self.cname)
        if current is not None:
            return current
        # A run that died between retiring the old container and naming the
        # new one leaves a running NAME.vSEQ: adopt it back.
        for _, c in self._retired():
            if c.status == "running":
                log.warning("container %s: found %s still running without its name; taking it back",
                            self.cname, c.name)
                self.api.rename(c.id, self.cname)
                c.reload()
                return c
        return None

    def _remove_leftovers(self) -> None:
        for suffix in (".candidate", ".next"):
            c = self._get(self.cname + suffix)
            if c is not None and (c.labels.get(DEPLOY_LABEL) == self.cname
                                  or c.labels.get(CANDIDATE_LABEL) == self.cname):
                log.info("removing %s left by an interrupted deploy", c.name)
                c.remove(force=True)

    def _next_seq(self) -> int:
        seqs = [_seq_of(c) for c in self._owned()]
        return max([s for s in seqs if s is not None] + [0]) + 1

    def _describe(self, c) -> dict[str, Any]:
        pinned = _image_of(c)
        return {"container": c.name, "id": c.id[:12], "image": pinned,
                "digest": pinned.partition("@")[2] or None, "seq": _seq_of(c)}

    def _already_running(self, current, image: ImageRef) -> bool:
        state = current.attrs.get("State", {})
        health = (state.get("Health") or {}).get("Status")
        return current.attrs["Config"].get("Image") == image.pinned and state.get("Running") and health != "unhealthy"

    # --- settings ---------------------------------------------------------------

    def _spec_from(self, c) -> dict[str, Any]:
        """The old container's settings minus what its image supplied."""
        cfg = c.attrs["Config"]
        try:
            img_cfg = self.client.images.get(c.attrs["Image"]).attrs.get("Config") or {}
        except Exception:  # noqa: BLE001 - image gone: keep everything
            img_cfg = {}
        img_env = set(img_cfg.get("Env") or [])
        img_labels = img_cfg.get("Labels") or {}
        body: dict[str, Any] = {
            "Env": [e for e in (cfg.get("Env") or []) if e not in img_env],
            "Tty": cfg.get("Tty", False),
            "OpenStdin": cfg.get("OpenStdin", False),
        }
        for key in ("Cmd", "Entrypoint", "WorkingDir", "User", "Healthcheck", "StopSignal"):
            if cfg.get(key) and cfg.get(key) != img_cfg.get(key):
                body[key] = cfg[key]
        if cfg.get("StopTimeout") is not None:
            body["StopTimeout"] = cfg["StopTimeout"]
        if cfg.get("Hostname") and not c.id.startswith(cfg["Hostname"]):
            body["Hostname"] = cfg["Hostname"]
        if cfg.get("Domainname"):
            body["Domainname"] = cfg["Domainname"]
        labels = {k: v for k, v in (cfg.get("Labels") or {}).items()
                  if img_labels.get(k) != v and k not in (SEQ_LABEL, IMAGE_LABEL)}
        host_config = copy.deepcopy(c.attrs["HostConfig"])
        # Anonymous volumes would come back empty: bind them by name.
        covered = {b.split(":")[1] for b in host_config.get("Binds") or [] if ":" in b}
        covered |= {m.get("Target") for m in host_config.get("Mounts") or []}
        for m in c.attrs.get("Mounts") or []:
            if m.get("Type") == "volume" and m.get("Destination") not in covered and m.get("Name"):
                mode = "" if m.get("RW", True) else ":ro"
                host_config.setdefault("Binds", [])
                host_config["Binds"] = list(host_config["Binds"] or []) + [f"{m['Name']}:{m['Destination']}{mode}"]
        bindings = host_config.get("PortBindings") or {}
        exposed: dict[str, dict] = {p: {} for p in bindings}
        if exposed:
            body["ExposedPorts"] = exposed
        networks = {}
        for net, ep in (c.attrs.get("NetworkSettings", {}).get("Networks") or {}).items():
            aliases = [a for a in (ep.get("Aliases") or []) if not c.id.startswith(a) and a != c.name]
            networks[net] = {"Aliases": aliases, "IPAMConfig": ep.get("IPAMConfig"), "Links": ep.get("Links")}
        return {"config": body, "host_config": host_config, "networks": networks,
                "primary": host_config.get("NetworkMode") or "default", "labels": labels}

    def _spec_from_target(self) -> dict[str, Any]:
        t = self.target
        bindings = self._spec_from_target_ports()
        host_config = {"PortBindings": bindings, "Binds": list(t.volumes),
                       "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
                       "NetworkMode": t.network or "default"}
        for spec in t.volumes:
            self._ensure_volume(spec.split(":", 1)[0])
        networks: dict[str, Any] = {}
        if t.network:
            self._ensure_network(t.network)
            networks[t.network] = {"Aliases": [], "IPAMConfig": None, "Links": None}
        body: dict[str, Any] = {"Env": []}
        if bindings:
            body["ExposedPorts"] = {p: {} for p in bindings}
        return {"config": body, "host_config": host_config, "networks": networks,
                "primary": host_config["NetworkMode"], "labels": {}}

    def _ensure_volume(self, source: str) -> None:
        """A named volume the config asks for is created with the ownership
        labels, like the network, instead of implicitly (and unlabelled) by
        the engine.  Host paths are bind mounts and left alone."""
        if source.startswith(("/", ".", "~")):
            return
        try:
            with engine_errors(f"inspect volume {source}"):
                self.client.volumes.get(source)
        except EngineNotFound:
            log.info("creating volume %s", source)
            self.client.volumes.create(source, labels=self.labels)

    def _ensure_network(self, name: str) -> None:
        try:
            with engine_errors(f"inspect network {name}"):
                self.client.networks.get(name)
        except EngineNotFound:
            log.info("creating network %s", name)
            self.client.networks.create(name, driver="bridge", labels=self.labels, check_duplicate=True)

    def _apply_target_env(self, spec: dict[str, Any]) -> None:
        """The target's env (config) overrides the old container's."""
        if not self.target.env:
            return
        env = {e.partition("=")[0]: e for e in spec["config"]["Env"]}
        for key, value in self.target.env.items():
            if isinstance(value, SecretRef):
                resolved = value.resolve(self.environ)
                if resolved is None:
                    raise DeployError(f"container {self.cname}: env {key} refers to a secret that is not set "
                                      f"({value.describe()})", hint="set the variable or file it names")
                value = resolved
            env[key] = f"{key}={value}"
        spec["config"]["Env"] = list(env.values())

    # --- creating and gating --------------------------------------------------------

    def _create(self, name: str, image: str, spec: dict[str, Any], labels: Mapping[str, str], *,
                publish: bool = True, aliases: bool = True, static_ip: bool = True,
                restart: dict | None = None) -> str:
        body = copy.deepcopy(spec["config"])
        body["Image"] = image
        body["Labels"] = dict(labels)
        hc = copy.deepcopy(spec["host_config"])
        if not publish:
            hc["PortBindings"] = {}
            hc["PublishAllPorts"] = False
        if restart is not None:
            hc["RestartPolicy"] = restart
        body["HostConfig"] = hc
        primary = spec["primary"]
        user_primary = primary in spec["networks"] and _user_network(primary)
        if user_primary:
            body["NetworkingConfig"] = {"EndpointsConfig": {
                primary: _endpoint(spec["networks"][primary], self.cname if aliases else None, static_ip)}}
        cid = self.api.create_container_from_config(body, name)["Id"]
        for net, ep in spec["networks"].items():
            if net == primary or not _user_network(net):
                continue
            e = _endpoint(ep, self.cname if aliases else None, static_ip)
            self.api.connect_container_to_network(cid, net, aliases=e.get("Aliases") or None,
                                                  ipv4_address=(e.get("IPAMConfig") or {}).get("IPv4Address"))
        install_secret_files(self.api, cid, self.target, self.environ)  # files, not Env: see secret_files
        return cid

    def _gate(self, cid: str, spec: dict[str, Any], *, via_container_ip: bool, what: str) -> dict[str, Any]:
        """Wait until container ``cid`` is healthy, or raise DeployError with
        its health output and last log lines."""
        url = self.health_url
        if url and via_container_ip:
            url = self._candidate_url(url, cid, spec)
        ok, kind, detail, waited = self._wait_healthy(cid, url, self.health_timeout, self.health_interval)
        if not ok:
            raise DeployError(self._failure_message(cid, what, detail), hint=(
                "the previous version is still serving. Fix the image (see the health output and log lines "
                "above) and deploy again"), container=self.cname, health=detail)
        return {"health": kind, "health_seconds": round(waited, 3)}

    def _wait_healthy(self, cid: str, url: str | None, timeout: float, interval: float, *,
                      require_healthcheck: bool = True) -> tuple[bool, str, str, float]:
        """Until the HTTP probe passes (if ``url``) and the image's
        HEALTHCHECK says healthy (if it has one and ``require_healthcheck``);
        an unhealthy HEALTHCHECK or an exit fails at once."""
        timeout, why = self._bounded(timeout)
        last_detail = ["no probe ran yet"]

        def look() -> tuple[bool | None, str, str]:
            """(verdict, kind, detail); verdict None: not decided yet."""
            state = self.api.inspect_container(cid)["State"]
            health = state.get("Health")
            kind = "http" if url else ("healthcheck" if health else "running")
            if not state.get("Running"):
                return False, kind, f"the container exited with code {state.get('ExitCode')} " \
                                    f"{state.get('Error') or ''}".strip()
            if health and health.get("Status") == "unhealthy":
                return False, "healthcheck", health_log(health)
            if url:
                ok, detail = self._http_probe(url, min(2.0, max(0.5, interval)))
                if ok and health and require_healthcheck and health.get("Status") != "healthy":
                    ok, detail = False, f"{detail}; waiting for the image's HEALTHCHECK ({health.get('Status')})"
                last_detail[0] = detail
                return (True if ok else None), kind, detail
            if health:
                last_detail[0] = health_log(health) or f"health status {health.get('Status')}"
                return (True if health.get("Status") == "healthy" else None), kind, last_detail[0]
            if waited.elapsed() >= MIN_UPTIME:
                return True, kind, f"running for {MIN_UPTIME:.0f}s (no HEALTHCHECK and no health.http)"
            return None, kind, last_detail[0]

        waited = Deadline(None, self.clock)
        out = wait_for(look, lambda r: r[0] is not None, timeout=timeout,
                       interval=lambda r: interval if r[1] != "running" else 0.2, clock=self.clock, sleep=self.sleep)
        verdict, kind, detail = out.last
        if verdict is None:
            return False, kind, f"not healthy within {timeout:g}s{why}; last probe: {detail}", out.elapsed
        return verdict, kind, detail, out.elapsed

    def _http_probe(self, url: str, timeout: float) -> tuple[bool, str]:
        if self._probe_via:
            return self.proxy.probe_http(self._probe_via, url, timeout)
        return http_probe(url, timeout=timeout)

    @contextlib.contextmanager
    def _probes_on_engine_host(self, ref: str | None = None):
        """Proxy mode probes a candidate at its address on NAME.net.  When
        that network is not reachable from this process (a remote engine, an
        engine in another network namespace, jenkinsctl in a container), the
        probes run inside the proxy instead, which sits on the engine's host
        network: a `docker exec` of socat, about 30-60 ms a probe.  Before
        the proxy runs (first deploy, migration) a sleeping container of the
        proxy image stands in for it."""
        if self.proxy.reachable_from_here():
            yield
            return
        pc = self.proxy.find()
        prober = None
        if pc is not None and pc.status == "running":
            self._probe_via = pc.id
        else:
            prober = self.proxy.start_prober(ref or self._proxy_image())
            self._probe_via = prober
        try:
            yield
        finally:
            self._probe_via = None
            if prober:
                self.proxy.remove_prober(prober)

    def _bounded(self, timeout: float) -> tuple[float, str]:
        """``timeout`` cut to what is left of the target's timeout, and the
        reason to name when it was cut."""
        if self._deadline is None:
            return timeout, ""
        left = self._deadline.remaining()
        if left < timeout:
            return left, f" (what was left of the deploy's timeout of {self.target.timeout:g}s)"
        return timeout, ""

    def _candidate_url(self, url: str, cid: str, spec: dict[str, Any], ip: str | None = None) -> str:
        """The health URL aimed at the candidate's own address (``ip``, else
        looked up): a URL on a published host port goes to the container
        port behind it."""
        if ip is None:
            attrs = self.api.inspect_container(cid)
            ip = next((n.get("IPAddress") for n in (attrs["NetworkSettings"].get("Networks") or {}).values()
                       if n.get("IPAddress")), None)
        if not ip:
            return url
        u = urllib.parse.urlsplit(url)
        port = u.port or (443 if u.scheme == "https" else 80)
        for cport, binds in (spec["host_config"].get("PortBindings") or {}).items():
            for b in binds or []:
                if str(b.get("HostPort")) == str(port):
                    return rewrite_host(url, ip, int(cport.split("/")[0]))
        if u.hostname in (self.cname, "localhost", "127.0.0.1") or u.hostname in spec["networks"]:
            return rewrite_host(url, ip, u.port)
        return url

    def _failure_message(self, cid: str, what: str, detail: str) -> str:
        logs = log_tail(self.api, cid, lines=20)
        lines = [f"container {self.cname}: {what} is not healthy; nothing was switched",
                 "health output:", _indent(detail),
                 "last log lines:", _indent(logs or "(none)")]
        return "\n".join(lines)

    # --- the switches ---------------------------------------------------------------

    def _create_first(self, image: ImageRef, spec, labels) -> dict[str, Any]:
        name = f"{self.cname}.next"
        cid = self._create(name, image.pinned, spec, labels)
        self.api.start(cid)
        try:
            gate = self._gate(cid, spec, via_container_ip=False, what="the new container")
        except DeployError:
            self._remove(cid)
            raise
        self.api.rename(cid, self.cname)
        return {"mode": "create", "id": cid[:12], **gate}

    def _start_candidate(self, image: ImageRef, spec, labels, name: str, *, final: bool) -> tuple[str, dict]:
        cand_labels = dict(labels) if final else {
            **{k: v for k, v in labels.items() if k not in (DEPLOY_LABEL, SEQ_LABEL)},
            CANDIDATE_LABEL: self.cname}
        cid = self._create(name, image.pinned, spec, cand_labels, publish=False, aliases=False, static_ip=False,
                           restart={"Name": "no", "MaximumRetryCount": 0})
        t = self.clock()
        self.api.start(cid)
        try:
            gate = self._gate(cid, spec, via_container_ip=True, what="the candidate")
        except DeployError:
            self._remove(cid)
            raise
        gate["candidate_seconds"] = round(self.clock() - t, 3)
        return cid, gate

    def _start_first(self, image: ImageRef, spec, labels, current) -> dict[str, Any]:
        cid, gate = self._start_candidate(image, spec, labels, f"{self.cname}.next", final=True)
        # Healthy: join the networks under the service's aliases, so both
        # answer for a moment, then retire the old one.
        for net, ep in spec["networks"].items():
            if _user_network(net):
                e = _endpoint(ep, self.cname, static_ip=False)
                self.api.disconnect_container_from_network(cid, net)
                self.api.connect_container_to_network(cid, net, aliases=e.get("Aliases") or None)
        self.api.update_container(cid, restart_policy=spec["host_config"].get("RestartPolicy") or {"Name": "no"})
        retired, _ = self._retire(current)
        self.api.rename(cid, self.cname)
        self.api.stop(current.id, timeout=_stop_timeout(current))
        return {"mode": "start-first", "id": cid[:12], "retired": retired, "switch_ms": 0, **gate}

    def _stop_first(self, image: ImageRef, spec, labels, current, seq: int) -> dict[str, Any]:
        cand_id, gate = self._start_candidate(image, spec, labels, f"{self.cname}.candidate", final=False)
        try:
            final = self._create(f"{self.cname}.next", image.pinned, spec, labels)
        finally:
            self._remove(cand_id)
        retired, restart = self._retire(current)
        # The gap: from here until the new container answers.
        t_stop = self.clock()
        self.api.stop(current.id, timeout=_stop_timeout(current))
        t_stopped = self.clock()
        try:
            self.api.start(final)
        except Exception as exc:  # noqa: BLE001 - e.g. the port is still held
            self._restore(current, retired, restart, final)
            raise DeployError(f"container {self.cname}: the new container did not start: "
                              f"{getattr(exc, 'explanation', None) or exc}; the previous one was started again",
                              hint="check the port bindings and that nothing else holds the host ports") from None
        t_started = self.clock()
        self.api.rename(final, self.cname)
        # The same image just passed the HTTP probe and its HEALTHCHECK as
        # the candidate: here only "does it answer again" is waited for.
        ok, kind, detail, _ = self._wait_ready(final)
        t_ready = self.clock()
        if not ok:
            message = self._failure_message(final, "the new container", detail).replace(
                "nothing was switched", "the previous container was started again")
            self._restore(current, retired, restart, final)
            raise DeployError(message, hint="the candidate passed but the switched container did not; check "
                              "port-dependent settings", container=self.cname, health=detail)
        return {"mode": "stop-first", "id": final[:12], "retired": retired,
                "stop_ms": round((t_stopped - t_stop) * 1000, 1),
                "start_ms": round((t_started - t_stopped) * 1000, 1),
                "switch_ms": round((t_ready - t_stop) * 1000, 1), "switch_measured_by": kind, **gate}

    def _wait_ready(self, cid: str) -> tuple[bool, str, str, float]:
        """After a stop-first switch: poll fast, so the measured gap is the
        real one (the HTTP probe), else fall back to the health gate."""
        if self.health_url:
            return self._wait_healthy(cid, self.health_url, self.health_timeout, SWITCH_PROBE_INTERVAL,
                                      require_healthcheck=False)
        return self._wait_healthy(cid, None, self.health_timeout, min(self.health_interval, 0.25))

    def _has_healthcheck(self, cid: str) -> bool:
        return bool(self.api.inspect_container(cid)["State"].get("Health"))

    def _restore(self, current, retired_name: str, restart: dict, failed: str) -> None:
        log.warning("container %s: switching back to the previous container", self.cname)
        with contextlib.suppress(Exception):
            self.api.stop(failed, timeout=5)
        self._remove(failed)
        self.api.rename(current.id, self.cname)
        self.api.update_container(current.id, restart_policy=restart)
        self.api.start(current.id)

    def _retire(self, current) -> tuple[str, dict]:
        """Take ``current`` out of service by name: it becomes NAME.vSEQ with
        its restart policy off (so a daemon restart does not revive it).
        Returns (that name, the restart policy it had, for its successor or
        a restore).  Stopping it is the caller's, whose timing differs."""
        retired = self._retire_name(current)
        restart = current.attrs["HostConfig"].get("RestartPolicy") or {"Name": "no"}
        self.api.rename(current.id, retired)
        self.api.update_container(current.id, restart_policy=NO_RESTART)
        return retired, restart

    def _retire_name(self, current) -> str:
        seq = _seq_of(current) or 0
        name = f"{self.cname}.v{seq}"
        if self._get(name) is not None:
            name = f"{name}-{int(time.time())}"
        return name

    def _switch_to_existing(self, current, target) -> dict[str, Any]:
        """rollback: start a kept container again, health-gated."""
        t_name = target.name
        restart = (current.attrs["HostConfig"].get("RestartPolicy") if current is not None else None) \
            or {"Name": "unless-stopped", "MaximumRetryCount": 0}
        publishes = bool(target.attrs["HostConfig"].get("PortBindings")) or (
            current is not None and bool(current.attrs["HostConfig"].get("PortBindings")))
        retired: str | None = None
        if publishes or current is None:
            t_stop = self.clock()
            if current is not None:
                retired, _ = self._retire(current)
                self.api.stop(current.id, timeout=_stop_timeout(current))
            self.api.rename(target.id, self.cname)
            self.api.update_container(target.id, restart_policy=restart)
            self.api.start(target.id)
            ok, kind, detail, _ = self._wait_ready(target.id)
            t_ready = self.clock()
            if ok and kind == "http" and self._has_healthcheck(target.id):
                ok, _, detail, _ = self._wait_healthy(target.id, None, self.health_timeout, self.health_interval)
            if not ok:
                message = self._failure_message(target.id, f"the kept version {t_name}", detail)
                with contextlib.suppress(Exception):
                    self.api.stop(target.id, timeout=5)
                self.api.rename(target.id, t_name)
                self.api.update_container(target.id, restart_policy=NO_RESTART)
                if current is not None:
                    self.api.rename(current.id, self.cname)
                    self.api.update_container(current.id, restart_policy=restart)
                    self.api.start(current.id)
                raise DeployError(message.replace("nothing was switched", "the current version was started again"),
                                  container=self.cname, health=detail)
            return {"mode": "stop-first", "from": t_name, "retired": retired,
                    "switch_ms": round((t_ready - t_stop) * 1000, 1), "health": kind}
        self.api.start(target.id)
        spec = {"host_config": target.attrs["HostConfig"], "networks": {}}
        try:
            gate = self._gate(target.id, spec, via_container_ip=True, what=f"the kept version {t_name}")
        except DeployError:
            with contextlib.suppress(Exception):
                self.api.stop(target.id, timeout=5)
            raise
        retired, _ = self._retire(current)
        self.api.rename(target.id, self.cname)
        self.api.update_container(target.id, restart_policy=restart)
        self.api.stop(current.id, timeout=_stop_timeout(current))
        return {"mode": "start-first", "from": t_name, "retired": retired, "switch_ms": 0, **gate}

    # --- proxy mode (jenkinsctl/deploy/proxy.py) ---------------------------------------

    def _bindings(self, spec: dict[str, Any], proxied: bool) -> list:
        """What the target publishes: the config's ports when it names
        some, else what the proxy publishes, else what the app publishes."""
        if getattr(self.target, "switch", None) == "stop-first" and not proxied:
            return []   # the app publishes them itself: whatever they are (UDP too)
        if self.target.ports:
            return bindings_from_port_bindings(self._spec_from_target_ports())
        if proxied:
            return self.proxy.bindings()
        return bindings_from_port_bindings(spec["host_config"].get("PortBindings"))

    def _spec_from_target_ports(self) -> dict[str, list]:
        return port_bindings(self.target.ports)

    def _switch_mode(self, bindings: list, proxied: bool) -> str:
        want = getattr(self.target, "switch", None)
        if want == "stop-first" and proxied:
            raise DeployError(f"container {self.cname}: 'switch: stop-first' but the target runs behind its "
                              f"deploy proxy {self.proxy.name}",
                              hint=f"to publish from the app again, remove the proxy first "
                                   f"('docker rm -f {self.proxy.name}') and deploy; or drop 'switch: stop-first'")
        if want == "start-first" and bindings:
            raise DeployError(f"container {self.cname}: 'switch: start-first' cannot work with published host "
                              "ports (two containers cannot publish the same port)",
                              hint="use 'switch: proxy' (the default) or 'switch: stop-first'")
        if want == "proxy" and not bindings:
            raise DeployError(f"container {self.cname}: 'switch: proxy' but the target publishes no host port",
                              hint="add ports: [HOST_IP:HOST_PORT:CONTAINER_PORT] to the target, or drop 'switch'")
        if want:
            return want
        return "proxy" if bindings or proxied else "start-first"

    def _proxy_image(self) -> str:
        return ensure_image(self.client, self.labels)

    def _app_ip(self, cid: str) -> str:
        ip = self.proxy.app_ip(cid)
        if not ip:
            raise DeployError(f"container {self.cname}: {cid[:12]} has no address on {self.proxy.network}",
                              hint="the proxy reaches the app on that network; was it disconnected?")
        return ip

    def _join_proxy_network(self, c) -> str:
        """The address of ``c`` on the proxy's network, connecting it first
        (a container made before proxy mode, or by hand)."""
        ip = self.proxy.app_ip(c.id)
        if ip:
            return ip
        self.api.connect_container_to_network(c.id, self.proxy.network)
        return self._app_ip(c.id)

    def _reconcile_proxy(self, current) -> None:
        """Make the proxy serve NAME and stop what an interrupted deploy
        left running: the proxy may point at a candidate (killed after the
        switch, before the renames), and the previous version may still
        run (killed in the watch window)."""
        if current is None:
            return
        if current.status != "running":
            self.api.start(current.id)
        ip = self._join_proxy_network(current)
        self.proxy.ensure(self._proxy_image(), self.proxy.bindings(), ip)
        slot, addr, states = self.proxy.active()
        if addr != ip:
            log.warning("container %s: the proxy served %s, not %s: switching it back", self.cname, addr, ip)
            new_slot, old_slot, _, _ = self.proxy.switch(ip)
            self.proxy.persist(ip, new_slot)
            if old_slot:
                self.proxy.drain(old_slot, self.proxy_settings.drain)
        else:
            for s, st in states.items():
                if s != slot and st != "maint":
                    self.proxy.drain(s, self.proxy_settings.drain)
        for _, c in self._retired():
            if c.status == "running" and c.id != current.id:
                log.info("container %s: stopping %s, left running by an interrupted deploy", self.cname, c.name)
                self.api.update_container(c.id, restart_policy=NO_RESTART)
                self.api.stop(c.id, timeout=_stop_timeout(c))

    def _proxy_candidate(self, image: ImageRef, spec, labels) -> tuple[str, str, dict]:
        cid, gate = self._start_candidate(image, spec, labels, f"{self.cname}.next", final=True)
        return cid, self._app_ip(cid), gate

    def _proxy_create(self, image: ImageRef, spec, labels, bindings) -> dict[str, Any]:
        ref = self._proxy_image()
        self.proxy.ensure_network()
        with self._probes_on_engine_host(ref):
            cid, ip, gate = self._proxy_candidate(image, spec, labels)
        try:
            self.proxy.ensure(ref, bindings, ip)
            new_slot, old_slot, _, _ = self.proxy.switch(ip)
            self.proxy.persist(ip, new_slot)
        except Exception:
            self._remove(cid)
            raise
        self.api.rename(cid, self.cname)
        self.api.update_container(cid, restart_policy=spec["host_config"].get("RestartPolicy") or {"Name": "no"})
        if old_slot:
            self.proxy.drain(old_slot, self.proxy_settings.drain)
        return {"mode": "proxy", "id": cid[:12], "proxy": self.proxy.name, **gate}

    def _proxy_migrate(self, image: ImageRef, spec, labels, bindings, current) -> dict[str, Any]:
        """A target that published its ports itself: the only switch with a
        gap, from stopping the old container (which frees the ports) until
        the proxy has bound them."""
        ref = self._proxy_image()
        self.proxy.ensure_network()
        with self._probes_on_engine_host(ref):
            cid, ip, gate = self._proxy_candidate(image, spec, labels)
        try:
            pc = self.proxy.ensure(ref, bindings, ip, create_only=True)
        except Exception:
            self._remove(cid)
            raise
        retired, restart = self._retire(current)
        t_stop = self.clock()
        self.api.stop(current.id, timeout=_stop_timeout(current))
        try:
            self.proxy.start_created(pc)
        except Exception as exc:  # noqa: BLE001 - the proxy could not bind: put the old one back
            with contextlib.suppress(Exception):
                self.api.remove_container(pc.id, force=True)
            self._restore(current, retired, restart, cid)
            raise DeployError(f"container {self.cname}: the deploy proxy did not start: "
                              f"{getattr(exc, 'message', None) or exc}; the previous container was started again",
                              hint="or set 'switch: stop-first' on the target to keep publishing from the app"
                              ) from None
        t_ready = self.clock()
        self.api.rename(cid, self.cname)
        self.api.update_container(cid, restart_policy=restart)
        # The old container published the ports itself, so it cannot run
        # next to the proxy: it is kept, but a rollback to it is refused
        # with a hint to deploy its image instead.
        return {"mode": "proxy-migration", "id": cid[:12], "retired": retired, "proxy": self.proxy.name,
                "switch_ms": round((t_ready - t_stop) * 1000, 1), **gate}

    def _proxy_switch(self, image: ImageRef, spec, labels, bindings, current) -> dict[str, Any]:
        ref = self._proxy_image()
        old_ip = self._join_proxy_network(current)
        # A new proxy image or configuration (other ports, settings) is
        # applied first, by handover, still serving the current version.
        self.proxy.ensure(ref, bindings, old_ip)
        with self._probes_on_engine_host(ref):
            cid, ip, gate = self._proxy_candidate(image, spec, labels)
        t_switch = self.clock()
        try:
            new_slot, old_slot, base, _ = self.proxy.switch(ip)
        except Exception:
            self._remove(cid)
            raise
        t_switched = self.clock()
        proxy_api = self.proxy.last_api
        self.proxy.persist(ip, new_slot)
        retired, restart = self._retire(current)
        self.api.rename(cid, self.cname)
        self.api.update_container(cid, restart_policy=restart)
        watched = self._watch(new_slot, old_slot, base, t_switched)
        watched["base"] = base
        if watched["tripped"]:
            self._switch_back(cid, current, retired, restart, old_ip, watched)
        self.api.stop(current.id, timeout=_stop_timeout(current))
        return {"mode": "proxy", "id": cid[:12], "retired": retired, "proxy": self.proxy.name,
                "switch_ms": round((t_switched - t_switch) * 1000, 1), "drain_seconds": watched["drain_seconds"],
                "drain_left": watched["drain_left"], "watch_seconds": watched["watch_seconds"],
                "new_version": watched["counters"], "proxy_api": proxy_api, **gate}

    def _watch(self, new_slot: str, old_slot: str | None, base, t_switched: float) -> dict[str, Any]:
        """Drain the old slot and, for the watch window, read the new slot's
        counters; stop early when they pass the threshold."""
        st = self.proxy_settings
        drained = old_slot is None
        drain_seconds, left = 0.0, 0
        c = self.proxy.find()
        backends = self.proxy.backends(c)
        delta = counters_of({}, backends, new_slot)
        while True:
            stat = self.proxy.stat(c)
            now = self.clock()
            delta = counters_of(stat, backends, new_slot).minus(base)
            if tripped(delta, st):
                return {"tripped": True, "counters": delta.to_dict(), "drain_seconds": round(drain_seconds, 3),
                        "drain_left": left, "watch_seconds": round(now - t_switched, 3)}
            if not drained and old_slot is not None:
                left = counters_of(stat, backends, old_slot).sessions
                if left == 0 or now - t_switched >= st.drain:
                    # The old version keeps running (warm) until the window
                    # closes; it just gets no requests.
                    self.proxy.set_state(old_slot, "maint")
                    drained, drain_seconds = True, now - t_switched
            if drained and now - t_switched >= st.watch:
                return {"tripped": False, "counters": delta.to_dict(), "drain_seconds": round(drain_seconds, 3),
                        "drain_left": left, "watch_seconds": round(now - t_switched, 3)}
            self.sleep(0.05 if not drained else 0.2)

    def _switch_back(self, cid: str, current, retired: str, restart: dict, old_ip: str,
                     watched: dict[str, Any]) -> None:
        """Live errors in the window: the old version (still running) serves
        again, the new one is removed, the deploy fails."""
        t = self.clock()
        new_slot, bad_slot, _, _ = self.proxy.switch(old_ip)
        switched_back_ms = round((self.clock() - t) * 1000, 1)
        self.proxy.persist(old_ip, new_slot)
        self.api.rename(cid, f"{self.cname}.failed")
        self.api.rename(current.id, self.cname)
        self.api.update_container(current.id, restart_policy=restart)
        if bad_slot:
            self.proxy.drain(bad_slot, min(self.proxy_settings.drain, 10))
            # All it answered, including what came in while the switch back
            # was under way, not just what tripped the watch.
            watched["counters"] = self.proxy.counters(bad_slot).minus(watched["base"]).to_dict()
        logs = log_tail(self.api, cid, lines=20)
        self._remove(cid)
        n = watched["counters"]
        seq = _seq_of(current)
        message = "\n".join([
            f"container {self.cname}: the new version failed {n['errors_5xx'] + n['conn_errors']} "
            f"of {n['answers'] + n['conn_errors']} live requests within {watched['watch_seconds']:g}s of the switch "
            f"(5xx answers: {n['errors_5xx']}, connection errors: {n['conn_errors']}); switched back to the "
            f"previous version v{seq} in {switched_back_ms:g} ms",
            "last log lines of the new version:", _indent(logs or "(none)")])
        raise DeployError(message, hint="the previous version serves again. Fix the new version (see its log "
                          "lines) and deploy again", container=self.cname, switched_back=True,
                          counters=n, watch_seconds=watched["watch_seconds"], switched_back_ms=switched_back_ms)

    def _wait_answers(self, cid: str, ip: str, bindings) -> tuple[bool, str]:
        """A kept version that starts again: it passed its health gate when
        it was deployed, so here "it answers" is enough (fast, for a sub-
        second rollback): the HTTP probe at its address, else a TCP connect
        to its port.  The probe comes first and the container's state is
        read only after a failed one, every few looks (an exit ends the
        wait): a look costs one probe while the app starts."""
        wait, why = self._bounded(self.health_timeout)
        port = bindings[0].container_port if bindings else 0
        url = self._candidate_url(self.health_url, cid, {"host_config": {"PortBindings": {
            f"{b.container_port}/tcp": [{"HostPort": str(b.host_port)}] for b in bindings}}, "networks": {}}, ip=ip) \
            if self.health_url else None
        looks = [0]

        def look() -> tuple[bool | None, str]:
            if url:
                ok, detail = self._http_probe(url, 1.0)
            elif self._probe_via:
                ok, detail = self.proxy.probe_tcp(self._probe_via, ip, port, 1.0)
            else:
                try:
                    with socket.create_connection((ip, port), timeout=1.0):
                        ok, detail = True, f"{ip}:{port} accepts connections"
                except OSError as exc:
                    ok, detail = False, f"{ip}:{port}: {exc}"
            if ok:
                return True, detail
            looks[0] += 1
            if looks[0] % 5 == 1:
                state = self.api.inspect_container(cid)["State"]
                if not state.get("Running"):
                    return False, f"the container exited with code {state.get('ExitCode')}"
            return None, detail

        out = wait_for(look, lambda r: r[0] is not None, timeout=wait, interval=SWITCH_PROBE_INTERVAL,
                       clock=self.clock, sleep=self.sleep)
        verdict, detail = out.last
        if verdict is None:
            return False, f"did not answer within {wait:g}s{why}; last probe: {detail}"
        return verdict, detail

    def _proxy_rollback(self, current, target, pc) -> dict[str, Any]:
        """Start the kept container, switch the proxy to it once it answers,
        and retire the current one: renamed and told to stop once drained,
        not waited for.  What only reads (the proxy's state, its ports, how
        to reach its runtime API, the retired name) is done while the engine
        starts the kept container, and what follows the switch runs side by
        side: the switch itself is one runtime-API call."""
        t0 = self.clock()
        if target.attrs["HostConfig"].get("PortBindings"):
            raise DeployError(f"container {self.cname}: the kept version {target.name} publishes host ports itself "
                              "(it ran before the deploy proxy) and cannot run next to it",
                              hint=f"deploy its image instead: jenkinsctl deploy --image {_image_of(target)}")
        restart = (current.attrs["HostConfig"].get("RestartPolicy") if current is not None else None) \
            or {"Name": "unless-stopped", "MaximumRetryCount": 0}
        t_name = target.name
        if target.status == "running":
            # A kept version still running was told to stop (by a rollback
            # just before this one) or left by an interrupted run: either
            # way it may be on its way out.  Started afresh, it is known to
            # stay up.
            self.api.stop(target.id, timeout=_stop_timeout(target))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            started = pool.submit(self.api.start, target.id)
            bindings = self.proxy.bindings(pc)
            self.proxy.socket_dir()
            ahead = self.proxy.snapshot(pc)
            retired = self._retire_name(current) if current is not None else None
            started.result()
        ip = self._join_proxy_network(target)
        with self._probes_on_engine_host():
            ok, detail = self._wait_answers(target.id, ip, bindings)
        if not ok:
            message = self._failure_message(target.id, f"the kept version {t_name}", detail)
            with contextlib.suppress(Exception):
                self.api.stop(target.id, timeout=5)
            raise DeployError(message.replace("nothing was switched", "the current version still serves"),
                              container=self.cname, health=detail)
        t_ready = self.clock()
        # The old slot goes straight to maintenance: its sessions finish,
        # and the drain below is only a wait when the switch saw some left.
        new_slot, old_slot, _, left = self.proxy.switch(ip, pc, from_state="maint", ahead=ahead)
        t_switched = self.clock()
        proxy_api = self.proxy.last_api

        def free_name() -> None:
            if current is not None:
                self.api.rename(current.id, retired)

        def take_name(freed) -> None:
            # The engine serialises the calls on one container: the restart
            # policy is set while the current container gives up the name.
            self.api.update_container(target.id, restart_policy=restart)
            freed.result()
            self.api.rename(target.id, self.cname)

        def retire(freed) -> float:
            """Restart policy off first (a container that exits on its stop
            signal would otherwise be started again), then the drain (only
            when the switch saw sessions left), then its stop signal: the
            engine takes it down after this command returns.  One that
            ignores the signal is stopped by the next deploy, which stops
            every kept version left running."""
            freed.result()
            self.api.update_container(current.id, restart_policy=NO_RESTART)
            drained = self.proxy.drain(old_slot, self.proxy_settings.drain, container=pc)[0] \
                if old_slot and left else 0.0
            with contextlib.suppress(EngineError), engine_errors(f"stop {current.name}"):   # gone, or not running
                self.api.kill(current.id, signal=current.attrs["Config"].get("StopSignal") or "SIGTERM")
            return drained

        # Independent chains of engine calls at once: the names, the old
        # container's retirement, and the proxy's configuration rewritten so
        # a restart comes back to the kept version.  (Three workers: the two
        # that wait for the name to be free never hold up the one freeing it.)
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            freed = pool.submit(free_name)
            named = pool.submit(take_name, freed)
            retiring = pool.submit(retire, freed) if current is not None else None
            self.proxy.persist(ip, new_slot, pc)
            named.result()
            drained = retiring.result() if retiring is not None else 0.0
        return {"mode": "proxy", "from": t_name, "retired": retired, "proxy": self.proxy.name,
                "start_ms": round((t_ready - t0) * 1000, 1), "switch_ms": round((t_switched - t_ready) * 1000, 1),
                # From the call until the proxy sends requests to the kept version.
                "serving_ms": round((t_switched - t0) * 1000, 1),
                "drain_seconds": round(drained, 3), "health": "answers",
                # How the switch reached the proxy's runtime API: its admin
                # socket from this host, or docker exec in the proxy.
                "proxy_api": proxy_api}

    # --- housekeeping -------------------------------------------------------------------

    def _prune(self) -> list[str]:
        """Remove kept versions beyond ``keep``, oldest first; only stopped
        containers that carry this project's ownership labels."""
        removed = []
        kept = 0
        # Newest retirement first (when it was stopped), not highest seq:
        # after a rollback an old seq may be the one that served last.
        by_retirement = sorted(self._retired(), key=lambda sc: parse_time(sc[1].attrs["State"].get("FinishedAt")),
                               reverse=True)
        for _, c in by_retirement:
            if c.status == "running" or any(c.labels.get(k) != v for k, v in self.labels.items()):
                continue
            kept += 1
            if kept > self.target.keep:
                c.remove(force=True)
                removed.append(c.name)
        return removed

    def _remove(self, cid: str) -> None:
        with contextlib.suppress(EngineNotFound), engine_errors(f"remove container {cid}"):
            self.api.remove_container(cid, force=True)


# --- helpers ----------------------------------------------------------------------------


def _user_network(net: str) -> bool:
    return net not in BUILTIN_NETWORKS and not net.startswith("container:")


def _endpoint(ep: Mapping[str, Any], alias: str | None, static_ip: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    aliases = [a for a in (ep.get("Aliases") or []) if a != alias]
    if alias:
        out["Aliases"] = aliases + [alias]
    if static_ip and ep.get("IPAMConfig"):
        out["IPAMConfig"] = ep["IPAMConfig"]
    if ep.get("Links"):
        out["Links"] = ep["Links"]
    return out


def _seq_of(c) -> int | None:
    if c is None:
        return None
    raw = (c.labels or {}).get(SEQ_LABEL)
    return int(raw) if raw and raw.isdigit() else None


def _image_of(c) -> str:
    return (c.labels or {}).get(IMAGE_LABEL) or c.attrs["Config"].get("Image") or c.attrs.get("Image", "")


def _choose(retired: list[tuple[int, Any]], version: str | None, cur_seq: int | None):
    if version:
        v = version.lstrip("v")
        for seq, c in retired:
            img = _image_of(c)
            if (v.isdigit() and int(v) == seq) or c.name == version or img == version \
                    or (version.startswith("sha256:") and img.endswith("@" + version)) \
                    or (len(version) >= 7 and img.partition("@sha256:")[2].startswith(version)):
                return seq, c
        return None
    older = [(s, c) for s, c in retired if cur_seq is None or s < cur_seq]
    return older[0] if older else None


def _stop_timeout(c) -> int:
    t = c.attrs["Config"].get("StopTimeout")
    return int(t) if t is not None else 10


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
