"""A second, current Docker engine for tests: Debian 13's dockerd 26.1 with
``DOCKER_MIN_API_VERSION=1.44``, so it refuses API 1.41 clients exactly as
Docker 29 does.

Why it runs the way it does (each trap was hit on these machines):

* Privileged containers do not start here, so docker-in-docker is out; the
  daemon runs on the host from a debootstrapped trixie root instead.
* A second dockerd in the host's network namespace deletes the host's
  ``docker0``: it gets a network namespace of its own (``ip netns``), joined
  to the host by one veth pair on a private /30.  Nothing is routed beyond
  the host and that namespace: builds on this engine cannot reach the
  Debian mirror, so tests build only on images loaded from the host engine.
* ``ip netns exec`` mounts a fresh ``/sys``: the cgroup hierarchies are
  gone inside, and dockerd says "Devices cgroup isn't mounted".  The host's
  cgroup mounts (v1, hybrid or v2) are mounted again in the root.
* Without the root bind-mounted onto itself, ``docker load`` fails with
  "remount /, flags: 0x84000: invalid argument".  The daemon enters the root
  with ``pivot_root``, not ``chroot``: under a chroot, ``docker exec`` (and
  so every HEALTHCHECK) fails with 'chdir to cwd ... no such file'.
* The rootfs is cached (``/var/cache/jenkinsctl-test``) and shared; each
  run has its own data-root and /run, bind-mounted in a mount namespace of
  its own, so concurrent runs never see each other's state.
* Images get in with ``docker save | docker load`` from the host engine.
* Pushes go to a registry running inside the namespace on 127.0.0.1:5000,
  which the engine trusts without TLS like any loopback registry; the host
  reaches it through the veth address.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import os
import pathlib
import re
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field

from tests.support.registry import REGISTRY_BIN, Registry

CACHE = pathlib.Path(os.environ.get("JENKINSCTL_TEST_CACHE", "/var/cache/jenkinsctl-test"))
SUITE = "trixie"
PACKAGES = ("docker.io", "docker-cli", "docker-buildx", "containerd", "runc", "iptables", "ca-certificates")
MIN_API = "1.44"                       # what Docker 29 requires
POOL = ipaddress.ip_network("10.250.0.0/16")   # /30s for the veth pairs are taken from here
REGISTRY_PORT = 5000
START_TIMEOUT = 60


def _run(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, **kw)


def debian_mirror() -> str:
    """The Debian mirror the host's apt uses (trixie is on the same one)."""
    text = ""
    for p in [pathlib.Path("/etc/apt/sources.list"), *sorted(pathlib.Path("/etc/apt/sources.list.d").glob("*"))]:
        with contextlib.suppress(OSError):
            text += p.read_text() + "\n"
    m = re.search(r"^(?:URIs:|deb)\s+(http\S*/debian)/?(?:\s|$)", text, re.MULTILINE)
    return m.group(1) if m else "http://deb.debian.org/debian"


def rootfs_path() -> pathlib.Path:
    key = hashlib.sha256(" ".join((SUITE, *PACKAGES)).encode()).hexdigest()[:10]
    return CACHE / f"{SUITE}-engine-{key}"


