"""An empty controller.image means apply builds resources/controller.

That build starts FROM jenkins/jenkins:lts-jdk17 and runs jenkins-plugin-cli,
so it cannot succeed on a machine without Docker Hub; what can be checked
here is that a base that cannot be pulled fails with a hint before any
controller resource exists (the build arg JENKINS_IMAGE is the seam)."""

from __future__ import annotations

import pytest

from jenkinsctl import controller_image
from jenkinsctl.errors import EngineError, ProvisionError


def test_reference_is_a_content_hash_of_the_context():
    ref = controller_image.controller_image_reference()
    assert ref.startswith("jenkinsctl/controller:") and ref == controller_image.controller_image_reference()


def test_unpullable_base_fails_with_a_hint_and_creates_no_controller(project, monkeypatch):
    import docker

    # A base image name no registry resolves: the same failure as an
    # unreachable Docker Hub, without depending on the network.
    monkeypatch.setattr(controller_image, "_build_args",
                        lambda: {"JENKINS_IMAGE": "jenkinsctl-test.invalid/no/such:image"}, raising=False)
    monkeypatch.setattr(controller_image, "REPOSITORY", f"jenkinsctl-test/{project.name}-controller")
    cfg = project.config(image=None)
    with pytest.raises((EngineError, ProvisionError)) as info:
        project.provisioner(cfg).apply(wait_timeout=30)
    text = info.value.message + " " + (info.value.hint or "")
    assert "building the controller image failed" in text
    assert "controller.image" in text
    client = docker.from_env()
    assert not [c for c in project.containers() if "controller" in c.name]
    assert not client.volumes.list(filters={"label": f"io.jenkinsctl.project={project.name}"})
