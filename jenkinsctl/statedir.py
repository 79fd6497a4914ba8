"""The state directory: it holds root-equivalent keys, so it stays private.

The controller's SSH client key logs in to every agent, and every agent
holds the Docker socket, which is root on its host.  So the state dir is
made 0700 with a ``.gitignore`` of ``*`` (a ``git add -A`` in a checkout
that contains it adds nothing), and a state dir or lock file that is a
symlink or belongs to another user is refused rather than followed: either
would let another account read or redirect the keys.
"""

from __future__ import annotations

import logging
import os
import pathlib
import stat

from jenkinsctl.errors import ConfigError

log = logging.getLogger("jenkinsctl.statedir")

GITIGNORE = "*\n"


def prepare(path: str | os.PathLike[str]) -> pathlib.Path:
    """Create or check the state dir at ``path``; returns it.

    A new state dir is made 0700 with its ``.gitignore``.  An existing one
    must be a real directory owned by this user; its mode is left as it is
    (it may be a directory the user chose for other things too), but keys/
    below it is always 0700."""
    d = pathlib.Path(path)
    _refuse_foreign(d, "state directory")
    try:
        d.mkdir(parents=True, mode=0o700)
        os.chmod(d, 0o700)   # mkdir's mode is masked by the umask
    except FileExistsError:
        # Existing, or made a moment ago by a concurrent run on the same
        # project: either way it is checked like any existing state dir.
        _refuse_foreign(d, "state directory")
    if not d.is_dir():
        raise ConfigError(f"state_dir {d} is not a directory",
                          hint="point state_dir (or JENKINSCTL_STATE_DIR) at a directory jenkinsctl may own")
    ignore = d / ".gitignore"
    try:
        fd = os.open(ignore, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        pass   # written before, or by a concurrent run a moment ago
    else:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(GITIGNORE)
    work_tree = _git_work_tree(d)
    if work_tree is not None:
        log.warning("the state dir %s is inside the git work tree %s; it holds the agents' SSH keys "
                    "(root on every agent host). Its .gitignore keeps it out of commits, but a state dir "
                    "outside any checkout is safer: set state_dir or JENKINSCTL_STATE_DIR", d, work_tree)
    return d


def open_lock(path: pathlib.Path) -> int:
    """Open (creating) the lock file at ``path`` without following a
    symlink, and refuse one that another user owns."""
    _refuse_foreign(path, "lock file")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot open the lock file {path}: {exc.strerror}",
                          hint="it must be a regular file owned by this user") from None
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ConfigError(f"lock file {path} is not a regular file owned by this user",
                          hint="remove it if no jenkinsctl run is using it")
    return fd


def _refuse_foreign(path: pathlib.Path, what: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise ConfigError(f"{what} {path} is a symlink; jenkinsctl does not follow it because it holds SSH keys",
                          hint=f"point state_dir at the real directory ({os.path.realpath(path)}) if it is yours")
    if st.st_uid != os.geteuid():
        raise ConfigError(f"{what} {path} belongs to uid {st.st_uid}, not to this user (uid {os.geteuid()})",
                          hint="use a state_dir of your own: another account could read or replace the keys")


def _git_work_tree(d: pathlib.Path) -> pathlib.Path | None:
    for p in [d.resolve(), *d.resolve().parents]:
        if (p / ".git").exists():
            return p
    return None
