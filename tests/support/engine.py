"""Test access to the real Docker engine, with cleanup by ownership label.

Tests create only resources that carry TEST_LABELS, so cleanup can remove
exactly what tests made and nothing else on a shared engine.
"""

from __future__ import annotations

import os

TEST_LABEL = "io.jenkinsctl.test"
TEST_LABELS = {TEST_LABEL: "1"}
IN_CI = bool(os.environ.get("CI"))


def engine_or_fail():
    """A docker client; in CI a missing engine is a failure, elsewhere a skip."""
    import docker
    import pytest

    try:
        c = docker.from_env(timeout=120)
        c.ping()
        return c
    except Exception as exc:  # noqa: BLE001
        msg = f"no Docker engine answers ({exc}); run scripts/bootstrap"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)


def remove_test_resources(client, label: str = f"{TEST_LABEL}=1") -> None:
    """Remove containers, services, networks and volumes carrying ``label``.

    Several developers' test sessions may share one engine; the label sweep
    would pull resources out from under the others' running tests, so
    JENKINSCTL_TEST_NO_SWEEP=1 turns it off for such sessions.  CI never
    sets it."""
    import docker.errors

    if os.environ.get("JENKINSCTL_TEST_NO_SWEEP") and not IN_CI:
        return

    try:
        if client.info().get("Swarm", {}).get("LocalNodeState") == "active":
            for s in client.services.list(filters={"label": label}):
                s.remove()
    except docker.errors.APIError:
        pass
    for c in client.containers.list(all=True, filters={"label": label}):
        try:
            c.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
    for n in client.networks.list(filters={"label": label}):
        try:
            n.remove()
        except docker.errors.APIError:
            pass
    for v in client.volumes.list(filters={"label": label}):
        try:
            v.remove(force=True)
        except docker.errors.APIError:
            pass
