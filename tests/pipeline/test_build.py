"""`jenkinsctl build` on the real engine, with both builders."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest

from jenkinsctl import build as buildlib, engine as enginelib
from tests.pipeline.helpers import git, jenkinsctl
from tests.support.engine import TEST_LABEL

pytestmark = pytest.mark.engine

REPO = "jenkinsctl-test/build"
TEST_LABEL_ARG = f"{TEST_LABEL}=1"


@pytest.fixture(scope="module")
def built(docker_client):
    """Refs built by this module, removed at its end."""
    refs: list[str] = []
    yield refs
    for ref in reversed(refs):
        try:
            docker_client.images.remove(ref, force=True)
        except Exception:  # noqa: BLE001 - already gone
            pass


@pytest.fixture
def app(tmp_path):
    """A small git-tracked context whose remote URL carries a token."""
    (tmp_path / "Dockerfile").write_text(
        "FROM debian:bookworm-slim\n"
        "ARG GREETING=hi\n"
        'RUN echo "$GREETING" > /greeting\n'
        "COPY app.txt /app.txt\n")
    (tmp_path / "app.txt").write_text("v1\n")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "app")
    git(tmp_path, "remote", "add", "origin", "https://bot:tok3n-value@git.example.com/team/app.git")
    return tmp_path


@pytest.mark.parametrize("builder", ["buildkit", "classic"])
def test_build_sets_oci_labels_and_an_unchanged_rebuild_is_fully_cached(builder, app, docker_client, built):
    sha = git(app, "rev-parse", "HEAD")
    tag = f"{builder}-{uuid.uuid4().hex[:8]}"
    args = ("build", str(app), "--image", REPO, "--tag", tag, "--builder", builder, "--label", TEST_LABEL_ARG,
            "--build-arg", f"GREETING=hello-{tag}", "-o", "json")
    first = jenkinsctl(*args)
    built.append(f"{REPO}:{tag}")
    assert first.rc == 0, first.stderr
    result = first.json
    assert result["builder"] == builder and result["refs"] == [f"{REPO}:{tag}"]
    assert result["total_steps"] == 2
    labels = docker_client.images.get(f"{REPO}:{tag}").labels
    assert labels["org.opencontainers.image.revision"] == sha
    assert labels["org.opencontainers.image.source"] == "https://git.example.com/team/app.git"
    assert labels["org.opencontainers.image.version"] == tag
    created = dt.datetime.strptime(labels["org.opencontainers.image.created"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs((dt.datetime.utcnow() - created).total_seconds()) < 300
    assert labels[TEST_LABEL] == "1"
    assert "tok3n" not in first.everything and "tok3n" not in str(labels)
    assert "\x1b[" not in first.everything  # plain output on a non-TTY

    again = jenkinsctl(*args)
    assert again.rc == 0, again.stderr
    assert (again.json["cached_steps"], again.json["total_steps"]) == (2, 2)


def test_default_tag_is_the_commit_and_build_number(app, built):
    sha = git(app, "rev-parse", "HEAD")
    r = jenkinsctl("build", str(app), "--image", REPO, "--label", TEST_LABEL_ARG, "-o", "json",
                   env={"BUILD_NUMBER": "77"})
    assert r.rc == 0, r.stderr
    built.extend(r.json["refs"])
    assert r.json["refs"] == [f"{REPO}:{sha[:12]}-b77"]


@pytest.mark.parametrize("builder", ["buildkit", "classic"])
def test_build_output_is_streamed_as_it_happens(builder, tmp_path, docker_client, built):
    (tmp_path / "Dockerfile").write_text(
        "FROM debian:bookworm-slim\nARG NONCE\n"
        'RUN echo "stream-start $NONCE" && sleep 2 && echo stream-end\n')
    seen: list[tuple[float, str]] = []
    ref_tag = f"stream-{builder}"
    started = time.monotonic()
    result = buildlib.build(enginelib.LazyEngine(), context=str(tmp_path), repository=REPO, tags=[ref_tag],
                         build_args={"NONCE": uuid.uuid4().hex}, labels={TEST_LABEL: "1"}, builder=builder,
                         log=lambda line: seen.append((time.monotonic(), line)))
    built.append(f"{REPO}:{ref_tag}")
    ended = time.monotonic()
    assert result.builder == builder and result.image_id.startswith("sha256:")
    start_at = next(t for t, line in seen if "stream-start" in line and "echo" not in line)
    assert ended - start_at >= 1.5, "the first RUN line arrived only at the end: output was buffered"
    assert start_at - started < ended - started - 1.5


@pytest.mark.parametrize("builder,code", [("buildkit", 4), ("classic", 4)])
def test_build_failure_exits_non_zero_with_the_failing_step_output(builder, code, tmp_path):
    marker = f"why-it-failed-{uuid.uuid4().hex[:6]}"
    (tmp_path / "Dockerfile").write_text(
        "FROM debian:bookworm-slim\n"
        f'RUN echo "{marker}" >&2 && exit 3\n')
    r = jenkinsctl("build", str(tmp_path), "--image", REPO, "--tag", "fails", "--builder", builder,
                   "--label", TEST_LABEL_ARG)
    assert r.rc == code
    error = r.stderr[r.stderr.index("error: build failed"):]
    assert "RUN echo" in error.splitlines()[0]  # names the failing step
    assert marker in error  # and shows its output
    assert "hint:" in error


def test_invalid_input_fails_before_anything_runs(tmp_path, docker_client):
    (tmp_path / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    before = {i.id for i in docker_client.images.list(name=REPO)}
    for args, words in [
        (("--image", "Team/App"), "'App' has upper-case"),
        (("--image", f"{REPO}:x"), "without ':x'"),
        (("--image", REPO, "--tag=.bad"), "starts with '.'"),
        (("--image", REPO, "--label", "novalue"), "not KEY=VALUE"),
        (("--image", REPO, "--cache-from", "Bad Ref"), "white space"),
        (("--image", REPO, "--file", str(tmp_path / "nope")), "does not exist"),
        ((), "--image is required"),
    ]:
        r = jenkinsctl("build", str(tmp_path), *args)
        assert r.rc == 2, (args, r.stderr)
        assert words in r.stderr, (args, r.stderr)
    assert {i.id for i in docker_client.images.list(name=REPO)} == before  # nothing was built


def test_credentials_never_go_into_build_args(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    r = jenkinsctl("build", str(tmp_path), "--image", REPO, "--build-arg", "TOKEN=x-pw-1234-y",
                   env={"JENKINSCTL_REGISTRY_USERNAME": "u", "JENKINSCTL_REGISTRY_PASSWORD": "pw-1234"})
    assert r.rc == 2 and "contains the registry password" in r.stderr
    assert "pw-1234" not in r.everything


def test_unreachable_engine_is_one_clear_error(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    for cmd in (("build", str(tmp_path), "--image", REPO, "--tag", "x"),
                ("push", "--image", f"127.0.0.1:1/{REPO}", "--tag", "x")):
        r = jenkinsctl(*cmd, env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock", "JENKINSCTL_REGISTRY_USERNAME": "u",
                                  "JENKINSCTL_REGISTRY_PASSWORD": "p"})
        assert r.rc == 3, (cmd, r.stderr)
        assert f"cannot reach the Docker engine at unix://{tmp_path}/no.sock" in r.stderr
        assert "hint: start the engine" in r.stderr
