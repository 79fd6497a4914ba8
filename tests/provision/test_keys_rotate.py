"""`jenkinsctl keys rotate` replaces the keys and re-registers: the agents
come back with new host keys, the nodes pin them, the old ones are refused."""

from __future__ import annotations

import os
import subprocess
import sys

from jenkinsctl.jenkins_api import node_fields


def test_rotate_reregisters_agents_with_new_pinned_keys(project):
    cfg = project.config(agents=[{"name": "agent", "count": 1}])
    prov = project.provisioner(cfg)
    prov.apply(wait_timeout=120)
    old_host = prov.keys.host_key("agent-1").host_key_entry
    old_client = prov.keys.client_key().fingerprint
    container_id = project.client.containers.get(f"{project.name}-agent-1").id

    out = subprocess.run([sys.executable, "-m", "jenkinsctl", "--config", cfg.source, "-o", "json", "keys",
                          "rotate"], capture_output=True, text=True, env={**os.environ, **project.env},
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "PRIVATE KEY" not in out.stdout + out.stderr

    keys = project.provisioner(cfg).keys
    new_host = keys.host_key("agent-1").host_key_entry
    assert new_host != old_host and keys.client_key().fingerprint != old_client
    # The agent was recreated with the new host key, and its node pins it and is online.
    assert project.client.containers.get(f"{project.name}-agent-1").id != container_id
    api = project.api()
    fields = node_fields(api.node_config("agent-1"))
    assert f"{fields['keyAlgorithm']} {fields['key']}" == new_host
    assert api.get_node("agent-1").online
    # And nothing is left to do.
    assert {c.action for c in project.provisioner(cfg).plan()} == {"unchanged"}
