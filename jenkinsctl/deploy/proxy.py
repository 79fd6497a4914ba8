"""The deploy proxy: HAProxy in front of a ``container`` target with host ports.

Two containers cannot publish the same host port, so a target with fixed
ports used to stop the old version before starting the new one (a gap of
about 1.3 s).  In proxy mode the ports belong to a proxy and the app
containers publish nothing; a deploy switches the proxy from one container
to the other while both run.

Choices, and why:

- **HAProxy from Debian** (2.6 in bookworm), built by jenkinsctl from
  ``resources/proxy`` and tagged by a hash of that directory, like the agent
  image: no registry needed, and a changed Dockerfile or entrypoint means a
  new image on the next deploy.  Its runtime API changes server addresses and
  states without a reload, and ``show stat`` gives per-server answer
  counters (``hrsp_5xx``, ``econ``, ``eresp``) for the watch window.
- **One proxy per target** (``NAME.proxy``): a target's deploys never touch
  another's proxy, a broken configuration or a crash is confined to one
  target, and ownership is plain (the proxy carries the target's name).
  The cost is one HAProxy process per target (about 10 MB).
- **Host network for the proxy.**  A proxy that published ports with
  ``-p`` could never be replaced without a gap (the new container cannot
  publish the same port while the old one holds it).  On the host network
  every proxy generation binds the ports itself, and a new generation takes
  the listening sockets over from the old one (``-x`` through the old one's
  admin socket, which ``expose-fd listeners`` allows; the socket lives in a
  volume the generations share), then the old one soft-stops (SIGUSR1: it
  finishes what is in flight).  So a new image or a new configuration is
  applied without refusing a connection.  Reaching the apps by their
  addresses on a private bridge network works from the host network, and
  loopback clients skip docker-proxy, the userland hop that ``-p`` adds on
  127.0.0.1.  (Rootless engines and Docker Desktop, where the host network
  is not the user's, are not supported by proxy mode: use
  ``switch: stop-first`` there.)
- **Two server slots per backend, ``a`` and ``b``**, addressed by IP.  A
  switch is one runtime-API call: point the idle slot at the candidate, make
  it ready, set the old slot to drain.  Draining lets in-flight requests and
  the connections the old server holds finish; new requests go to the new
  slot at once.  No HAProxy health checks: the candidate was gated by
  jenkinsctl directly (not through the proxy), and a check that starts from
  "down" after an address change would answer 503 for a moment.
  ``retry-on conn-failure empty-response`` with ``option redispatch`` covers
  an app that dies under the proxy.
- **The runtime API is reached with ``docker exec`` of socat** on the admin
  unix socket inside the proxy: it works wherever jenkinsctl can reach the
  engine (an agent in a container, DOCKER_HOST over ssh), the socket is
  never on a network, and several commands go in one call.  Measured on a
  loaded 2-core machine: a switch (state read + switch batch, two calls)
  takes 140-350 ms, median about 180-280 ms; requests keep flowing
  meanwhile, so this is not downtime, only deploy time.  When the engine
  runs right here (the bridge of ``NAME.net`` is an interface of this
  network namespace, see ``reachable_from_here``) the socket is opened
  directly instead, at the volume's ``Mountpoint`` on this host: a switch
  takes 1-5 ms (up to about 50 on the same loaded machine), most of what
  makes a rollback fast.  That directory is the
  engine's (root only, and the socket is mode 600): it works for root and
  is never made more open; for anyone else, or any other failure to open
  it, the batch and the rest of the run go through ``docker exec``.
- **Soft stop without resets:** ``option idle-close-on-response`` makes an
  old generation close an idle keep-alive client connection after its next
  answer (``Connection: close``) rather than at once, so a client that
  sends at that moment is not reset (without it, 5 of about 2000 requests
  had to be resent during a replacement under load; with it, none).
- **Probes from the engine's host when this process cannot reach the
  apps.**  A candidate is gated at its own address on ``NAME.net``.  With a
  tcp:// or ssh:// engine, an engine in another network namespace, or
  jenkinsctl in a container, that address is out of reach (and may even
  belong to another host's container on the same private subnet).  The
  network's bridge interface (``br-`` and 12 characters of its id) tells:
  present here, the probe is direct (about 1 ms); absent, it runs inside
  the proxy with socat (an HTTP/1.0 GET, or a TCP connect), or before the
  proxy runs in a sleeping container of the proxy image, removed after the
  gate.  A probe through ``docker exec`` costs about 30-250 ms, so it is
  used only where it is needed.
- **Rollback** starts the kept container, and once it answers, one
  runtime-API call switches to it, puts the old slot straight in
  maintenance (HAProxy ends no session of a server in maintenance, so
  in-flight requests finish) and reads the old slot's sessions.  Only when
  some are left does it wait for them (up to the drain time).  The old
  container is then told to stop (its stop signal) rather than waited for:
  nothing reaches it any more, and a `docker stop` would hold the command
  for the container's teardown.  One that ignores the signal is stopped by
  the next deploy, which stops every kept version left running.
- **The configuration lives in the proxy's volume**, one file per
  generation (``gN.cfg``, which the generation's ``haproxy.cfg`` links to),
  and is rewritten after every switch, so a restart (restart policy
  ``unless-stopped``, daemon restart, reboot) comes back to the version that
  served.  When the engine runs here the file is written in place (a rename
  over the old one, under a millisecond); otherwise, and for a proxy made
  before this layout (``haproxy.cfg`` a file in the container), it is copied
  in through the engine (``put_archive``: 40-400 ms, the tail of a rollback
  on a busy engine).  Every generation's entrypoint checks it with
  ``haproxy -c`` and exits with code 2 before binding anything if it is
  broken: a broken configuration never replaces a working proxy, and one
  generation's file is never another's.
- App addresses are IPs on the private network.  An app container that the
  engine restarts may get another address; the next deploy reconciles the
  proxy with what runs (``Proxy.active`` against the containers' addresses).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import hashlib
import io
import json
import logging
import os
import pathlib
import re
import socket
import tarfile
import time
import urllib.parse
from typing import Any, Callable, Iterable, Mapping

from jenkinsctl.engine import engine_errors, log_tail
from jenkinsctl.errors import BuildError, DeployError, EngineError, EngineNotFound
from jenkinsctl.poll import wait_for
from jenkinsctl.resources import resource_path
from jenkinsctl.secrets import display_url

log = logging.getLogger("jenkinsctl.deploy")

REPOSITORY = "jenkinsctl/deploy-proxy"
DEFAULT_BASE = "debian:bookworm-slim"
PROXY_LABEL = "io.jenkinsctl.deploy-proxy"         # on the proxy, its network and volume: the target's name
PORTS_LABEL = "io.jenkinsctl.proxy-ports"          # the bindings, JSON: what the proxy publishes
GEN_LABEL = "io.jenkinsctl.proxy-generation"       # admin socket name: one per generation
STATIC_LABEL = "io.jenkinsctl.proxy-config"        # hash of image + config without the addresses
CFG_FILE_LABEL = "io.jenkinsctl.proxy-config-file"  # the generation's configuration, in the volume
CFG_DIR = "/usr/local/etc/haproxy"
RUN_DIR = "/run/haproxy"
SLOTS = ("a", "b")

# Admin-state bits of `show servers state` (HAProxy's srv_admin enum).  Not
# 0x04 (CMAINT, "disabled" in the configuration): it stays set after the
# runtime API made the server ready, which then serves.
_MAINT_BITS = 0x01 | 0x02 | 0x20 | 0x40   # forced, inherited, resolution, hostname maintenance
_DRAIN_BITS = 0x08 | 0x10


@dataclasses.dataclass(frozen=True)
class Binding:
    """One published port: host_ip:host_port on the proxy -> container_port
    of the app."""

    host_ip: str
    host_port: int
    container_port: int

    @property
    def backend(self) -> str:
        return f"p{self.container_port}"

    @property
    def bind(self) -> str:
        ip = self.host_ip or ""
        if ip in ("", "0.0.0.0"):
            return f":{self.host_port}"
        if ":" in ip:
            return f"[{ip}]:{self.host_port}"
        return f"{ip}:{self.host_port}"

    def to_port_binding(self) -> tuple[str, dict[str, str]]:
        return f"{self.container_port}/tcp", {"HostIp": self.host_ip, "HostPort": str(self.host_port)}


def bindings_from_port_bindings(port_bindings: Mapping[str, Any] | None) -> list[Binding]:
    """Docker's HostConfig.PortBindings as Bindings; UDP cannot go through
    the proxy and is refused with a hint."""
    out = []
    for cport, binds in sorted((port_bindings or {}).items()):
        port, _, proto = cport.partition("/")
        if (proto or "tcp") != "tcp":
            raise DeployError(f"port {cport} is {proto}: the deploy proxy forwards TCP only",
                              hint="set 'switch: stop-first' on this target to publish it from the app container")
        for b in binds or []:
            if not str(b.get("HostPort") or "").isdigit():
                raise DeployError(f"port {cport} is published on a random host port: the deploy proxy needs a "
                                  "fixed one", hint="publish HOST_PORT:CONTAINER_PORT, or set 'switch: stop-first'")
            out.append(Binding(b.get("HostIp") or "", int(b["HostPort"]), int(port)))
    return sorted(set(out), key=lambda b: (b.container_port, b.host_port, b.host_ip))


def port_bindings_of(bindings: Iterable[Binding]) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for b in bindings:
        key, val = b.to_port_binding()
        out.setdefault(key, []).append(val)
    return out


@dataclasses.dataclass(frozen=True)
class ProxySettings:
    """The target's ``proxy:`` keys (schema: resources/schemas/config.schema.json)."""

    mode: str = "http"              # http (answers counted, 5xx watched) or tcp (connection errors only)
    watch: float = 30.0             # seconds after a switch during which live errors switch back
    drain: float = 30.0             # seconds the old version gets to finish its requests
    max_error_rate: float = 0.1     # share of the new version's answers that may fail in the window
    min_errors: int = 3             # ... and at least this many failures before switching back


