"""Registry fixtures, registered as a pytest plugin in tests/conftest.py.

* ``registry``: a real docker-registry with htpasswd auth, for the session.
  ``.url`` ("127.0.0.1:PORT"), ``.username``, ``.password``, ``.auth``
  (docker-py auth_config), ``.env`` (JENKINSCTL_REGISTRY_* for the CLI),
  ``.manifest_digest(path, tag)``.
* ``registry_noauth``: the same without auth.
* ``fault_proxy``: a fresh FaultProxy in front of ``registry`` per test;
  push to ``fault_proxy.url``, add faults with ``.fail(...)`` / ``.reset(...)``.
* ``image_tracker``: records refs a test creates and removes them after it.

Images built by tests should carry TEST_LABELS; ``remove_test_images``
removes those left over (call it at session end, after containers go).
"""

from __future__ import annotations

import pytest

from tests.support.engine import TEST_LABEL
from tests.support.faultproxy import FaultProxy
from tests.support.registry import start_registry


@pytest.fixture(scope="session")
def registry():
    reg = start_registry(auth=True)
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def registry_noauth():
    reg = start_registry(auth=False)
    yield reg
    reg.stop()


@pytest.fixture
def fault_proxy(registry):
    proxy = FaultProxy(("127.0.0.1", registry.port))
    yield proxy
    proxy.close()


def remove_test_images(client, label: str = f"{TEST_LABEL}=1") -> None:
    """Remove images carrying ``label`` (all their tags).  Images still used
    by a container are left alone."""
    import docker.errors

    for img in client.images.list(filters={"label": label}):
        for ref in img.tags or [img.id]:
            try:
                client.images.remove(ref, noprune=False)
            except docker.errors.APIError:
                pass


class ImageTracker:
    def __init__(self, client) -> None:
        self.client = client
        self.refs: list[str] = []

    def add(self, *refs: str) -> None:
        self.refs.extend(refs)

    def remove_all(self) -> None:
        import docker.errors

        for ref in reversed(self.refs):
            try:
                self.client.images.remove(ref, force=True)
            except docker.errors.APIError:
                pass


@pytest.fixture
def image_tracker(docker_client):
    tracker = ImageTracker(docker_client)
    yield tracker
    tracker.remove_all()
