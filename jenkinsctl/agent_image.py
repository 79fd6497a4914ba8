"""The SSH agent image (resources/agent): build it, and the contract for
running it.

The image is tagged by a hash of everything that goes into it (the agent
resources, jenkinsctl's source, the pinned dependency versions, the base
image name and the agent's Python), so a second ``build_agent_image`` with
nothing changed is one ``images.get`` and no wheel or image build.

jenkinsctl and its dependencies are installed in the image from wheels built
on the host: pip over the network does not work inside every build
environment, and wheels make the image reproducible.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from typing import TYPE_CHECKING, Any, Callable, Mapping

from jenkinsctl import DISTRIBUTION, __version__
from jenkinsctl.engine import MANAGED_LABEL
from jenkinsctl.errors import BuildError, EngineError
from jenkinsctl.resources import resource_path

if TYPE_CHECKING:
    import docker

    from jenkinsctl.config import AgentGroup
    from jenkinsctl.keys import KeyStore

REPOSITORY = "jenkinsctl/agent"
DEFAULT_BASE = "debian:trixie-slim"
# The python3 of DEFAULT_BASE: platform wheels are fetched for it when the
# host's Python differs, and its glibc bounds their manylinux tags.  Change
# all three together.
AGENT_PYTHON = (3, 13)
AGENT_GLIBC = (2, 41)
# The distributions jenkinsctl needs at run time (setup.cfg install_requires).
RUNTIME_REQUIREMENTS = ("python-jenkins", "docker", "PyYAML", "jsonschema")
# Pins that do not follow the host.  setuptools comes in only as pbr's
# requirement (python-jenkins uses pbr), and the host's is whatever its venv
# bundled: 65.x on Python 3.11, whose pkg_resources fails on the agent's 3.13
# (pkgutil.ImpImporter is gone since 3.12).
AGENT_PIN_OVERRIDES = {"setuptools": "80.9.0"}
# Older agent images kept after a build: the layers below the wheels are
# shared, so each costs only its jenkinsctl layer.
KEEP_IMAGES = 5

# --- the contract between the provisioner and resources/agent/entrypoint.sh --
KEYS_DIR = "/run/jenkinsctl"            # host key + authorized_keys, before start
HOST_KEY_FILE = "ssh_host_ed25519_key"  # in KEYS_DIR, 0600 root
AUTHORIZED_KEYS_FILE = "authorized_keys"
SOCKET_IN_AGENT = "/var/run/docker.sock"
AGENT_USER = "jenkins"

_log = logging.getLogger("jenkinsctl.agent_image")
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", "build", "dist"}


# --- building -----------------------------------------------------------------


def build_agent_image(client: "docker.DockerClient", *, project: str | None = None,
                      log: Callable[[str], None] | None = None, base: str = DEFAULT_BASE,
                      rebuild: bool = False) -> str:
    """Build the agent image on ``client``'s engine unless an image with the
    same content hash is there already, and return its reference
    (``jenkinsctl/agent:<version>-<hash>``)."""
    import docker.errors

    say = log or _log.info
    with tempfile.TemporaryDirectory(prefix="jenkinsctl-agent-") as tmp:
        tmp_path = pathlib.Path(tmp)
        src = _stage_source(tmp_path / "src")
        pins = _runtime_pins()
        digest = content_hash(src, pins, base)
        ref = _reference(digest)
        if not rebuild:
            try:
                client.images.get(ref)
                say(f"agent image {ref} is up to date")
                return ref
            except docker.errors.ImageNotFound:
                pass
            except docker.errors.APIError as exc:
                raise EngineError(f"inspect image {ref}: {getattr(exc, 'explanation', exc)}") from None
        ctx = tmp_path / "context"
        shutil.copytree(resource_path("agent"), ctx, ignore=shutil.ignore_patterns(*_SKIP_DIRS))
        say("building jenkinsctl and dependency wheels on the host")
        build_wheels(src, ctx / "wheels", pins, platform=_engine_platform(client))
        say(f"building agent image {ref}" + (f" for project {project}" if project else ""))
        _docker_build(client, ctx, ref, {"BASE": base, "JENKINSCTL_VERSION": __version__, "CONTENT_HASH": digest},
                      say)
        prune_agent_images(client, keep=KEEP_IMAGES, protect=ref)
        return ref


def agent_image_reference(base: str = DEFAULT_BASE) -> str:
    """The reference build_agent_image would return, without an engine or a
    build: for plan, to say whether the agent image would be built."""
    with tempfile.TemporaryDirectory(prefix="jenkinsctl-agent-") as tmp:
        src = _stage_source(pathlib.Path(tmp) / "src")
        return _reference(content_hash(src, _runtime_pins(), base))


def _reference(digest: str) -> str:
    return f"{REPOSITORY}:{__version__}-{digest}"


def content_hash(src: pathlib.Path, pins: Mapping[str, str], base: str) -> str:
    """12 hex digits over the staged source tree (which includes
    resources/agent), the pins, the base image name and the agent Python."""
    h = hashlib.sha256()
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src).as_posix()
        h.update(rel.encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
        h.update(b"x" if os.access(path, os.X_OK) else b"-")
    for name, version in sorted(pins.items()):
        h.update(f"pin {name}=={version}\n".encode())
    h.update(f"base {base}\npython {AGENT_PYTHON}\n".encode())
    return h.hexdigest()[:12]


def _checkout_root() -> pathlib.Path | None:
    root = pathlib.Path(__file__).resolve().parent.parent
    if (root / "setup.cfg").is_file() and (root / "resources" / "agent" / "Dockerfile").is_file():
        return root
    return None


def _copy_tree(src: pathlib.Path, dst: pathlib.Path) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*_SKIP_DIRS, "*.pyc", "*.egg-info"))


def _stage_source(dst: pathlib.Path) -> pathlib.Path:
    """A copy of the project to build jenkinsctl's wheel from.  Building in a
    copy keeps setuptools' build/ and egg-info out of the checkout, and the
    copy is exactly what the content hash covers."""
    dst.mkdir(parents=True)
    root = _checkout_root()
    if root is not None:
        for name in ("setup.cfg", "setup.py", "pyproject.toml", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, dst / name)
        _copy_tree(root / "jenkinsctl", dst / "jenkinsctl")
        _copy_tree(root / "resources", dst / "resources")
        return dst
    # An installed jenkinsctl (no checkout): the package, with its
    # _resources, and a minimal project file from the installed metadata.
    from importlib import metadata

    pkg = pathlib.Path(__file__).resolve().parent
    _copy_tree(pkg, dst / "jenkinsctl")
    requires = [r for r in (metadata.requires(DISTRIBUTION) or []) if "extra ==" not in r]
    # As setup.cfg lists them: the code packages, plus _resources, which has
    # no __init__.py and is package data only.
    packages = sorted(".".join(p.relative_to(dst).parts) for p in (dst / "jenkinsctl").rglob("__init__.py")
                      for p in [p.parent])
    if (dst / "jenkinsctl" / "_resources").is_dir():
        packages.append("jenkinsctl._resources")
    (dst / "setup.cfg").write_text(
        "[metadata]\nname = " + DISTRIBUTION + "\nversion = " + __version__ + "\n\n"
        "[options]\ninclude_package_data = False\npackages =\n" + "".join(f"    {p}\n" for p in packages)
        + "install_requires =\n" + "".join(f"    {r}\n" for r in requires)
        + "\n[options.package_data]\njenkinsctl._resources = **/*\n\n"
        "[options.entry_points]\nconsole_scripts =\n    jenkinsctl = jenkinsctl.cli:main\n", encoding="utf-8")
    (dst / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools>=61", "wheel"]\n'
                                        'build-backend = "setuptools.build_meta"\n', encoding="utf-8")
    return dst


def _req_name(req: str) -> str:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    return m.group(1) if m else req


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_pins() -> dict[str, str]:
    """Versions of jenkinsctl's dependency closure as installed here, so the
    agent runs what the host runs (AGENT_PIN_OVERRIDES aside).  Requirements
    behind extras are left out; environment markers are ignored (a pin for an
    unneeded package is harmless: pip only constrains what it installs)."""
    from importlib import metadata

    pins: dict[str, str] = {}
    todo = list(RUNTIME_REQUIREMENTS)
    while todo:
        name = _canon(todo.pop())
        if name in pins:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        pins[name] = dist.version
        todo.extend(_req_name(r) for r in (dist.requires or []) if "extra ==" not in r)
    pins.update({n: v for n, v in AGENT_PIN_OVERRIDES.items() if n in pins})
    return pins


def _engine_platform(client) -> str:
    try:
        arch = client.version().get("Arch", "amd64")
    except Exception:  # noqa: BLE001 - a best guess is fine here
        arch = "amd64"
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)


def build_wheels(src: pathlib.Path, out: pathlib.Path, pins: Mapping[str, str], *, platform: str = "x86_64") -> None:
    """jenkinsctl's wheel and its dependencies' into ``out``.  ``pip wheel``
    builds pure-Python wheels from sdists too; wheels it made for this host's
    interpreter or machine are swapped for ones matching the agent's
    (AGENT_PYTHON on ``platform``)."""
    out.mkdir(parents=True, exist_ok=True)
    constraints = out.parent / "constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())), encoding="utf-8")
    _pip("wheel", "--quiet", "--wheel-dir", str(out), "--constraint", str(constraints), str(src))
    host_tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    want_tag = f"cp{AGENT_PYTHON[0]}{AGENT_PYTHON[1]}"
    import platform as _platform

    for wheel in sorted(out.glob("*.whl")):
        parts = wheel.name[:-4].split("-")
        plat = parts[-1]
        if plat == "any":
            continue
        if host_tag == want_tag and platform == _platform.machine():
            continue  # built or fetched for this very interpreter and machine
        name, version = parts[0], parts[1]
        wheel.unlink()
        _pip("download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest", str(out),
             "--python-version", f"{AGENT_PYTHON[0]}.{AGENT_PYTHON[1]}", "--implementation", "cp",
             "--abi", want_tag, "--abi", "abi3", "--abi", "none",
             *[a for p in _manylinux(platform) for a in ("--platform", p)], f"{name}=={version}")


def _manylinux(machine: str) -> list[str]:
    # glibc of trixie is 2.41: every manylinux tag up to it fits.
    return [f"manylinux_2_{m}_{machine}" for m in range(AGENT_GLIBC[1], 16, -1)] + [f"manylinux2014_{machine}"]


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise BuildError(f"building wheels for the agent image failed: pip {args[0]} exited {proc.returncode}\n{tail}",
                         hint="the host needs pip and access to a package index (or a pip cache/find-links "
                              "holding the dependencies)")


def _docker_build(client, ctx: pathlib.Path, ref: str, buildargs: dict[str, str], say: Callable[[str], None]) -> None:
    """Classic builder through the API, streamed to the log; errors in the
    stream raise BuildError with the last lines of output."""
    import docker.errors

    tail: list[str] = []
    try:
        stream = client.api.build(path=str(ctx), tag=ref, buildargs=buildargs, rm=True, forcerm=True,
                                  pull=False, decode=True, labels={MANAGED_LABEL: "true"})
        for chunk in stream:
            if "error" in chunk or "errorDetail" in chunk:
                msg = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error")
                raise BuildError(f"agent image build failed: {msg}", hint="\n".join(tail[-10:]) or None)
            line = (chunk.get("stream") or "").rstrip()
            if line:
                tail.append(line)
                del tail[:-20]
                if line.startswith("Step ") or line.startswith("Successfully"):
                    say(line)
                else:
                    _log.debug(line)
    except docker.errors.APIError as exc:
        raise EngineError(f"agent image build: {getattr(exc, 'explanation', exc)}") from None
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        raise BuildError(f"agent image build ended without producing {ref}", hint="\n".join(tail[-10:])) from None


def prune_agent_images(client, *, keep: int = KEEP_IMAGES, protect: str | None = None) -> list[str]:
    """Remove all but the ``keep`` newest jenkinsctl/agent tags.  An image a
    container still uses is left alone (the engine refuses without force)."""
    import docker.errors

    try:
        images = client.images.list(name=REPOSITORY)
    except docker.errors.APIError:
        return []
    images.sort(key=lambda im: im.attrs.get("Created", ""), reverse=True)
    removed = []
    for im in images[keep:]:
        for tag in im.tags:
            if tag == protect or not tag.startswith(REPOSITORY + ":"):
                continue
            try:
                client.images.remove(tag, noprune=False)
                removed.append(tag)
            except docker.errors.APIError:
                pass
    return removed


# --- running ------------------------------------------------------------------


def node_remote_fs(group: "AgentGroup", node: str) -> str:
    """The node's remoteFS: one directory per node under the group's
    remote_fs.  It is bind-mounted at the same path on the host and in the
    agent, so two agents of a group on one host must not share it, or their
    workspaces would collide."""
    return f"{group.remote_fs.rstrip('/')}/{node}"


def agent_container_kwargs(*, image: str, name: str, node: str, group: "AgentGroup",
                           labels: Mapping[str, str], network: str | None = None,
                           publish_ssh: int | None = None) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create`` for one agent.

    - the group's docker socket at /var/run/docker.sock (DooD);
    - the node's remoteFS bind-mounted at the same path on host and agent,
      so ``docker run -v "$WORKSPACE":/src`` from a build sees the files;
    - no secrets in the environment;
    - ``no-new-privileges``: a build cannot gain root through a setuid binary.

    Keys are not in here: after ``create`` and before ``start``, call
    ``install_agent_keys(container, keystore, node)``.  ``publish_ssh``
    publishes sshd on 127.0.0.1:PORT (0 picks a free port).
    """
    remote_fs = node_remote_fs(group, node)
    kwargs: dict[str, Any] = {
        "image": image,
        "name": name,
        "hostname": node,
        "detach": True,
        "labels": dict(labels),
        "environment": {"SSH_PORT": str(group.ssh_port), "JENKINS_AGENT_WORKDIR": remote_fs},
        "volumes": {
            group.docker_socket: {"bind": SOCKET_IN_AGENT, "mode": "rw"},
            remote_fs: {"bind": remote_fs, "mode": "rw"},
        },
        "security_opt": ["no-new-privileges:true"],
        "restart_policy": {"Name": "unless-stopped"},
    }
    if network:
        kwargs["network"] = network
    if publish_ssh is not None:
        kwargs["ports"] = {f"{group.ssh_port}/tcp": ("127.0.0.1", publish_ssh or None)}
    return kwargs


