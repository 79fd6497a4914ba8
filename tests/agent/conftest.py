"""Real agent containers from the real agent image, on the real engine.

The image is built once per session (tests.support.agent.agent_image); the
two agents most tests share are started once per module.  Everything
carries TEST_LABELS and is removed by the session's docker_client fixture.
"""

from __future__ import annotations

import pytest

from tests.support.agent import agent_image, remove_quietly, start_agent  # noqa: F401


@pytest.fixture(scope="module")
def keystore(tmp_path_factory):
    from jenkinsctl.keys import KeyStore

    return KeyStore(tmp_path_factory.mktemp("state"))


@pytest.fixture(scope="module")
def agent_root(tmp_path_factory):
    """The group's remote_fs on the host; each node gets ROOT/NODE, mounted
    at the same path in its agent."""
    root = tmp_path_factory.mktemp("agents")
    root.chmod(0o755)
    return root


@pytest.fixture(scope="module")
def agents(docker_client, agent_image, keystore, agent_root):  # noqa: F811
    started = [start_agent(docker_client, agent_image, keystore, node, root=agent_root)
               for node in ("agent-1", "agent-2")]
    yield started
    for a in started:
        remove_quietly(a.container)
