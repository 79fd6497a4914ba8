"""Build the test-only images (the emulator and the sshd agent host).

Images are tagged by a content hash of their build inputs, so a second run
finds the tag and builds nothing.  Every image carries the ownership label
``io.jenkinsctl.test=1``; older tags of the same repository (stale hashes) are
removed after a new build so they do not pile up on a shared engine.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import docker
import docker.errors

OWNER_LABEL = "io.jenkinsctl.test"
LABELS = {OWNER_LABEL: "1"}

HERE = Path(__file__).resolve().parent
REPO_TESTS = HERE.parent
SSHD_DIR = REPO_TESTS / "images" / "sshd"
EMULATOR_REPO = "jenkinsctl-test/fakejenkins"
SSHD_REPO = "jenkinsctl-test/sshd-agent"

# What the emulator image runs with besides the standard library.
EMULATOR_REQUIREMENTS = ["paramiko>=3", "PyYAML>=6"]
WHEEL_CACHE = Path(os.environ.get("JENKINSCTL_TEST_CACHE", Path.home() / ".cache" / "jenkinsctl-tests")) / "wheels"


def _hash_files(files: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, data in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:16]


# Test-side helpers that the emulator process never imports stay out of the
# image, so editing them does not force a rebuild.
_HOST_ONLY = {"fixtures.py", "image.py", "sshkeys.py"}


def _runtime_modules() -> list[Path]:
    return [p for p in sorted(HERE.glob("*.py")) if p.name not in _HOST_ONLY]


def _pins_json() -> bytes:
    """The pinned versions, for the container: it has neither jenkinsctl
    nor resources/controller to read them from (version.py)."""
    import json

    from .version import PINNED

    return json.dumps({"core": PINNED.core, "plugins": PINNED.plugins}, sort_keys=True).encode()


def _emulator_sources() -> list[tuple[str, bytes]]:
    files = [(f"tests/fakejenkins/{p.name}", p.read_bytes()) for p in _runtime_modules()]
    files.append(("tests/fakejenkins/pins.json", _pins_json()))
    files.append(("Dockerfile", (HERE / "Dockerfile").read_bytes()))
    files.append(("requirements", "\n".join(EMULATOR_REQUIREMENTS).encode()))
    return files


def _image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def _remove_stale(client: docker.DockerClient, repo: str, keep: str, variant: str | None = None) -> None:
    """Older tags of ``repo``; with ``variant`` (a tag prefix such as
    "repo:java17"), only those of the same variant."""
    for image in client.images.list(name=repo, filters={"label": f"{OWNER_LABEL}=1"}):
        if keep in image.tags:
            continue
        for tag in image.tags:
            if variant and not tag.startswith(variant):
                continue
            try:
                client.images.remove(tag, noprune=False)
            except docker.errors.APIError:
                pass  # still used by a container somebody else runs; leave it


BASE_IMAGE = "debian:bookworm-slim"


def _build(client: docker.DockerClient, context: Path, tag: str, repo: str, buildargs: dict | None = None,
           keep_prefix: str | None = None) -> str:
    base = (buildargs or {}).get("BASE_IMAGE", BASE_IMAGE)
    if not _image_exists(client, base):
        raise RuntimeError(
            f"base image {base} is missing and Docker Hub may be unreachable; "
            "run scripts/bootstrap, which builds it with debootstrap"
        )
    try:
        client.images.build(path=str(context), tag=tag, labels=LABELS, rm=True, forcerm=True, pull=False,
                            buildargs=buildargs or None)
    except docker.errors.BuildError as exc:
        log = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log)
        raise RuntimeError(f"building {tag} failed: {exc.msg}\n{log[-4000:]}") from exc
    _remove_stale(client, repo, tag, keep_prefix)
    return tag


# Agent hosts by Java version: 21 is what Jenkins >= 2.545 agents need
# (remoting.jar is class-file 65); Debian 13 is the first to ship it.
JAVA_VARIANTS = {
    17: {"BASE_IMAGE": "debian:bookworm-slim", "JAVA_PACKAGE": "openjdk-17-jre-headless"},
    21: {"BASE_IMAGE": "debian:trixie-slim", "JAVA_PACKAGE": "openjdk-21-jre-headless"},
}


def build_sshd_image(client: docker.DockerClient, java: int = 21) -> str:
    """Build (or reuse) the sshd agent host image with Java ``java``; return its tag."""
    args = JAVA_VARIANTS[java]
    files = [(p.name, p.read_bytes()) for p in sorted(SSHD_DIR.iterdir()) if p.is_file()]
    files.append(("buildargs", repr(sorted(args.items())).encode()))
    tag = f"{SSHD_REPO}:java{java}-{_hash_files(files)}"
    if _image_exists(client, tag):
        return tag
    return _build(client, SSHD_DIR, tag, SSHD_REPO, buildargs=args, keep_prefix=f"{SSHD_REPO}:java{java}-")


# The python3 and glibc of BASE_IMAGE: the emulator's wheels are fetched
# for them, not for the host's interpreter, which is 3.13 on Debian 13 hosts
# (cffi and PyYAML ship one wheel per Python version).  Change with BASE_IMAGE.
IMAGE_PYTHON = (3, 11)
IMAGE_GLIBC = (2, 36)


def wheel_download_argv(dest: Path, machine: str) -> list[str]:
    """pip download of EMULATOR_REQUIREMENTS and their dependencies as
    binary wheels for IMAGE_PYTHON on ``machine``, into ``dest``."""
    py = f"{IMAGE_PYTHON[0]}{IMAGE_PYTHON[1]}"
    platforms = [f"manylinux_2_{m}_{machine}" for m in range(IMAGE_GLIBC[1], 16, -1)] + [f"manylinux2014_{machine}"]
    return [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary=:all:", "--dest", str(dest),
            "--python-version", f"{IMAGE_PYTHON[0]}.{IMAGE_PYTHON[1]}", "--implementation", "cp",
            "--abi", f"cp{py}", "--abi", "abi3", "--abi", "none",
            *[a for p in platforms for a in ("--platform", p)], *EMULATOR_REQUIREMENTS]


def _wheels(dest: Path) -> None:
    """Fetch wheels on the host: pip over HTTPS does not work inside image builds."""
    import platform

    machine = platform.machine()
    key = hashlib.sha256(("\n".join(EMULATOR_REQUIREMENTS) + repr((IMAGE_PYTHON, IMAGE_GLIBC, machine))).encode())
    cache = WHEEL_CACHE / key.hexdigest()[:12]
    if not (cache / ".complete").exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(wheel_download_argv(cache, machine), check=True)
        (cache / ".complete").write_text("ok\n")
    for whl in cache.glob("*.whl"):
        shutil.copy2(whl, dest / whl.name)


def build_image(client: docker.DockerClient) -> str:
    """Build (or reuse) the emulator image; return its tag."""
    tag = f"{EMULATOR_REPO}:{_hash_files(_emulator_sources())}"
    if _image_exists(client, tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="fakejenkins-ctx-") as tmp:
        ctx = Path(tmp)
        pkg = ctx / "tests" / "fakejenkins"
        pkg.mkdir(parents=True)
        (ctx / "tests" / "__init__.py").write_text("")
        for p in _runtime_modules():
            shutil.copy2(p, pkg / p.name)
        (pkg / "pins.json").write_bytes(_pins_json())
        shutil.copy2(HERE / "Dockerfile", ctx / "Dockerfile")
        (ctx / "wheels").mkdir()
        _wheels(ctx / "wheels")
        (ctx / "requirements.txt").write_text("\n".join(EMULATOR_REQUIREMENTS) + "\n")
        return _build(client, ctx, tag, EMULATOR_REPO)


if __name__ == "__main__":  # python -m tests.fakejenkins.image: warm the cache
    c = docker.from_env()
    print(build_sshd_image(c))
    print(build_image(c))


def without_test_label(client, image: str, repository: str) -> str:
    """A one-line child of ``image`` with io.jenkinsctl.test blanked.

    Containers inherit their image's labels, and every test session's
    end-of-session cleanup removes containers labelled io.jenkinsctl.test=1;
    a controller made from the emulator image would be removed from under a
    concurrent session.  Tests that own their containers by project labels
    use this child instead."""
    import io

    tag = f"{repository}:{image.rsplit(':', 1)[1]}"
    try:
        client.images.get(tag)
    except Exception:  # noqa: BLE001 - not built yet
        dockerfile = f'FROM {image}\nLABEL {OWNER_LABEL}=""\n'
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, pull=False)
    return tag
