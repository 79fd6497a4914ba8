"""The controller image: resources/controller built on the engine.

It starts FROM jenkins/jenkins:lts-jdk17 and adds plugins.txt, so building it
needs that image (Docker Hub or a mirror).  The tag is a content hash of the
build context, so an unchanged context costs one inspect.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

from jenkinsctl import __version__
from jenkinsctl.errors import EngineError
from jenkinsctl.resources import resource_path

REPOSITORY = "jenkinsctl/controller"


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
    try:
        client.images.build(path=str(resource_path("controller")), tag=ref, rm=True,
                            buildargs=_build_args())
    except docker.errors.BuildError as exc:
        lines = [str(c.get("stream") or c.get("error") or "").strip() for c in exc.build_log]
        detail = " | ".join(line for line in lines if line)[-600:] or str(exc)
        raise EngineError(f"building the controller image failed: {detail}",
                          hint="it starts FROM jenkins/jenkins:lts-jdk17: make that image pullable (Docker Hub or "
                               "a mirror), or build resources/controller elsewhere and set controller.image") from None
    except docker.errors.APIError as exc:
        raise EngineError(f"building the controller image failed: {exc.explanation or exc}",
                          hint="make jenkins/jenkins:lts-jdk17 pullable, or set controller.image") from None
    return ref
