"""jenkinsctl's own agent image, launched by the emulator exactly as the
pinned ssh-slaves plugin would: SFTP copy of the class-file-65 remoting.jar,
then `java -jar` with the java on the image's login PATH.

The agent image must run Java 21 for this to pass (Jenkins >= 2.545 agents
need it): an image still on Java 17 fails here with the real
UnsupportedClassVersionError, which the assertion message shows."""
from __future__ import annotations

import pytest

from emulator_helpers import CREDS, SSH, jenkins_post_xml, pinned, ssh_key_credential_xml
from tests.support.agent import agent_image, remove_quietly, start_agent  # noqa: F401

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def test_jenkinsctls_agent_image_launches(fake_jenkins, jenkins_client, docker_client, agent_image,  # noqa: F811
                                          tmp_path):
    from jenkinsctl.keys import KeyStore

    keys = KeyStore(tmp_path / "keys")
    root = tmp_path / "agents"
    root.mkdir()
    agent = start_agent(docker_client, agent_image, keys, "img-1", root=root)
    try:
        jenkins_post_xml(jenkins_client, CREDS + "createCredentials",
                         ssh_key_credential_xml("agent-key", "jenkins", keys.client_key().private_key()))
        jenkins_client.create_node("img-1", remoteFS=agent.remote_fs, launcher=SSH, launcher_params={
            "host": "127.0.0.1", "port": agent.port, "credentialsId": "agent-key", "maxNumRetries": 0,
            "launchTimeoutSeconds": 30, "sshHostKeyVerificationStrategy": pinned(agent.host_key_line)})
        fake_jenkins.wait_for_launch("img-1", timeout=90)
        log = "\n".join(fake_jenkins.computer("img-1").log)
        info = jenkins_client.get_node_info("img-1")
        assert info["offline"] is False, f"{info['offlineCauseReason']}\n{log}"
        assert "[SSH] Copied" in log and "Agent successfully connected and online" in log
    finally:
        remove_quietly(agent.container)
