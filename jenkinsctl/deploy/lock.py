"""The deploy lock: a created, never started container that the engine keeps.

Container names are unique per engine, so a container named ``NAME.lock``
serialises the deploys of one target from every agent that uses the engine,
not only one host's processes.

A holder that died (kill -9, a lost agent) cannot remove its lock, so a
waiting deploy breaks it when the holder is known to be gone or past its own
bound:

- the lock's labels say where the holder ran and which process it was
  (boot id, pid namespace, pid, start time); when that is here and the
  process is gone, the lock is broken at once;
- a holder elsewhere cannot be checked, so it declares how long it may hold
  the lock (``lock-until``: its deploy's own timeout and proxy windows, plus
  a margin) and its lock is broken only after that.  A fixed age would break
  the lock of a live deploy whose target allows more time.  Locks written
  before ``lock-until`` existed fall back to LOCK_STALE_SECONDS.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from typing import Mapping

from jenkinsctl.deploy import out_of_time
from jenkinsctl.engine import engine_errors
from jenkinsctl.errors import EngineConflict, EngineError, EngineNotFound, Timeout
from jenkinsctl.poll import Deadline, wait_for

log = logging.getLogger("jenkinsctl.deploy")

LOCK_STALE_SECONDS = 900      # the age rule for locks without lock-until
LOCK_MARGIN_SECONDS = 120     # added to a holder's own bound: pulls, clean-up, clock skew

LOCK_OWNER = "io.jenkinsctl.lock-owner"   # HOST:PID, for people and messages
LOCK_TIME = "io.jenkinsctl.lock-time"     # when it was taken (epoch seconds): the age rule
LOCK_HOST = "io.jenkinsctl.lock-host"     # the owner's hostname
LOCK_BOOT = "io.jenkinsctl.lock-boot"     # the owner's kernel boot id
LOCK_PIDNS = "io.jenkinsctl.lock-pidns"   # the owner's pid namespace: where its pid means something
LOCK_PID = "io.jenkinsctl.lock-pid"
LOCK_START = "io.jenkinsctl.lock-start"   # the owner's start time (clock ticks after boot): pid reuse
LOCK_UNTIL = "io.jenkinsctl.lock-until"   # epoch seconds after which the owner is past its own bound


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` from /proc, or None when there is
    no such (live, non-zombie) process."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat.rpartition(")")[2].split()   # after "pid (comm)", which may hold spaces
    if len(fields) < 20 or fields[0] in ("Z", "X", "x"):
        return None
    return fields[19]


def _where() -> tuple[str, str] | None:
    """(boot id, pid namespace) of this process: two processes with the
    same pair see the same pids.  The hostname is not enough (agents in
    containers share the host's engine with their own pid namespaces)."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return (boot, pidns) if boot else None


def _lock_labels(hold: float) -> dict[str, str]:
    pid = os.getpid()
    host = socket.gethostname()
    now = time.time()
    labels = {LOCK_OWNER: f"{host}:{pid}", LOCK_TIME: str(int(now)), LOCK_HOST: host, LOCK_PID: str(pid),
              LOCK_UNTIL: str(int(now + hold + LOCK_MARGIN_SECONDS))}
    where, start = _where(), _start_time(pid)
    if where and start:
        labels.update({LOCK_BOOT: where[0], LOCK_PIDNS: where[1], LOCK_START: start})
    return labels


def _owner_gone(labels: Mapping[str, str]) -> bool:
    """True when the lock's owner ran where this process runs (same boot,
    same pid namespace) and is no longer running: its pid is gone, a
    zombie, or now a different process (another start time)."""
    where = _where()
    if not where or (labels.get(LOCK_BOOT), labels.get(LOCK_PIDNS)) != where:
        return False
    pid, start = labels.get(LOCK_PID, ""), labels.get(LOCK_START)
    if not pid.isdigit() or not start:
        return False
    return _start_time(int(pid)) != start


def _expired(labels: Mapping[str, str], now: float) -> str | None:
    """Why a holder elsewhere is past its bound, or None while it may still run."""
    until = labels.get(LOCK_UNTIL, "")
    if until.isdigit():
        return f"it held the lock past its own bound ({int(now) - int(until)}s ago)" if now > int(until) else None
    since = int(labels.get(LOCK_TIME, "0") or 0)
    return f"it is older than {LOCK_STALE_SECONDS}s" if now - since > LOCK_STALE_SECONDS else None


@contextlib.contextmanager
def engine_lock(client, name: str, image: str, labels: Mapping[str, str], clock=time.monotonic, sleep=time.sleep,
                timeout: float = 300, hold: float = LOCK_STALE_SECONDS, deadline: Deadline | None = None):
    """Hold the deploy lock ``name`` (see the module docstring).  ``timeout``
    bounds the wait for it, or what is left of ``deadline`` (the whole
    deploy's) when given; ``hold`` is how long this holder may keep it,
    declared in its labels for waiters on other hosts."""
    api = client.api
    body = {"Image": image, "Cmd": ["true"], "Entrypoint": [], "Labels": {**labels, **_lock_labels(hold)},
            "HostConfig": {"NetworkMode": "none"}}
    holder = "?"

    def take() -> str | None:
        """The lock's container id once it is ours, None while another
        live deploy holds it."""
        nonlocal holder
        while True:   # a lock broken or freed just now is tried again at once
            try:
                with engine_errors(f"take the deploy lock {name}"):
                    return api.create_container_from_config(body, name)["Id"]
            except EngineConflict:
                pass   # the name is taken: someone holds the lock
            try:
                with engine_errors(f"inspect the deploy lock {name}"):
                    held = api.inspect_container(name)
            except EngineNotFound:
                continue
            held_labels = held["Config"].get("Labels") or {}
            if holder != held_labels.get(LOCK_OWNER, "?"):
                holder = held_labels.get(LOCK_OWNER, "?")
                log.info("waiting for another deploy (lock %s held by %s)", name, holder)
            why = "its process is gone" if _owner_gone(held_labels) else _expired(held_labels, time.time())
            if not why:
                return None
            log.warning("breaking the deploy lock %s held by %s: %s", name, holder, why)
            with contextlib.suppress(EngineNotFound), engine_errors(f"break the deploy lock {name}"):
                api.remove_container(held["Id"], force=True)   # by id: never a lock taken since

    wait = deadline.remaining() if deadline is not None else timeout
    got = wait_for(take, lambda cid: cid is not None, timeout=wait, interval=0.5, clock=clock, sleep=sleep)
    if not got.done:
        stale = f"if its owner is gone (on another host), remove the lock with 'docker rm {name}'"
        pending = f"waiting for another deploy to free the lock {name} (held by {holder})"
        if deadline is not None:
            raise out_of_time(f"deploy lock {name}", deadline, pending, hint=stale, lock=name, owner=holder)
        raise Timeout(f"another deploy holds the lock {name} (owner {holder}) for more than {timeout:g}s",
                      hint=f"wait for it; {stale}", lock=name, owner=holder)
    cid = got.last
    try:
        yield
    finally:
        with contextlib.suppress(EngineError), engine_errors(f"free the deploy lock {name}"):
            api.remove_container(cid, force=True)