def agent_key_files(keystore: "KeyStore", node: str) -> dict[str, bytes]:
    """KEYS_DIR's contents for one agent, by file name: its host key pair
    and the controller's public key as authorized_keys (never the client's
    private key)."""
    host = keystore.host_key(node)
    client = keystore.client_key()
    return {
        HOST_KEY_FILE: host.private_path.read_bytes(),
        HOST_KEY_FILE + ".pub": (host.public_line + "\n").encode(),
        AUTHORIZED_KEYS_FILE: (client.public_line + "\n").encode(),
    }


def agent_keys_archive(keystore: "KeyStore", node: str) -> bytes:
    """A tar of ``agent_key_files``, owned by root, 0600."""
    return tar_files(agent_key_files(keystore, node))


def tar_files(files: Mapping[str, bytes], mode: int = 0o600) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), mode, 0, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def install_agent_keys(container, keystore: "KeyStore", node: str) -> None:
    """Put the agent's keys into a created (not yet started) container.
    Works on remote engines too, unlike a bind mount of the state dir."""
    import docker.errors

    try:
        ok = container.put_archive(KEYS_DIR, agent_keys_archive(keystore, node))
    except docker.errors.APIError as exc:
        raise EngineError(f"install keys into {container.name}: {getattr(exc, 'explanation', exc)}") from None
    if not ok:
        raise EngineError(f"install keys into {container.name}: the engine refused the archive")

