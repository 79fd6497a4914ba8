"""Fixtures of the examples/pyapp scenario tests."""

from __future__ import annotations

import pytest

from tests.scenario import pyapp
from tests.fakejenkins.fixtures import docker_engine, emulator_image  # noqa: F401 - the controller emulator
from tests.support.agent import agent_image  # noqa: F401 - the agent image, built from this checkout
from tests.support.fixtures import registry  # noqa: F401 - the real registry with htpasswd auth


@pytest.fixture(scope="session")
def swarm(docker_client):
    """A single-node Swarm on the test engine.  Left active afterwards when
    something else still runs services on it; left again when this session
    created it and nothing else uses it."""
    created = pyapp.ensure_swarm(docker_client)
    yield docker_client
    pyapp.remove_all_test_stacks(docker_client)
    pyapp.remove_db_secret(docker_client)
    if created and not docker_client.services.list():
        pyapp.run([pyapp.docker_cli(), "swarm", "leave", "--force"], check=False)


@pytest.fixture(scope="session")
def pyapp_images(docker_client, registry):
    """pyapp's database image pushed to the test registry (the stack's nodes
    pull it from there), and a builder for web images."""
    db_ref = f"{registry.url}/pyapp/db:10.11"
    pyapp.build(pyapp.PYAPP / "db", db_ref)
    pyapp.push(docker_client, db_ref, registry.auth)

    def web(version: str, health: str = "ok") -> tuple[str, str]:
        """Build and push web:VERSION; (repository, digest)."""
        repo = f"{registry.url}/pyapp/web"
        ref = f"{repo}:{version}" + ("" if health == "ok" else "-broken")
        pyapp.build(pyapp.PYAPP, ref, build_args={"APP_VERSION": version, "APP_HEALTH": health})
        return repo, pyapp.push(docker_client, ref, registry.auth)

    yield web
    for img in docker_client.images.list(name=f"{registry.url}/pyapp/*"):
        for ref in img.tags or [img.id]:  # deployed by digest: some have no tag left
            try:
                docker_client.images.remove(ref)
            except Exception:  # noqa: BLE001 - still used by a container being removed
                pass
