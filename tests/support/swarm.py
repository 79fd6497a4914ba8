"""Single-node Swarm for tests.

The engine joins a one-node swarm advertised on 127.0.0.1 when it is not in
one (and stays in it: harmless for everything else).  The ingress routing
mesh does not work on this kernel, so tests publish with mode=host.
Services a test creates carry TEST_LABELS or a test name prefix and are
removed by ``remove_test_services``.
"""

from __future__ import annotations

import os

import time

from tests.support.engine import TEST_LABEL


def ensure_swarm(client, timeout: float = 30) -> None:
    import docker.errors

    deadline = time.monotonic() + timeout
    while True:
        info = client.info().get("Swarm") or {}
        state = info.get("LocalNodeState")
        if state == "active" and info.get("ControlAvailable"):
            return
        if state == "inactive":
            try:
                client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
            except docker.errors.APIError as exc:
                # Another process may be initialising it at the same moment.
                if "already part of a swarm" not in str(exc):
                    raise
        if time.monotonic() > deadline:
            raise RuntimeError(f"the engine did not become a Swarm manager (state {state!r})")
        time.sleep(0.5)


def remove_test_services(client, *, prefix: str | None = None, label: str = f"{TEST_LABEL}=1") -> None:
    import docker.errors

    if os.environ.get("JENKINSCTL_TEST_NO_SWEEP") and not os.environ.get("CI"):
        return
    try:
        services = {s.id: s for s in client.services.list(filters={"label": label})}
        if prefix:
            services.update({s.id: s for s in client.services.list(filters={"name": prefix})
                             if s.name.startswith(prefix)})
    except docker.errors.APIError:
        return
    for s in services.values():
        try:
            s.remove()
        except docker.errors.APIError:
            pass