# --- the configuration ------------------------------------------------------------


def render_config(bindings: list[Binding], settings: ProxySettings, generation: int,
                  active: str | None, slot: str = "a") -> str:
    """haproxy.cfg for ``bindings``; slot ``slot`` of every backend points at
    ``active`` (an IP, or None for "nothing yet"), the other slot is in
    maintenance."""
    hard_stop = int(max(settings.drain, 1)) + 5
    lines = [
        "# Written by jenkinsctl: the deploy proxy of one container target.",
        "# Changes made here are overwritten by the next deploy.",
        "global",
        f"    stats socket {RUN_DIR}/g{generation}.sock mode 600 level admin expose-fd listeners",
        "    stats timeout 30s",
        # No maxconn: HAProxy derives it from the container's file limit
        # (a fixed one above that limit makes it refuse to start).
        # A soft stop (a newer generation took over, or `docker stop`) waits
        # for in-flight requests this long at most.
        f"    hard-stop-after {hard_stop}s",
        "defaults",
        f"    mode {settings.mode}",
        "    timeout connect 3s",
        "    timeout client 120s",
        "    timeout server 120s",
        "    timeout queue 10s",
        "    retries 3",
        "    option redispatch 1",
    ]
    if settings.mode == "http":
        lines += ["    timeout http-request 30s",
                  "    timeout http-keep-alive 60s",
                  "    retry-on conn-failure empty-response",
                  # On a soft stop (a newer generation took over) an idle
                  # keep-alive connection is closed after its next answer
                  # ("Connection: close"), not at once: a client sending on
                  # it at that moment would see it reset.
                  "    option idle-close-on-response"]
    for port in sorted({b.container_port for b in bindings}):
        name = f"p{port}"
        lines += ["", f"frontend {name}"]
        lines += [f"    bind {b.bind}" for b in bindings if b.container_port == port]
        lines += [f"    default_backend {name}", "", f"backend {name}"]
        for s in SLOTS:
            if s == slot and active:
                lines.append(f"    server {s} {active}:{port}")
            else:
                # A placeholder address the runtime API replaces on a switch.
                lines.append(f"    server {s} 127.0.0.1:{port} disabled")
    return "\n".join(lines) + "\n"


