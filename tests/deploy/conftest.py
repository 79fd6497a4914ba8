"""Fixtures for the deploy tests: the example app built in several versions
and pushed to the session's htpasswd registry, unique container names with
cleanup, the Swarm and the CLI environment."""

from __future__ import annotations

import os
import uuid

import pytest

from jenkinsctl.deploy import ImageRef
from tests.deploy.helpers import EXAMPLE
from tests.deploy.helpers import DEPLOY_TEST_LABELS, PREFIX
from tests.support.engine import IN_CI, TEST_LABEL, remove_test_resources
from tests.support.swarm import ensure_swarm, remove_test_services


@pytest.fixture(scope="session", autouse=True)
def _remove_deploy_test_resources(docker_client):
    yield
    remove_test_resources(docker_client, label=f"{TEST_LABEL}=deploy")
    # Deploy proxies of this directory's targets (named PREFIX...): they
    # carry the project's labels, not the test label.  A sweep, so off like
    # the one above when sessions share the engine (Proxy.remove also
    # disconnects every app from the proxy's network).
    if os.environ.get("JENKINSCTL_TEST_NO_SWEEP") and not IN_CI:
        return
    from jenkinsctl.deploy.proxy import PROXY_LABEL, Proxy, ProxySettings

    for c in docker_client.containers.list(all=True, filters={"label": PROXY_LABEL}):
        if c.labels.get(PROXY_LABEL, "").startswith(PREFIX):
            Proxy(docker_client, c.labels[PROXY_LABEL], {}, ProxySettings()).remove()
    for n in docker_client.networks.list(filters={"label": PROXY_LABEL}):
        if (n.attrs.get("Labels") or {}).get(PROXY_LABEL, "").startswith(PREFIX):
            Proxy(docker_client, n.attrs["Labels"][PROXY_LABEL], {}, ProxySettings()).remove()

# version name -> build args of the example app
VERSIONS = {
    "v1": {"APP_VERSION": "1.0.0"},
    "v2": {"APP_VERSION": "2.0.0"},
    "v3": {"APP_VERSION": "3.0.0"},
    "bad": {"APP_VERSION": "bad", "APP_HEALTH": "fail"},
    # passes /health, answers 500 to real requests: only the watch window catches it
    "errors": {"APP_VERSION": "errors", "APP_HEALTH": "errors"},
}


@pytest.fixture(scope="session")
def example_images(docker_client, registry) -> dict[str, ImageRef]:
    """The example app as v1, v2, v3 and a deliberately unhealthy 'bad',
    pushed to the registry; each pinned by digest."""
    from jenkinsctl import registry as registrylib

    repo = f"{registry.url}/deploytest/web"
    out = {}
    for name, args in VERSIONS.items():
        docker_client.images.build(path=str(EXAMPLE), tag=f"{repo}:{name}", buildargs=args, labels=DEPLOY_TEST_LABELS,
                                   rm=True)
        pushed = registrylib.push(docker_client, repository=repo, tags=[name], auth=registry.auth)
        out[name] = ImageRef(repo, pushed.digest, (name,))
    return out


@pytest.fixture
def cname(docker_client):
    """A unique container name; the container and its kept versions,
    candidates and locks are removed after the test."""
    import docker.errors

    name = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    yield name
    for c in docker_client.containers.list(all=True, filters={"name": name}):
        if c.name == name or c.name.startswith(name + "."):
            try:
                c.remove(force=True)
            except docker.errors.APIError:
                pass


@pytest.fixture
def network(docker_client):
    name = f"{PREFIX}net-{uuid.uuid4().hex[:6]}"
    net = docker_client.networks.create(name, driver="bridge", labels=DEPLOY_TEST_LABELS)
    yield name
    try:
        net.reload()
        for c in net.containers:
            net.disconnect(c, force=True)
        net.remove()
    except Exception:  # noqa: BLE001
        pass


@pytest.fixture(scope="session")
def swarm(docker_client):
    ensure_swarm(docker_client)
    yield docker_client
    remove_test_services(docker_client, prefix=PREFIX, label=f"{TEST_LABEL}=deploy")


@pytest.fixture
def cli_env(registry) -> dict[str, str]:
    # Credentials go only to registry.url, so name the test registry there.
    return {**registry.env, "JENKINSCTL_REGISTRY_URL": registry.url}
