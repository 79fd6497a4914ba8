"""Provisioning owns only what it provisions.

CI and the apps it deploys often share one engine and one project name.
An app deployed with `jenkinsctl deploy` (its container, its named volume
with data, a kept version) must survive `plan`, `apply`, `down` and
`down --volumes` of the CI, whatever the project is called."""

from __future__ import annotations

import pytest

from jenkinsctl.engine import PROVISION_ROLES, ROLE_LABEL, is_provisioned, ownership_labels
from tests.deploy.helpers import EXAMPLE, result_of, run_cli, wait_http, write_config
from tests.support.registry import free_port

pytestmark = pytest.mark.engine


def test_only_provisioning_roles_count_as_provisioned():
    own = ownership_labels("ci")
    for kind, roles in PROVISION_ROLES.items():
        for role in roles:
            assert is_provisioned({**own, ROLE_LABEL: role}, "ci", kind)
        # What deploy makes: role "deploy", or no role at all (resources
        # labelled before roles existed, locks).
        assert not is_provisioned({**own, ROLE_LABEL: "deploy"}, "ci", kind)
        assert not is_provisioned(own, "ci", kind)
        assert not is_provisioned({**ownership_labels("other"), ROLE_LABEL: roles[0]}, "ci", kind)


@pytest.mark.case(21)
def test_plan_apply_down_and_down_volumes_leave_a_deployed_app_and_its_data(project, registry, figure):
    from jenkinsctl import registry as registrylib

    client = project.client
    repo = f"{registry.url}/safety/web"
    client.images.build(path=str(EXAMPLE), tag=f"{repo}:v1", buildargs={"APP_VERSION": "1.0.0"}, rm=True)
    client.images.build(path=str(EXAMPLE), tag=f"{repo}:v2", buildargs={"APP_VERSION": "2.0.0"}, rm=True)
    pinned = {t: f"{repo}@{registrylib.push(client, repository=repo, tags=[t], auth=registry.auth).digest}"
              for t in ("v1", "v2")}
    app, port = f"{project.name}-app", free_port()
    data = f"{project.name}-appdata"
    # The deploy config names the same project as the CI's config.
    cfg = write_config(project.tmp / "deploy.yaml", {"web": {
        "strategy": "container", "target": app, "ports": [f"127.0.0.1:{port}:8080"],
        "volumes": [f"{data}:/data"], "proxy": {"watch": 0}}}, project=project.name)
    try:
        for ref in pinned.values():   # two deploys: the app and one kept version
            result_of(run_cli("--config", cfg, "-o", "json", "deploy", "--image", ref, "--to", "web",
                              env=registry.env))
        client.containers.get(app).exec_run(["sh", "-c", "echo precious > /data/file"], user="root")
        kept = f"{app}.v1"
        assert client.containers.get(kept)

        def app_intact() -> None:
            assert wait_http("127.0.0.1", port, timeout=10) == "2.0.0"
            out = client.containers.get(app).exec_run(["cat", "/data/file"]).output.decode().strip()
            assert out == "precious"
            assert client.containers.get(kept)
            assert client.volumes.get(data)
            assert client.containers.get(proxy).status == "running"

        # Proxy mode (the default with ports): the proxy, its network and
        # its volume are the app's too.
        proxy = f"{app}.proxy"
        assert client.containers.get(proxy)
        names = {app, kept, data, proxy, f"{app}.net", f"{app}.proxy-run"}
        checks = []
        assert not [c for c in project.provisioner().plan() if c.name in names]
        project.provisioner(project.config(agents=[{"name": "agent", "count": 1}])).apply(wait_timeout=120)
        app_intact()
        checks.append("apply")
        assert not [c for c in project.provisioner().plan() if c.name in names]
        removed = project.provisioner().down()["removed"]
        assert not [c for c in removed if c["name"] in names], removed
        assert ("container", f"{project.name}-controller") in {(c["kind"], c["name"]) for c in removed}
        app_intact()
        checks.append("down")
        removed = project.provisioner().down(volumes=True)["removed"]
        assert not [c for c in removed if c["name"] in names], removed
        assert ("volume", f"{project.name}-jenkins-home") in {(c["kind"], c["name"]) for c in removed}
        app_intact()
        checks.append("down --volumes")
        figure(app_serving_after=checks, data_kept=True, kept_versions=1,
               provisioning_resources_removed=len(removed))
    finally:
        for c in client.containers.list(all=True, filters={"name": app}):
            c.remove(force=True)
        for v in client.volumes.list(filters={"name": data}):
            v.remove(force=True)
