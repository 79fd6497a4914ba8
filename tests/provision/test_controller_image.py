"""An empty controller.image means apply builds resources/controller.

That build starts FROM jenkins/jenkins:<pinned LTS>-jdk21 and runs
jenkins-plugin-cli, so it cannot succeed on a machine without Docker Hub;
what can be checked here is that a base that cannot be pulled fails with a
hint before any controller resource exists (the build arg JENKINS_IMAGE is
the seam), and that the engine's builder turns the Dockerfile's ARG lines
into exactly the pinned base image."""

from __future__ import annotations

import io
import re
import tarfile

import pytest

from jenkinsctl import controller_image
from jenkinsctl.resources import resource_path
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


def test_the_builder_resolves_the_base_to_the_pinned_lts(docker_client, test_labels, image_tracker):
    """The real Dockerfile's ARG lines (before FROM), built on the engine's
    own builder with a local stand-in after FROM: the JENKINS_IMAGE it
    computes from JENKINS_VERSION is the pinned -jdk21 image, and an
    overridden JENKINS_VERSION reaches it."""
    text = resource_path("controller/Dockerfile").read_text()
    head = [line for line in text.split("\nFROM ", 1)[0].splitlines() if line.startswith("ARG ")]
    assert [line.split("=", 1)[0] for line in head] == ["ARG JENKINS_VERSION", "ARG JENKINS_IMAGE"]
    dockerfile = "\n".join(head + ["FROM debian:bookworm-slim", "ARG JENKINS_IMAGE",
                                    "LABEL io.jenkinsctl.test.base=${JENKINS_IMAGE}", ""]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    pins = controller_image.pinned_versions()
    for args, want in (({}, pins.base_image), ({"JENKINS_VERSION": "2.999.1"}, "jenkins/jenkins:2.999.1-jdk21")):
        buf.seek(0)
        image, _ = docker_client.images.build(fileobj=buf, custom_context=True, rm=True, labels=test_labels,
                                              buildargs=args)
        image_tracker.add(image.id)
        assert image.labels["io.jenkinsctl.test.base"] == want
    assert re.fullmatch(r"jenkins/jenkins:2\.\d{3}\.\d+-jdk21", pins.base_image)