@contextlib.contextmanager
def _locked(name: str):
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_rootfs(log=print) -> pathlib.Path:
    """The cached trixie root with the engine, CLI and buildx; built once
    with debootstrap (about a minute), later runs reuse it."""
    root = rootfs_path()
    if (root / ".complete").exists():
        return root
    with _locked("rootfs"):
        if (root / ".complete").exists():
            return root
        tmp = root.with_name(root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        mirror = debian_mirror()
        log(f"modern engine: debootstrap {SUITE} from {mirror} into {root} (about a minute, once)")
        proc = _run("debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, str(tmp), mirror,
                    check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"debootstrap {SUITE} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        (tmp / ".complete").write_text(" ".join(PACKAGES) + "\n")
        tmp.rename(root)
    return root


def cgroup_mounts(mountinfo: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """The host's cgroup hierarchies under /sys/fs/cgroup as (fstype, options,
    path relative to /sys/fs/cgroup) to mount again, and its symlinks there
    (cpu -> cpu,cpuacct).  Works for v1, hybrid (v1 + unified) and v2."""
    mounts = []
    for line in mountinfo.splitlines():
        pre, _, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        target, fstype, super_opts = fields[4], tail[0], tail[2]
        if fstype not in ("cgroup", "cgroup2") or not (target == "/sys/fs/cgroup"
                                                      or target.startswith("/sys/fs/cgroup/")):
            continue
        opts = ",".join(o for o in super_opts.split(",") if o not in ("rw", "ro"))
        mounts.append((fstype, opts, target[len("/sys/fs/cgroup"):].lstrip("/")))
    links = []
    base = pathlib.Path("/sys/fs/cgroup")
    if base.is_dir():
        for p in sorted(base.iterdir()):
            if p.is_symlink():
                links.append((p.name, os.readlink(p)))
    return mounts, links


def start_script(root: pathlib.Path, state: pathlib.Path, mountinfo: str, *, min_api: str = MIN_API) -> str:
    """The shell run as ``ip netns exec NS unshare --mount ... sh -c SCRIPT``:
    mounts in the engine's own mount namespace, then dockerd in the root (pivot_root)."""
    mounts, links = cgroup_mounts(mountinfo)
    r = str(root)
    lines = [
        "set -eu",
        f"R={r}",
        'mkdir -p "$R/var/lib/docker"',
        'mount --bind "$R" "$R"',              # or docker load: "remount /, flags: 0x84000"
        'mount -t proc proc "$R/proc"',
        'mount -t sysfs sysfs "$R/sys"',
        'mount --rbind /dev "$R/dev"',
        f'mount --bind {state}/run "$R/run"',
        f'mount --bind {state}/data "$R/var/lib/docker"',
        'mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"',
    ]
    if mounts and mounts[0][2] == "":          # pure v2: one hierarchy at the top
        lines.append('mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"')
    else:
        lines.append('mount -t tmpfs -o mode=755 cgroup "$R/sys/fs/cgroup"')
        for fstype, opts, rel in mounts:
            o = f"-o {opts} " if opts else ""
            lines.append(f'mkdir -p "$R/sys/fs/cgroup/{rel}" && mount -t {fstype} {o}{fstype} "$R/sys/fs/cgroup/{rel}"')
        for name, target in links:
            lines.append(f'ln -s {target} "$R/sys/fs/cgroup/{name}"')
    # pivot_root, not chroot: after setns() into a container's mount
    # namespace (docker exec, health checks) the kernel puts the process at
    # that namespace's root.  Under a chroot that is still the host's /, and
    # runc exec fails with 'chdir to cwd ("/app") ... no such file'.
    lines += [
        'mkdir -p "$R/.oldroot"',
        'cd "$R"',
        "pivot_root . .oldroot",
        "cd /",
        "umount -l /.oldroot",
    ]
    lines.append(
        'exec /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin '
        f"DOCKER_MIN_API_VERSION={min_api} dockerd --host unix:///run/docker.sock --pidfile /run/docker.pid "
        "--data-root /var/lib/docker --exec-root /run/docker --storage-driver overlay2 --log-level warn")
    return "\n".join(lines) + "\n"


def _addresses_in_use() -> list[ipaddress.IPv4Network]:
    out = _run("ip", "-4", "-o", "addr", "show").stdout + "\n" + _run("ip", "-4", "route", "show", "table", "all").stdout
    nets = []
    for m in re.finditer(r"\b(\d+\.\d+\.\d+\.\d+(?:/\d+)?)\b", out):
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.ip_network(m.group(1), strict=False))
    return nets


def pick_subnet(in_use: list[ipaddress.IPv4Network], start: int = 0) -> ipaddress.IPv4Network:
    """A free /30 of POOL: overlapping nothing the host has an address or a
    route for (docker0, other engines' veths, other test runs)."""
    subnets = list(POOL.subnets(new_prefix=30))
    for i in range(len(subnets)):
        net = subnets[(start + i) % len(subnets)]
        if not any(net.overlaps(u) for u in in_use if u.prefixlen > 0):
            return net
    raise RuntimeError(f"no free /30 left in {POOL}")


def docker0_state() -> str:
    """The host's docker0 and its addresses ('' when absent).  Not its
    UP/DOWN state: that follows whether the host engine runs containers."""
    fields = _run("ip", "-br", "addr", "show", "dev", "docker0", check=False).stdout.split()
    return " ".join(fields[:1] + fields[2:])


class NetnsRegistry(Registry):
    """docker-registry inside the engine's namespace: the engine pushes to
    127.0.0.1:5000, the host checks through the veth address."""

    address: str = ""

    def request(self, method: str, path: str, headers: dict | None = None):
        import base64
        import http.client

        h = dict(headers or {})
        if self.username:
            h["Authorization"] = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        conn = http.client.HTTPConnection(self.address, self.port, timeout=10)
        try:
            conn.request(method, path, headers=h)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


@dataclass
class ModernEngine:
    netns: str
    host_ip: str                 # the host's end of the veth
    ns_ip: str                   # the engine's namespace end: published ports live here
    veth: str
    root: pathlib.Path           # the shared, cached rootfs
    state: pathlib.Path          # this run's data-root and /run
    process: subprocess.Popen = field(repr=False)
    docker0_before: str = ""
    registry: NetnsRegistry | None = None
    _loaded: set[str] = field(default_factory=set)

    @property
    def socket(self) -> str:
        return str(self.state / "run" / "docker.sock")

    @property
    def host(self) -> str:
        """DOCKER_HOST for clients on the host."""
        return "unix://" + self.socket

    # Inside the root the socket is /run/docker.sock: that is the path to
    # bind-mount into containers (DooD) started on this engine.
    socket_in_engine = "/run/docker.sock"

    @property
    def cli(self) -> str:
        """The engine's own Debian 13 docker CLI (26.1, API 1.45) with buildx,
        as a wrapper that runs on the host.  Debian 12 has no docker-buildx
        package: the CLI finds the plugin through DOCKER_CONFIG/cli-plugins,
        so the wrapper points DOCKER_CONFIG at a directory holding it unless
        the caller set one."""
        return str(self.state / "cli" / "docker")

    def client(self, **kw):
        from jenkinsctl.engine import client

        return client(self.host, **kw)

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a CLI/jenkinsctl subprocess aimed at this engine."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "JENKINSCTL_"))}
        env.update(DOCKER_HOST=self.host, **extra)
        return env

    def docker(self, *args: str, cli: str | None = None, check: bool = True, timeout: float = 300,
               input: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([cli or self.cli, *args], env=self.env(), capture_output=True, check=check,
                              timeout=timeout, input=input)

    def load_image(self, ref: str) -> None:
        """Copy ``ref`` from the host engine (docker save | docker load)."""
        if ref in self._loaded:
            return
        have = self.docker("image", "inspect", ref, check=False)
        if have.returncode != 0:
            host_env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
            save = subprocess.Popen(["/usr/bin/docker", "save", ref], stdout=subprocess.PIPE, env=host_env)
            load = subprocess.run([self.cli, "load", "-q"], stdin=save.stdout, env=self.env(), capture_output=True,
                                  timeout=600)
            save.stdout.close()
            rc = save.wait()
            if rc != 0 or load.returncode != 0:
                raise RuntimeError(f"docker save {ref} | docker load failed: {load.stderr.decode(errors='replace')}")
        self._loaded.add(ref)

    def nsexec(self, *argv: str, **kw) -> subprocess.CompletedProcess:
        return _run("ip", "netns", "exec", self.netns, *argv, **kw)


def _write_cli_wrapper(root: pathlib.Path, state: pathlib.Path) -> None:
    d = state / "cli"
    (d / "config" / "cli-plugins").mkdir(parents=True, exist_ok=True)
    os.symlink(root / "usr/libexec/docker/cli-plugins/docker-buildx", d / "config/cli-plugins/docker-buildx")
    (d / "config" / "config.json").write_text("{}\n")
    w = d / "docker"
    w.write_text("#!/bin/sh\n"
                 "# Debian 13's docker CLI and buildx from the modern engine's root, run on the host.\n"
                 f'[ -n "${{DOCKER_CONFIG:-}}" ] || DOCKER_CONFIG={d}/config\n'
                 "export DOCKER_CONFIG\n"
                 f'exec {root}/usr/bin/docker "$@"\n')
    w.chmod(0o755)


def _wait_socket(eng: ModernEngine, deadline: float, log_path: pathlib.Path) -> None:
    import socket as _s

    while True:
        if eng.process.poll() is not None:
            raise RuntimeError(f"dockerd exited with {eng.process.returncode}:\n{log_path.read_text()[-4000:]}")
        if os.path.exists(eng.socket):
            with contextlib.suppress(OSError), _s.socket(_s.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(eng.socket)
                s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                if b" 200 " in s.recv(200):
                    return
        if time.monotonic() > deadline:
            raise RuntimeError(f"dockerd did not answer on {eng.socket} within {START_TIMEOUT}s:\n"
                               f"{log_path.read_text()[-4000:]}")
        time.sleep(0.1)


def start_modern_engine(*, log=print, registry_auth: bool = True) -> ModernEngine:
    """Start the engine (and its registry) in a namespace of its own."""
    for tool in ("ip", "unshare", "pivot_root", "debootstrap"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: run scripts/bootstrap")
    if os.geteuid() != 0:
        raise RuntimeError("the modern engine needs root (network and mount namespaces)")
    root = ensure_rootfs(log)
    docker0 = docker0_state()
    ident = uuid.uuid4().hex[:6]
    netns, vh, vn = f"jcmodern-{ident}", f"jcm{ident}h", f"jcm{ident}n"
    state = CACHE / "runs" / netns
    for d in ("run", "data"):
        (state / d).mkdir(parents=True, exist_ok=True)
    _write_cli_wrapper(root, state)
    with _locked("net"):
        net = pick_subnet(_addresses_in_use(), start=int(ident, 16) % 4096)
        host_ip, ns_ip = (str(a) for a in list(net.hosts())[:2])
        _run("ip", "netns", "add", netns)
        _run("ip", "link", "add", vh, "type", "veth", "peer", "name", vn)
        _run("ip", "link", "set", vn, "netns", netns)
        _run("ip", "addr", "add", f"{host_ip}/30", "dev", vh)
        _run("ip", "link", "set", vh, "up")
    for cmd in (("ip", "link", "set", "lo", "up"), ("ip", "addr", "add", f"{ns_ip}/30", "dev", vn),
                ("ip", "link", "set", vn, "up")):
        _run("ip", "netns", "exec", netns, *cmd)
    mountinfo = pathlib.Path("/proc/self/mountinfo").read_text()
    log_path = state / "dockerd.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private",
                                 "sh", "-c", start_script(root, state, mountinfo)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    eng = ModernEngine(netns=netns, host_ip=host_ip, ns_ip=ns_ip, veth=vh, root=root, state=state, process=proc,
                       docker0_before=docker0)
    try:
        _wait_socket(eng, time.monotonic() + START_TIMEOUT, log_path)
        eng.registry = _start_registry(eng, auth=registry_auth)
    except BaseException:
        stop_modern_engine(eng)
        raise
    return eng


def _start_registry(eng: ModernEngine, *, auth: bool, username: str = "ci-pusher") -> NetnsRegistry:
    root = eng.state / "registry"
    root.mkdir()
    password = None
    auth_block = ""
    if auth:
        password = "pw-" + secrets.token_urlsafe(12) + "$'\"!"
        out = _run("htpasswd", "-iBn", username, input=password).stdout
        (root / "htpasswd").write_text(out)
        auth_block = f"auth:\n  htpasswd:\n    realm: jenkinsctl-test\n    path: {root}/htpasswd\n"
    (root / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}/data\n  delete:\n    enabled: true\n"
        # All of the namespace's addresses: 127.0.0.1 for its engine, the veth end for the host.
        f"http:\n  addr: 0.0.0.0:{REGISTRY_PORT}\n  secret: {secrets.token_hex(16)}\n" + auth_block)
    with open(root / "registry.log", "wb") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", eng.netns, REGISTRY_BIN, "serve", str(root / "config.yml")],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    reg = NetnsRegistry(url=f"127.0.0.1:{REGISTRY_PORT}", username=username if auth else None, password=password,
                        root=str(root), process=proc)
    reg.address = eng.ns_ip
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry in {eng.netns} exited:\n{reg.log()}")
        with contextlib.suppress(OSError):
            if reg.request("GET", "/v2/")[0] == 200:
                return reg
        if time.monotonic() > deadline:
            raise RuntimeError(f"docker-registry in {eng.netns} did not answer:\n{reg.log()}")
        time.sleep(0.05)


def _mounted_under(path: pathlib.Path) -> list[str]:
    p = str(path)
    out = []
    for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4]
        if target == p or target.startswith(p + "/"):
            out.append(target)
    return out


def stop_modern_engine(eng: ModernEngine) -> None:
    """Stop dockerd and everything else in its namespace, delete the
    namespace (and with it the veth pair) and this run's state, and check
    that the host's docker0 is as it was."""
    if eng.registry is not None and eng.registry.process.poll() is None:
        eng.registry.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            eng.registry.process.wait(10)
    if eng.process.poll() is None:
        eng.process.send_signal(signal.SIGTERM)
        try:
            eng.process.wait(30)
        except subprocess.TimeoutExpired:
            eng.process.kill()
            eng.process.wait()
    # Whatever is left in the namespace (shims, containers) goes too: these
    # pids are in this run's namespace only.
    for _ in range(3):
        pids = _run("ip", "netns", "pids", eng.netns, check=False).stdout.split()
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.5)
    _run("ip", "netns", "del", eng.netns, check=False)
    _run("ip", "link", "del", eng.veth, check=False)   # gone with the namespace, normally
    # The engine's mounts lived in its own mount namespace; never delete a
    # directory something is still mounted on.
    if not _mounted_under(eng.state):
        shutil.rmtree(eng.state, ignore_errors=True)
    after = docker0_state()
    if after != eng.docker0_before:
        raise AssertionError(f"the host's docker0 changed while the modern engine ran:\n"
                             f"before: {eng.docker0_before!r}\nafter:  {after!r}")