def static_hash(bindings: list[Binding], settings: ProxySettings, image_id: str) -> str:
    """What makes a new proxy generation necessary: the image and the
    configuration apart from which app it points at."""
    # The layout is part of it: a proxy whose configuration is a file in
    # the container is replaced once (by handover) by one that keeps it in
    # the volume.
    text = render_config(bindings, settings, 0, None) + image_id + "\nconfiguration in the volume"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def runtime_switch_commands(backends: Iterable[str], to_slot: str, ip: str, port_of: Mapping[str, int],
                            from_slot: str | None, from_state: str = "drain") -> list[str]:
    """One runtime-API batch that sends new requests to ``ip`` through
    ``to_slot`` and lets ``from_slot`` drain.  ``from_state`` "maint" does
    that too (HAProxy ends no session of a server put in maintenance; only
    "shutdown sessions" would) and saves the later step to maintenance."""
    cmds = []
    for be in backends:
        cmds += [f"set server {be}/{to_slot} addr {ip} port {port_of[be]}",
                 f"set server {be}/{to_slot} state ready"]
    if from_slot:
        cmds += [f"set server {be}/{from_slot} state {from_state}" for be in backends]
    return cmds


def parse_stat(text: str) -> dict[tuple[str, str], dict[str, str]]:
    """`show stat` CSV -> {(proxy, server): row}."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("# "):
        return {}
    reader = csv.DictReader(io.StringIO("\n".join([lines[0][2:]] + lines[1:])))
    return {(r["pxname"], r["svname"]): r for r in reader}


def parse_servers_state(text: str) -> dict[tuple[str, str], dict[str, str]]:
    """`show servers state` -> {(backend, server): fields}."""
    header: list[str] = []
    out = {}
    for ln in text.splitlines():
        if ln.startswith("# "):
            header = ln[2:].split()
        elif header and ln.strip() and not ln.strip().isdigit():
            fields = dict(zip(header, ln.split()))
            out[(fields.get("be_name", ""), fields.get("srv_name", ""))] = fields
    return out


@dataclasses.dataclass
class Counters:
    """One server slot's answers, summed over the backends."""

    answers: int = 0
    errors_5xx: int = 0
    conn_errors: int = 0      # econ + eresp: refused, reset, or no answer
    sessions: int = 0         # current (scur)

    @property
    def failed(self) -> int:
        return self.errors_5xx + self.conn_errors

    def minus(self, base: "Counters") -> "Counters":
        return Counters(self.answers - base.answers, self.errors_5xx - base.errors_5xx,
                        self.conn_errors - base.conn_errors, self.sessions)

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def counters_of(stat: Mapping[tuple[str, str], Mapping[str, str]], backends: Iterable[str], slot: str) -> Counters:
    def n(row: Mapping[str, str], key: str) -> int:
        v = row.get(key) or "0"
        return int(v) if v.isdigit() else 0

    c = Counters()
    for be in backends:
        row = stat.get((be, slot))
        if not row:
            continue
        c.answers += sum(n(row, f"hrsp_{k}") for k in ("1xx", "2xx", "3xx", "4xx", "5xx", "other"))
        c.errors_5xx += n(row, "hrsp_5xx")
        c.conn_errors += n(row, "econ") + n(row, "eresp")
        c.sessions += n(row, "scur")
    return c


