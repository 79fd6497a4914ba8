"""Case 19: load.  N agents (20 by default) applied, then `down`, three
times, with the emulator in-process as the external controller and real
agent containers: after each cycle nothing is leaked (container, network,
volume, node, credential), and the peak RSS of each jenkinsctl process is
recorded (VmHWM of that process) to show it stays flat.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.robustness.test_provision_faults import PW_ENV, external_config
from tests.support.agent import agent_image  # noqa: F401


@pytest.mark.case(19)
def test_many_agents_apply_down_cycles_leak_nothing_and_memory_stays_flat(
        fake_jenkins_factory, docker_engine, agent_image, project_name, cli, tmp_path, figure):  # noqa: F811
    agents = int(os.environ.get("JENKINSCTL_ROBUSTNESS_AGENTS", "20"))
    cycles = int(os.environ.get("JENKINSCTL_ROBUSTNESS_CYCLES", "3"))
    emu = fake_jenkins_factory()
    cfg = external_config(tmp_path, project_name, emu.url, agent_image,
                          groups=[{"name": "load", "count": agents, "executors": 1}])
    label = {"label": f"io.jenkinsctl.project={project_name}"}
    rss: list[int] = []
    apply_s: list[float] = []
    down_s: list[float] = []
    for cycle in range(1, cycles + 1):
        up = cli("-c", cfg, "apply", "--wait-timeout", "240", env=PW_ENV, timeout=420)
        assert up.rc == 0, f"cycle {cycle} apply:\n{up.output[-3000:]}"
        assert f"{agents}/{agents} nodes online" in up.stdout, up.stdout[-1000:]
        assert len(docker_engine.containers.list(filters=label)) == agents
        nodes = emu.state()["nodes"]
        assert len(nodes) == agents and all(n["online"] for n in nodes.values())
        down = cli("-c", cfg, "down", "--volumes", env=PW_ENV, timeout=300)
        assert down.rc == 0, f"cycle {cycle} down:\n{down.output[-3000:]}"
        time.sleep(0.2)
        leaked = {
            "containers": [c.name for c in docker_engine.containers.list(all=True, filters=label)],
            "networks": [n.name for n in docker_engine.networks.list(filters=label)],
            "volumes": [v.name for v in docker_engine.volumes.list(filters=label)],
            "nodes": sorted(emu.state()["nodes"]),
            "credentials": emu.state()["credentials"],
        }
        assert not any(leaked.values()), f"cycle {cycle} leaked: {leaked}"
        rss += [up.peak_rss_kib, down.peak_rss_kib]
        apply_s.append(round(up.seconds, 1))
        down_s.append(round(down.seconds, 1))
    applies = rss[0::2]
    # flat: the last apply's peak is within 10 % (or 8 MiB) of the first's
    assert applies[-1] <= max(applies[0] * 1.10, applies[0] + 8192), applies
    figure(agents=agents, cycles=cycles, peak_rss_kib_apply=applies, peak_rss_kib_down=rss[1::2],
           apply_s=apply_s, down_s=down_s)
