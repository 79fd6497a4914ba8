"""The swarm strategy on a real single-node Swarm (mode=host published
ports, as the ingress mesh does not work here), images from the htpasswd
registry with the auth passed to the node."""

from __future__ import annotations

import uuid

import pytest

from jenkinsctl.config import Health
from jenkinsctl.deploy import _default_target, make_strategy
from jenkinsctl.deploy.swarm import SwarmStrategy
from jenkinsctl.errors import DeployError
from tests.deploy.helpers import PREFIX, ProbeLoop, result_of, run_cli, wait_http, write_config
from tests.deploy.helpers import DEPLOY_TEST_LABELS as TEST_LABELS
from tests.support.registry import free_port

pytestmark = pytest.mark.engine


def test_swarm_converges_then_rolls_back_a_failing_update(swarm, example_images, registry, cli_env, tmp_path):
    service = f"{PREFIX}{uuid.uuid4().hex[:6]}"
    port = free_port()
    cfg = write_config(tmp_path / "j.yaml", {"svc": {
        "strategy": "swarm", "target": service, "ports": [f"{port}:8080"], "timeout": 120}})
    # Created from the config, then updated through the CLI.
    created = result_of(run_cli("--config", cfg, "-o", "json", "deploy", "--image",
                                example_images["v1"].pinned, "--to", "svc", env=cli_env))
    assert created["deploy"]["outcome"] == "created"
    assert wait_http("127.0.0.1", port) == "1.0.0"
    updated = result_of(run_cli("--config", cfg, "-o", "json", "deploy", "--image",
                                f"{example_images['v2'].repository}:v2", "--to", "svc", env=cli_env))
    assert updated["digest"] == example_images["v2"].digest          # the tag was pinned to its digest
    d = updated["deploy"]
    assert d["outcome"] == "deployed" and d["details"]["state"] == "converged"
    assert d["details"]["order"] == "stop-first"     # mode=host ports cannot start-first on one node
    assert d["previous"]["image"] == example_images["v1"].pinned
    assert wait_http("127.0.0.1", port) == "2.0.0"
    spec = swarm.api.inspect_service(service)["Spec"]
    assert spec["UpdateConfig"]["FailureAction"] == "rollback"
    assert spec["UpdateConfig"]["Order"] == "stop-first"
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == example_images["v2"].pinned

    # A failing image: Swarm rolls back, the command says so, v2 serves.
    with ProbeLoop("127.0.0.1", port, interval=0.05) as probe:
        bad = run_cli("--config", cfg, "deploy", "--image", example_images["bad"].pinned, "--to", "svc",
                      env=cli_env)
    assert bad.returncode == 6, bad.stderr
    assert "rolled it back" in bad.stderr and "unhealthy on purpose" in bad.stderr
    assert wait_http("127.0.0.1", port) == "2.0.0"
    # Unlike the container strategy, Swarm with mode=host ports has nothing
    # in front of a starting task: the failing version answers until its
    # health check fails and Swarm rolls back.  Recorded, not hidden.
    print(f"\nswarm mode=host, failing update: probe answers {dict(probe.answers)}, {probe.failures} failed")
    assert probe.versions[-1] == "2.0.0"
    spec = swarm.api.inspect_service(service)["Spec"]
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == example_images["v2"].pinned

    # Swarm already went back, and keeps one previous spec only: say so.
    again = run_cli("--config", cfg, "rollback", "--to", "svc", env=cli_env)
    assert again.returncode == 6 and "already rolled back the last update" in again.stderr
    swarm.api.remove_service(service)


def test_swarm_start_first_without_published_ports_and_rollback(swarm, example_images, registry):
    from jenkinsctl.config import load_config

    service = f"{PREFIX}{uuid.uuid4().hex[:6]}"
    config = load_config(None, env={})
    target = _default_target("swarm", service)
    import dataclasses

    target = dataclasses.replace(target, timeout=90, health=Health(None, 30, 1))
    strategy = make_strategy(target, config=config, client=swarm, auth=registry.auth, labels=TEST_LABELS)
    assert isinstance(strategy, SwarmStrategy)
    strategy.monitor = 2.0
    strategy.deploy(example_images["v1"])
    out = strategy.deploy(example_images["v2"])
    assert out.details["order"] == "start-first" and out.details["state"] == "converged"
    back = strategy.rollback()
    assert back.outcome == "rolled-back" and back.image == example_images["v1"].pinned
    spec = swarm.api.inspect_service(service)["Spec"]
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == example_images["v1"].pinned
    tasks = swarm.api.tasks(filters={"service": service, "desired-state": "running"})
    assert [t["Status"]["State"] for t in tasks] == ["running"]
    with pytest.raises(DeployError, match="--version is for container targets"):
        strategy.rollback("v1")
    swarm.api.remove_service(service)