def tripped(delta: Counters, settings: ProxySettings) -> bool:
    """True when the new version failed enough of its answers in the window
    to be switched back."""
    total = max(delta.answers + delta.conn_errors, 1)
    return delta.failed >= settings.min_errors and delta.failed / total > settings.max_error_rate


def tar_files(files: Mapping[str, str], mode: int = 0o644, links: Mapping[str, str] | None = None) -> bytes:
    """A tar of ``files`` (name -> text) and symbolic ``links`` (name ->
    target), for put_archive."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, int(time.time())
            tar.addfile(info)
    return buf.getvalue()


def exec_argv(socket_path: str, commands: list[str]) -> list[str]:
    """The argv run inside the proxy for one runtime-API batch: the commands
    go as one ';'-separated line on the admin socket."""
    return ["sh", "-c", 'printf "%s\\n" "$1" | socat -t 5 - "UNIX-CONNECT:$2"', "jenkinsctl-proxy",
            "; ".join(commands), socket_path]


def probe_http_argv(url: str, timeout: float) -> list[str]:
    """The argv run inside the proxy to GET ``url`` (an app's address on the
    target's network) with socat: one HTTP/1.0 request, the answer's first
    4 KiB on stdout, socat's own error on stderr (merged)."""
    u = urllib.parse.urlsplit(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    t = f"{max(timeout, 0.2):g}"
    addr = f"OPENSSL:{u.hostname}:{port},verify=0" if u.scheme == "https" else f"TCP:{u.hostname}:{port}"
    request = (f"GET {path} HTTP/1.0\r\nHost: {u.netloc.rpartition('@')[2]}\r\nUser-Agent: jenkinsctl-health"
               "\r\nConnection: close\r\n\r\n")
    return ["sh", "-c", 'printf "%s" "$1" | socat -t "$3" -T "$3" - "$2" 2>&1 | head -c 4096', "jenkinsctl-probe",
            request, f"{addr},connect-timeout={t}", t]


def probe_tcp_argv(host: str, port: int, timeout: float) -> list[str]:
    """The argv run inside the proxy to check that ``host:port`` accepts a
    connection: prints the marker only when socat connected."""
    t = f"{max(timeout, 0.2):g}"
    return ["sh", "-c", 'socat -T "$2" /dev/null "$1" 2>&1 && echo jenkinsctl-probe-ok', "jenkinsctl-probe",
            f"TCP:{host}:{port},connect-timeout={t}", t]


def parse_probe_http(url: str, out: str) -> tuple[bool, str]:
    """What probe_http_argv printed, as http_probe's (ok, what happened)."""
    head, _, body = out.partition("\r\n\r\n")
    m = re.match(r"HTTP/\d(?:\.\d)?\s+(\d{3})", head)
    if not m:
        return False, f"GET {display_url(url)} failed: {out.strip()[:300] or 'no answer'} (probed from the proxy)"
    status = int(m.group(1))
    return 200 <= status < 400, f"GET {display_url(url)} -> {status}: {body.strip()[:500]}"


_SOCAT_ERROR = re.compile(r"socat\[\d+\] E |exec failed|executable file not found")
_CLI_ERRORS = re.compile(r"(?im)^(unknown command|no such (backend|server)|require |invalid |.*: not found|"
                         r"permission denied|can't |cannot )")


# --- the image ------------------------------------------------------------------------


def image_reference(base: str = DEFAULT_BASE) -> str:
    src = resource_path("proxy")
    h = hashlib.sha256(f"base {base}\n".encode())
    for path in sorted(p for p in pathlib.Path(src).rglob("*") if p.is_file()):
        h.update(path.relative_to(src).as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return f"{REPOSITORY}:{h.hexdigest()[:12]}"


def ensure_image(client, labels: Mapping[str, str], base: str = DEFAULT_BASE) -> str:
    """The proxy image, built from resources/proxy when this engine lacks
    the tag for its content hash; returns the reference.  ``labels`` are
    the deploy's own (they carry its role)."""
    ref = image_reference(base)
    try:
        with engine_errors(f"inspect image {ref}"):
            client.images.get(ref)
        return ref
    except EngineNotFound:
        pass
    log.info("building the deploy proxy image %s", ref)
    tail: list[str] = []
    with engine_errors("deploy proxy image build"):
        for chunk in client.api.build(path=str(resource_path("proxy")), tag=ref, buildargs={"BASE_IMAGE": base},
                                      rm=True, forcerm=True, pull=False, decode=True, labels=dict(labels)):
            if "error" in chunk or "errorDetail" in chunk:
                msg = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error")
                raise BuildError(f"deploy proxy image build failed: {msg}", hint="\n".join(tail[-10:]) or None)
            line = (chunk.get("stream") or "").rstrip()
            if line:
                tail = (tail + [line])[-20:]
    return ref


# --- one target's proxy ----------------------------------------------------------------


class Proxy:
    """The proxy of container target ``cname``: ``NAME.proxy`` on the host
    network, the private network ``NAME.net`` its apps join, and the volume
    ``NAME.proxy-run`` that holds the admin sockets."""

    def __init__(self, client, cname: str, labels: Mapping[str, str], settings: ProxySettings, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.api = client.api
        self.cname = cname
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.name = f"{cname}.proxy"
        self.network = f"{cname}.net"
        self.volume = f"{cname}.proxy-run"
        self.labels = {**labels, PROXY_LABEL: cname}   # ``labels`` carry the deploy role
        # Whether this process reaches the apps on NAME.net (None: not
        # known yet) and, when it does, where the admin sockets are on this
        # host (the volume's Mountpoint; None: not asked yet, "": no
        # socket from here for the rest of this run).
        self._reachable: bool | None = None
        self._run_dir: str | None = None
        # How the last runtime-API batch reached the proxy: "socket" (from
        # here) or "exec" (docker exec of socat in the proxy).
        self.last_api: str | None = None

    # --- finding ---------------------------------------------------------------

    def find(self):
        for name in (self.name, f"{self.name}-next"):
            try:
                with engine_errors(f"inspect container {name}"):
                    c = self.client.containers.get(name)
            except EngineNotFound:
                continue
            if c.name != name:
                continue
            if name != self.name:
                if c.status != "running":
                    continue
                # A run killed in the middle of a handover: the new
                # generation serves but was not named yet.
                log.warning("deploy proxy %s: taking over %s left by an interrupted run", self.name, name)
                self.api.rename(c.id, self.name)
                c.reload()
            return c
        return None

    def bindings(self, container=None) -> list[Binding]:
        c = container or self.find()
        if c is None:
            return []
        raw = c.labels.get(PORTS_LABEL) or "[]"
        return [Binding(*b) for b in json.loads(raw)]

    def ensure_network(self) -> None:
        try:
            with engine_errors(f"inspect network {self.network}"):
                self.client.networks.get(self.network)
        except EngineNotFound:
            log.info("creating network %s for the deploy proxy", self.network)
            self.client.networks.create(self.network, driver="bridge", labels=self.labels, check_duplicate=True)

    def app_ip(self, container_id: str) -> str | None:
        attrs = self.api.inspect_container(container_id)
        ep = (attrs["NetworkSettings"].get("Networks") or {}).get(self.network) or {}
        return ep.get("IPAddress") or None

    # --- probing the apps ------------------------------------------------------------

    def reachable_from_here(self) -> bool:
        """True when this process can reach addresses on the target's
        network: it shares the network namespace of the engine's host, where
        the network's bridge (``br-`` and the first 12 characters of its id)
        is an interface.  Not so for a tcp:// or ssh:// engine, an engine in
        another network namespace, or jenkinsctl in a container (Docker keeps
        bridge networks apart).  A random id cannot match by chance, and an
        address that merely looks routable could reach another host's
        container on the same private subnet."""
        if self._reachable is None:
            try:
                with engine_errors(f"inspect network {self.network}"):
                    net = self.api.inspect_network(self.network)
            except EngineNotFound:
                return False    # not yet (or no longer): asked again once it exists
            name = (net.get("Options") or {}).get("com.docker.network.bridge.name") or f"br-{net['Id'][:12]}"
            self._reachable = pathlib.Path("/sys/class/net", name).exists()
        return self._reachable

    def start_prober(self, image: str) -> str:
        """A container on the engine's host network that only sleeps, to
        probe apps from before the proxy itself runs (a first deploy, a
        migration).  Bounded by its own sleep in case this run dies."""
        name = f"{self.cname}.probe"
        with_suppressed_notfound(lambda: self.api.remove_container(name, force=True))
        body = {"Image": image, "Entrypoint": ["sleep", "600"], "Cmd": [], "Labels": self.labels,
                "HostConfig": {"NetworkMode": "host", "AutoRemove": True}}
        cid = self.api.create_container_from_config(body, name)["Id"]
        self.api.start(cid)
        return cid

    def remove_prober(self, cid: str) -> None:
        with_suppressed_notfound(lambda: self.api.remove_container(cid, force=True))

    def _exec(self, cid: str, argv: list[str]) -> str:
        ex = self.api.exec_create(cid, argv, stdout=True, stderr=True)
        return self.api.exec_start(ex["Id"]).decode("utf-8", errors="replace")

    def probe_http(self, via: str, url: str, timeout: float) -> tuple[bool, str]:
        """http_probe's answer for ``url``, asked from inside container ``via``."""
        return parse_probe_http(url, self._exec(via, probe_http_argv(url, timeout)))

    def probe_tcp(self, via: str, host: str, port: int, timeout: float) -> tuple[bool, str]:
        out = self._exec(via, probe_tcp_argv(host, port, timeout))
        if "jenkinsctl-probe-ok" in out:
            return True, f"{host}:{port} accepts connections"
        return False, f"{host}:{port}: {out.strip()[:300] or 'no connection'} (probed from the proxy)"

    # --- the runtime API ------------------------------------------------------------

    def _socket(self, c) -> str:
        return f"{RUN_DIR}/g{c.labels.get(GEN_LABEL, '1')}.sock"

    def runtime(self, commands: list[str], container=None) -> str:
        c = container or self.find()
        if c is None:
            raise DeployError(f"container {self.cname}: its deploy proxy {self.name} is gone",
                              hint="deploy again: the proxy is recreated")
        out = self._runtime_here(c, commands) if self.socket_dir() else None
        if out is None:
            # No exec_inspect for the exit code (one more round trip per
            # call): socat reports a failed connect on stderr, read here too.
            ex = self.api.exec_create(c.id, exec_argv(self._socket(c), commands), stdout=True, stderr=True)
            out = self.api.exec_start(ex["Id"]).decode("utf-8", errors="replace")
            self.last_api = "exec"
        else:
            self.last_api = "socket"
        if _CLI_ERRORS.search(out) or _SOCAT_ERROR.search(out):
            raise DeployError(f"container {self.cname}: the proxy refused '{'; '.join(commands)[:200]}': "
                              f"{out.strip()[:500]}", hint=f"see 'docker logs {self.name}'")
        return out

    def socket_dir(self) -> str:
        """The directory on this host that holds the admin sockets, or ""
        when the runtime API is not reached from here (see the module
        docstring).  Decided once per run; a rollback asks while the engine
        starts the kept container, so its switch finds it known."""
        if self._run_dir is None:
            if not self.reachable_from_here():
                return ""   # decided once NAME.net exists; until then through docker exec
            try:
                with engine_errors(f"inspect volume {self.volume}"):
                    self._run_dir = self.api.inspect_volume(self.volume).get("Mountpoint") or ""
            except EngineNotFound:
                return ""   # not yet created: asked again once it is
        return self._run_dir

    def _runtime_here(self, c, commands: list[str]) -> str | None:
        """One batch on the admin socket from this process; None when the
        socket cannot be opened from here.  A socket not there yet (in a
        directory that is) or not listening is a proxy still starting: this
        batch goes through docker exec, the next one is tried here again.
        Any other failure (not root, the volume's directory not visible in
        this mount namespace, a path too long for a unix socket, no answer
        in time) sends this batch and the rest of the run through docker
        exec.  Every batch is idempotent, so one cut off half-way may be
        sent again."""
        run_dir = self._run_dir or ""
        path = f"{run_dir}/{self._socket(c).rpartition('/')[2]}"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect(path)
                sock.sendall(("; ".join(commands) + "\n").encode())
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            if os.path.isdir(run_dir):
                return None
            log.info("deploy proxy %s: its admin socket cannot be opened from here (%s is not visible: %s); "
                     "using docker exec", self.name, run_dir, exc.strerror)
            self._run_dir = ""
            return None
        except OSError as exc:
            log.info("deploy proxy %s: its admin socket cannot be opened from here (%s); using docker exec",
                     self.name, exc)
            self._run_dir = ""
            return None
        return b"".join(chunks).decode("utf-8", errors="replace")

    def stat(self, container=None) -> dict[tuple[str, str], dict[str, str]]:
        return parse_stat(self.runtime(["show stat"], container))

    def servers(self, container=None) -> dict[tuple[str, str], dict[str, str]]:
        return parse_servers_state(self.runtime(["show servers state"], container))

    def snapshot(self, container=None) -> tuple[dict, dict]:
        """(`show servers state`, `show stat`) in one call."""
        out = self.runtime(["show servers state", "show stat"], container)
        cut = out.find("# pxname")
        return parse_servers_state(out[:cut] if cut >= 0 else out), parse_stat(out[cut:] if cut >= 0 else "")

    def active(self, container=None, state: dict | None = None) -> tuple[str | None, str | None, dict[str, str]]:
        """(ready slot, its address, {slot: state}) from the first backend;
        all backends are switched together."""
        state = self.servers(container) if state is None else state
        slots: dict[str, tuple[str, str]] = {}
        for (_, srv), f in sorted(state.items()):
            if srv in SLOTS and srv not in slots:
                admin = int(f.get("srv_admin_state", "0") or 0)
                st = "maint" if admin & _MAINT_BITS else "drain" if admin & _DRAIN_BITS else "ready"
                slots[srv] = (st, f.get("srv_addr", ""))
        ready = [s for s, (st, _) in slots.items() if st == "ready"]
        slot = ready[0] if ready else None
        return slot, (slots[slot][1] if slot else None), {s: st for s, (st, _) in slots.items()}

    def backends(self, container=None) -> list[str]:
        return sorted({b.backend for b in self.bindings(container)})

    def _ports(self, container=None) -> dict[str, int]:
        return {b.backend: b.container_port for b in self.bindings(container)}

    def switch(self, ip: str, container=None, *, from_state: str = "drain",
               ahead: tuple[dict, dict] | None = None) -> tuple[str, str | None, Counters, int]:
        """Send new requests to ``ip``; the slot that served drains.
        Returns (new slot, old slot, new slot's counters before, sessions
        the old slot still had just after the switch, read in the same
        runtime-API call).  ``ahead`` is a ``snapshot`` read earlier under
        the target's lock (nothing else switches this proxy meanwhile): the
        switch is then one runtime-API call."""
        c = container or self.find()
        servers, stat = self.snapshot(c) if ahead is None else ahead
        slot, addr, _ = self.active(c, servers)
        if slot is not None and addr == ip:
            to_slot, from_slot = slot, None
        else:
            to_slot = "b" if slot == "a" else "a"
            from_slot = slot
        backends = self.backends(c)
        base = counters_of(stat, backends, to_slot)
        out = self.runtime(runtime_switch_commands(backends, to_slot, ip, self._ports(c), from_slot, from_state)
                           + ["show stat"], c)
        cut = out.find("# pxname")
        left = counters_of(parse_stat(out[cut:]), backends, from_slot).sessions if from_slot and cut >= 0 else 0
        return to_slot, from_slot, base, left

    def set_state(self, slot: str, state: str, container=None) -> None:
        c = container or self.find()
        self.runtime([f"set server {be}/{slot} state {state}" for be in self.backends(c)], c)

    def counters(self, slot: str, container=None) -> Counters:
        c = container or self.find()
        return counters_of(self.stat(c), self.backends(c), slot)

    def drain(self, slot: str, timeout: float, poll: float = 0.05, container=None) -> tuple[float, int]:
        """Wait until ``slot`` has no current sessions, up to ``timeout``;
        then put it in maintenance.  Returns (seconds, sessions left)."""
        c = container or self.find()
        backends = self.backends(c)
        waited = wait_for(lambda: counters_of(self.stat(c), backends, slot).sessions, lambda n: n == 0,
                          timeout=timeout, interval=poll, clock=self.clock, sleep=self.sleep)
        self.set_state(slot, "maint", c)
        return waited.elapsed, waited.last

    def persist(self, ip: str, slot: str, container=None) -> None:
        """Rewrite the proxy's configuration to what it now serves, so a
        restart comes back to it."""
        c = container or self.find()
        gen = int(c.labels.get(GEN_LABEL, "1"))
        text = render_config(self.bindings(c), self.settings, gen, ip, slot)
        if c.labels.get(CFG_FILE_LABEL):
            self._write_config(c.id, c.labels[CFG_FILE_LABEL], text)
        else:   # made before the configuration moved to the volume
            self.api.put_archive(c.id, CFG_DIR, tar_files({"haproxy.cfg": text, "takeover": ""}))

    def _write_config(self, cid: str, path: str, text: str) -> None:
        """The configuration file ``path`` (in the volume, as the proxy sees
        it): written here when the volume's directory is (see socket_dir),
        by a rename over the old file so a restart never reads half of it;
        else copied in through the engine."""
        directory, _, name = path.rpartition("/")
        run_dir = self.socket_dir()
        if run_dir:
            tmp = f"{run_dir}/.{name}.{os.getpid()}.tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                os.replace(tmp, f"{run_dir}/{name}")
                return
            except OSError as exc:
                log.info("deploy proxy %s: cannot write its configuration in %s from here (%s); copying it in "
                         "through the engine", self.name, run_dir, exc)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                self._run_dir = ""
        self.api.put_archive(cid, directory, tar_files({name: text}))

    # --- creating and replacing -----------------------------------------------------------

    def ensure(self, image: str, bindings: list[Binding], active_ip: str | None, *, create_only: bool = False):
        """The running proxy for ``bindings`` and ``image``, pointing at
        ``active_ip``.  A proxy with another image or configuration is
        replaced without refusing a connection (see the module docstring).
        With ``create_only``, a missing proxy is created but not started
        (the migration starts it once the old app let go of the ports)."""

        self.ensure_network()
        self._ensure_volume()
        image_id = self.client.images.get(image).id
        want = static_hash(bindings, self.settings, image_id)
        current = self.find()
        if current is not None and current.labels.get(STATIC_LABEL) == want:
            if current.status != "running":
                self.api.start(current.id)
                self._wait_up(current.id)
            return current
        slot = "a"
        if current is not None and current.status == "running":
            try:
                s, addr, _ = self.active(current)
                if s and addr and active_ip is None:
                    active_ip = addr
                slot = s or "a"
            except DeployError:
                pass
        gen = int(current.labels.get(GEN_LABEL, "0")) + 1 if current is not None else 1
        name = self.name if current is None else f"{self.name}-next"
        with_suppressed_notfound(lambda: self.api.remove_container(f"{self.name}-next", force=True))
        cfg_file = f"{RUN_DIR}/g{gen}.cfg"
        labels = {**self.labels, GEN_LABEL: str(gen), STATIC_LABEL: want, CFG_FILE_LABEL: cfg_file,
                  PORTS_LABEL: json.dumps([dataclasses.astuple(b) for b in bindings])}
        body = {"Image": image, "Labels": labels, "StopSignal": "SIGUSR1",
                "HostConfig": {"NetworkMode": "host",
                               "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
                               "Binds": [f"{self.volume}:{RUN_DIR}"]},
                # `docker stop` sends SIGUSR1 (soft stop): allow the drain.
                "StopTimeout": int(self.settings.drain) + 10}
        cid = self.api.create_container_from_config(body, name)["Id"]
        takeover = self._socket(current) if current is not None and current.status == "running" else ""
        self._write_config(cid, cfg_file, render_config(bindings, self.settings, gen, active_ip, slot))
        self.api.put_archive(cid, CFG_DIR, tar_files({"takeover": takeover}, links={"haproxy.cfg": cfg_file}))
        if create_only and current is None:
            return self.client.containers.get(cid)
        self.api.start(cid)
        try:
            self._wait_up(cid)
        except DeployError:
            with_suppressed_notfound(lambda: self.api.remove_container(cid, force=True))
            raise
        if current is not None:
            # The new generation holds the listening sockets now: the old
            # one stops accepting and finishes its requests (SIGUSR1, soft
            # stop; no restart policy, or the engine would start it again).
            # Idle keep-alive clients keep it for up to hard-stop-after: it
            # is not waited for beyond a few seconds, only renamed out of
            # the way and removed by a later deploy once it has exited.
            if current.status == "running":
                self.api.update_container(current.id, restart_policy={"Name": "no", "MaximumRetryCount": 0})
                with_suppressed_notfound(lambda: self.api.kill(current.id, signal="SIGUSR1"))
                self.api.rename(current.id, f"{self.name}-g{current.labels.get(GEN_LABEL, '1')}")
            else:
                with_suppressed_notfound(lambda: self.api.remove_container(current.id, force=True))
            self.api.rename(cid, self.name)
            self._remove_exited_generations(wait=5.0)
        new = self.client.containers.get(cid)
        # A restart of this generation must not look for the old socket.
        self.api.put_archive(cid, CFG_DIR, tar_files({"takeover": ""}))
        return new

    def _remove_exited_generations(self, wait: float = 0.0) -> None:
        """Older proxy generations that have finished their soft stop."""
        deadline = self.clock() + wait
        while True:
            old = [c for c in self.client.containers.list(all=True, filters={"label": f"{PROXY_LABEL}={self.cname}"})
                   if c.name.startswith(f"{self.name}-g")]
            for c in old:
                if c.status != "running":
                    with_suppressed_notfound(functools.partial(c.remove, force=True))
            if all(c.status != "running" for c in old) or self.clock() >= deadline:
                return
            self.sleep(0.1)

    def start_created(self, container) -> None:
        self.api.start(container.id)
        self._wait_up(container.id)

    def _wait_up(self, cid: str, timeout: float = 15) -> None:
        """Until the proxy answers on its admin socket; a configuration the
        entrypoint refused (exit 2) or a bind failure fails at once."""
        deadline = self.clock() + timeout
        c = self.client.containers.get(cid)
        while True:
            attrs = self.api.inspect_container(cid)
            if not attrs["State"].get("Running") or attrs["State"].get("Restarting"):
                logs = log_tail(self.api, cid, lines=15).strip()
                code = attrs["State"].get("ExitCode")
                what = "its configuration is invalid" if code == 2 else f"it exited with code {code}"
                raise DeployError(f"container {self.cname}: the deploy proxy did not start: {what}; the proxy "
                                  f"that served (if any) still does\nproxy log:\n{logs}",
                                  hint="check that nothing else holds the target's host ports")
            try:
                with engine_errors(f"ask the deploy proxy {self.name}"):
                    self.runtime(["show info"], c)
                return
            except (DeployError, EngineError):
                pass
            if self.clock() >= deadline:
                raise DeployError(f"container {self.cname}: the deploy proxy did not answer within {timeout:g}s")
            self.sleep(0.05)

    def _ensure_volume(self) -> None:
        try:
            with engine_errors(f"inspect volume {self.volume}"):
                self.client.volumes.get(self.volume)
        except EngineNotFound:
            self.client.volumes.create(self.volume, labels=self.labels)

    def remove(self) -> None:
        """The proxy, its network and volume (for tests and teardown)."""
        for c in self.client.containers.list(all=True, filters={"label": f"{PROXY_LABEL}={self.cname}"}):
            _quietly(functools.partial(c.remove, force=True))
        try:
            with engine_errors(f"inspect network {self.network}"):
                net = self.client.networks.get(self.network)
                net.reload()
                for c in net.containers:
                    _quietly(functools.partial(net.disconnect, c, force=True))
                _quietly(net.remove)
        except EngineNotFound:
            pass
        _quietly(lambda: self.client.volumes.get(self.volume).remove(force=True))


def with_suppressed_notfound(fn: Callable[[], Any]) -> Any:
    try:
        with engine_errors("engine call"):
            return fn()
    except EngineNotFound:
        return None


def _quietly(fn: Callable[[], Any]) -> Any:
    """For teardown: a resource already gone or still in use is left."""
    try:
        with engine_errors("teardown"):
            return fn()
    except EngineError:
        return None
