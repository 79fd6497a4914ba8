"""`jenkinsctl push` against a real docker-registry with htpasswd auth, and
through a fault-injecting proxy in front of it."""

from __future__ import annotations

import io
import os
import tarfile
import time
import uuid

import pytest

from jenkinsctl import registry as registrylib
from jenkinsctl.errors import RegistryError
from tests.pipeline.helpers import jenkinsctl
from tests.support.engine import TEST_LABELS

pytestmark = pytest.mark.engine

PATH = "jenkinsctl-test/push"  # one repository, so the session uploads each layer once


def registry_env(registry, url: str) -> dict[str, str]:
    """The CLI environment for pushing to ``url`` with ``registry``'s
    credentials: they are sent only to the configured registry.url."""
    return {**registry.env, "JENKINSCTL_REGISTRY_URL": url}


def build_small(client, size: int = 256 * 1024) -> str:
    """A FROM scratch image with one fresh random layer; returns its id."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", b"FROM scratch\nCOPY blob /blob\n"), ("blob", os.urandom(size))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    img, _ = client.images.build(fileobj=buf, custom_context=True, labels=dict(TEST_LABELS), rm=True)
    return img.id


@pytest.fixture
def fresh_image(docker_client, image_tracker):
    """tag(registry_url, tag) -> the ref of a new image tagged there."""
    image_id = build_small(docker_client)
    image_tracker.add(image_id)

    def tag(registry_url: str, tag: str) -> str:
        repo = f"{registry_url}/{PATH}"
        docker_client.api.tag(image_id, repo, tag)
        image_tracker.add(f"{repo}:{tag}")
        return repo

    tag.image_id = image_id
    return tag


def test_push_reports_the_digest_and_a_repush_uploads_no_layer(registry, fault_proxy, fresh_image):
    repo = fresh_image(registry.url, "v1")
    env = {**registry_env(registry, registry.url), "BRANCH_NAME": "PR-1"}  # a branch that sets no moving tag
    first = jenkinsctl("push", "--image", repo, "--tag", "v1", "-o", "json", env=env)
    assert first.rc == 0, first.stderr
    result = first.json
    assert result["digest"] == registry.manifest_digest(PATH, "v1")
    assert result["layers_pushed"] == 1 and result["attempts"] == 1
    assert result["tags"] == ["v1"]

    # The same image again, through the proxy that counts the bytes sent.
    via = fresh_image(fault_proxy.url, "v1")
    env = {**registry_env(registry, fault_proxy.url), "BRANCH_NAME": "PR-1"}
    again = jenkinsctl("push", "--image", via, "--tag", "v1", "-o", "json", env=env)
    assert again.rc == 0, again.stderr
    assert again.json["digest"] == result["digest"]
    assert again.json["layers_pushed"] == 0 and again.json["layers_existing"] == 1
    assert fault_proxy.uploaded_bytes() == 0
    assert "Layer already exists" in again.stderr


def test_moving_tag_is_pushed_only_after_the_immutable_tag(registry, fault_proxy, fresh_image):
    repo = fresh_image(fault_proxy.url, "abc123def456-b9")
    r = jenkinsctl("push", "--image", repo, "--tag", "abc123def456-b9", "-o", "json",
                   env={**registry_env(registry, fault_proxy.url), "BRANCH_NAME": "main"})
    assert r.rc == 0, r.stderr
    assert r.json["tags"] == ["abc123def456-b9", "latest"]
    puts = [rec.path.rsplit("/", 1)[1] for rec in fault_proxy.requests if rec.method == "PUT" and "/manifests/" in rec.path]
    assert puts == ["abc123def456-b9", "latest"]
    assert registry.manifest_digest(PATH, "latest") == r.json["digest"]

    # A branch that is not configured for it sets no moving tag.
    fault_proxy.clear()
    r = jenkinsctl("push", "--image", repo, "--tag", "abc123def456-b9", "-o", "json",
                   env={**registry_env(registry, fault_proxy.url), "BRANCH_NAME": "feature/x"})
    assert r.rc == 0 and r.json["tags"] == ["abc123def456-b9"]


def test_503_twice_then_the_push_succeeds(registry, fault_proxy, fresh_image, docker_client):
    repo = fresh_image(fault_proxy.url, "retry503")
    fault_proxy.fail(503, times=2, method="PUT", path=r"/manifests/")
    waits, lines = [], []
    result = registrylib.push(docker_client, repository=repo, tags=["retry503"], auth=registry.auth, attempts=4,
                        sleep=waits.append, log=lines.append)
    assert result.attempts == 3 and waits == [1.0, 3.0]
    assert result.digest == registry.manifest_digest(PATH, "retry503")
    manifest_puts = [r.status for r in fault_proxy.requests if r.method == "PUT" and "/manifests/" in r.path]
    assert manifest_puts == [503, 503, 201]
    assert sum("503 Service Unavailable" in line and "retrying" in line for line in lines) == 2


def test_connection_reset_mid_blob_is_retried(registry, fault_proxy, fresh_image, docker_client):
    # A 1 MiB layer the registry has never seen, cut off after 64 KiB.
    repo = fresh_image(fault_proxy.url, "reset")
    fault_proxy.reset(times=1, after=64 * 1024, method="PATCH", path=r"/blobs/uploads/")
    lines: list[str] = []
    result = registrylib.push(docker_client, repository=repo, tags=["reset"], auth=registry.auth,
                        sleep=lambda s: None, log=lines.append)
    assert result.digest == registry.manifest_digest(PATH, "reset")
    patches = [r for r in fault_proxy.requests if r.method == "PATCH"]
    assert patches[0].fault == "reset" and patches[0].body_bytes == 64 * 1024
    assert any(r.status == 202 and r.body_bytes >= 256 * 1024 for r in patches[1:])  # sent again, whole
    assert result.layers_pushed == 1
    # The engine retries a broken layer upload itself; it is reported.
    assert any("the engine is retrying" in line for line in lines)


def test_connection_reset_on_the_manifest_is_retried_by_jenkinsctl(registry, fault_proxy, fresh_image,
                                                                    docker_client):
    repo = fresh_image(fault_proxy.url, "reset-manifest")
    fault_proxy.reset(times=1, after=10, method="PUT", path=r"/manifests/")
    waits: list[float] = []
    result = registrylib.push(docker_client, repository=repo, tags=["reset-manifest"], auth=registry.auth,
                        sleep=waits.append)
    assert result.attempts == 2 and waits == [1.0]
    assert result.digest == registry.manifest_digest(PATH, "reset-manifest")


@pytest.mark.parametrize("how", ["registry-401", "wrong-password"])
def test_401_fails_at_once_and_the_password_appears_nowhere(how, registry, fault_proxy, fresh_image, tmp_path):
    repo = fresh_image(fault_proxy.url, "denied")
    env = dict(registry_env(registry, fault_proxy.url))
    if how == "registry-401":
        fault_proxy.strip_auth()  # the registry itself answers 401 to the right password
    else:
        env["JENKINSCTL_REGISTRY_PASSWORD"] = "wrong-" + registry.password
    error_file = tmp_path / "error.json"
    started = time.monotonic()
    env["BRANCH_NAME"] = "main"  # would set latest, after the immutable tag: never reached
    r = jenkinsctl("--debug", "push", "--image", repo, "--tag", "denied", "-o", "json",
                   "--error-file", str(error_file), env=env)
    elapsed = time.monotonic() - started
    assert r.rc == 5, r.everything
    assert "unauthorized: authentication required" in r.stderr
    assert r.json["error"]["details"]["retryable"] is False
    assert "hint: the registry rejected the credentials" in r.stderr
    assert sum(1 for rec in fault_proxy.requests if rec.path == "/v2/") == 1  # one attempt, no retry
    assert elapsed < 10
    for secret in {registry.password, env["JENKINSCTL_REGISTRY_PASSWORD"]}:
        assert secret not in r.everything
        assert secret not in error_file.read_text()
    assert registry.manifest_digest(PATH, "denied") is None


def test_missing_local_image_is_reported_before_any_registry_traffic(registry, fault_proxy):
    repo = f"{fault_proxy.url}/{PATH}"
    r = jenkinsctl("push", "--image", repo, "--tag", f"never-built-{uuid.uuid4().hex[:6]}",
                   env={**registry_env(registry, fault_proxy.url), "BRANCH_NAME": "main"})
    assert r.rc == 5 and "no local image" in r.stderr and "hint: build it first" in r.stderr
    assert fault_proxy.requests == []


def test_push_transient_failures_exhaust_the_attempts(registry, fault_proxy, fresh_image, docker_client):
    repo = fresh_image(fault_proxy.url, "down")
    fault_proxy.fail(503, times=None, method="PUT", path=r"/manifests/")
    waits: list[float] = []
    with pytest.raises(RegistryError) as e:
        registrylib.push(docker_client, repository=repo, tags=["down"], auth=registry.auth, attempts=3,
                   sleep=waits.append, moving_tags=["latest"])
    assert "after 3 attempts" in e.value.message and waits == [1.0, 3.0]
    # the moving tag was never pushed
    assert not any("/manifests/latest" in rec.path for rec in fault_proxy.requests)


def test_push_without_tag_pushes_the_default_tag_of_the_working_tree(registry, fresh_image, tmp_path):
    from tests.pipeline.helpers import git

    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "x")
    sha12 = git(tmp_path, "rev-parse", "HEAD")[:12]
    repo = fresh_image(registry.url, sha12)
    env = registry_env(registry, registry.url)
    r = jenkinsctl("push", "--image", repo, "-o", "json", env={**env, "BRANCH_NAME": "PR-1"}, cwd=str(tmp_path))
    assert r.rc == 0, r.stderr
    assert r.json["tags"] == [sha12] and registry.manifest_digest(PATH, sha12) == r.json["digest"]
    r = jenkinsctl("push", "--image", repo, env={**env, "BUILD_NUMBER": "5"}, cwd=str(tmp_path))
    assert r.rc == 2 and f"{sha12}-b5" in r.stderr and "hint: build it first" in r.stderr
