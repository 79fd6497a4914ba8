"""A container target's ``secrets:`` as files, not environment variables.

A secret in ``env`` becomes plain ``Env``: ``docker inspect`` shows it to
anyone with the socket, and every kept ``NAME.vN`` version keeps a copy in
its config.  A secret under ``secrets:`` is written instead as
``/run/secrets/NAME`` into the created (not yet started) container, mode
0400 and owned by the container's user, in a 0500 directory, like a Swarm
or Compose secret.  It never appears in the container's config, its image
or the host's file system outside the container's own layer, and the
application reads it from the file (``*_FILE`` conventions).

The files go in through the engine's archive API (``PUT /containers/ID/
archive``), which extracts a tar stream: nothing is written on the host
running jenkinsctl, and no path is resolved on the engine's host.
"""

from __future__ import annotations

import io
import re
import tarfile
import time
from typing import Mapping

from jenkinsctl.engine import put_archive_owned
from jenkinsctl.errors import DeployError

SECRETS_DIR = "run/secrets"  # relative to "/", as the tar stream names it
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def resolve_secrets(target, environ: Mapping[str, str]) -> dict[str, str]:
    """NAME -> value for the target's ``secrets``; every reference must be set."""
    out: dict[str, str] = {}
    for name, ref in (getattr(target, "secrets", None) or {}).items():
        value = ref.resolve(environ)
        if value is None:
            raise DeployError(f"container {target.target}: secret {name} refers to a value that is not set "
                              f"({ref.describe()})", hint="set the variable or file it names (in Jenkins: bind the "
                              "credential)")
        out[name] = value
    return out


def _owner(user: str | None) -> tuple[int, int] | None:
    """(uid, gid) for a numeric ``USER``; None when only the container's
    /etc/passwd can tell (the engine looks the name up then)."""
    name, _, group = (user or "").partition(":")
    if not name:
        return 0, 0
    if name.isdigit() and (not group or group.isdigit()):
        return int(name), int(group or name)
    return None


def secrets_tar(files: Mapping[str, str], uid: int, gid: int) -> bytes:
    """The tar stream for ``files`` under run/secrets: a 0500 directory and
    0400 files, owned by uid:gid."""
    buf = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        d = tarfile.TarInfo(SECRETS_DIR)
        d.type, d.mode, d.uid, d.gid, d.mtime = tarfile.DIRTYPE, 0o500, uid, gid, now
        tar.addfile(d)
        for name, value in sorted(files.items()):
            data = value.encode("utf-8")
            info = tarfile.TarInfo(f"{SECRETS_DIR}/{name}")
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), 0o400, uid, gid, now
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def install_secret_files(api, cid: str, target, environ: Mapping[str, str]) -> list[str]:
    """Write the target's secrets into created container ``cid``; returns
    their paths.  A no-op for a target without ``secrets``."""
    files = resolve_secrets(target, environ)
    if not files:
        return []
    user = (api.inspect_container(cid).get("Config") or {}).get("User")
    owner = _owner(user)
    try:
        # A user name the tar cannot carry as numbers: the engine resolves
        # it in the container's own /etc/passwd (copyUIDGID).
        put_archive_owned(api, cid, "/", secrets_tar(files, *(owner or (0, 0))), copy_uid_gid=owner is None)
    except Exception as exc:  # noqa: BLE001 - docker-py's APIError; the value is not in it
        raise DeployError(f"container {target.target}: could not install its secret files: "
                          f"{getattr(exc, 'explanation', None) or exc}",
                          hint="the image needs a writable /run (it is in every common base image)") from None
    return [f"/{SECRETS_DIR}/{n}" for n in sorted(files)]
