"""The controller image: resources/controller built on the engine.

It starts FROM jenkins/jenkins:<pinned LTS>-jdk21 and adds plugins.txt, so
building it needs that image (Docker Hub or a mirror).  The tag is a content
hash of the build context, so an unchanged context costs one inspect.

resources/controller/versions.json pins the core and every plugin; the
Dockerfile's ``ARG JENKINS_VERSION=`` and plugins.txt are checked against
it (tests/unit/test_casc.py), and ``pinned_versions`` hands the same pins to
Python (the Jenkins emulator in the tests announces exactly this core).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable

from jenkinsctl import __version__
from jenkinsctl.errors import EngineError
from jenkinsctl.resources import resource_path

REPOSITORY = "jenkinsctl/controller"
VERSIONS_FILE = "controller/versions.json"


@dataclass(frozen=True)
class PinnedVersions:
    """What resources/controller/versions.json pins."""

    core: str                     # Jenkins LTS, e.g. "2.568.2"
    java: str                     # the JDK of the base image tag, e.g. "21"
    plugins: dict[str, str]       # plugin -> version, in plugins.txt order
    required_core: dict[str, str]  # plugin -> the oldest core its release supports
    purposes: dict[str, str]      # plugin -> what jenkinsctl needs it for

    @property
    def base_image(self) -> str:
        return f"jenkins/jenkins:{self.core}-jdk{self.java}"


def pinned_versions() -> PinnedVersions:
    data = json.loads(resource_path(VERSIONS_FILE).read_text(encoding="utf-8"))
    plugins = data["plugins"]
    return PinnedVersions(
        core=data["core"]["version"], java=data["core"]["java"],
        plugins={name: p["version"] for name, p in plugins.items()},
        required_core={name: p["required_core"] for name, p in plugins.items()},
        purposes={name: p["for"] for name, p in plugins.items()})


def controller_image_reference() -> str:
    """The tag build_controller_image builds, computed without an engine."""
    root = resource_path("controller")
    h = hashlib.sha256(__version__.encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return f"{REPOSITORY}:{__version__}-{h.hexdigest()[:12]}"


def _build_args() -> dict[str, str]:
    return {"JENKINSCTL_VERSION": __version__}


def build_controller_image(client: Any, *, log: Callable[[str], None] | None = None) -> str:
    import docker.errors

    ref = controller_image_reference()
    try:
        client.images.get(ref)
        return ref
    except docker.errors.ImageNotFound:
        pass
    if log:
        log(f"building the controller image {ref} from resources/controller")
    base = pinned_versions().base_image
    try:
        client.images.build(path=str(resource_path("controller")), tag=ref, rm=True,
                            buildargs=_build_args())
    except docker.errors.BuildError as exc:
        lines = [str(c.get("stream") or c.get("error") or "").strip() for c in exc.build_log]
        detail = " | ".join(line for line in lines if line)[-600:] or str(exc)
        raise EngineError(f"building the controller image failed: {detail}",
                          hint=f"it starts FROM {base}: make that image pullable (Docker Hub or a mirror; "
                               "the build arg JENKINS_IMAGE names another base), or build resources/controller "
                               "elsewhere and set controller.image") from None
    except docker.errors.APIError as exc:
        raise EngineError(f"building the controller image failed: {exc.explanation or exc}",
                          hint=f"make {base} pullable, or set controller.image") from None
    return ref
