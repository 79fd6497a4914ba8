"""The edge of build/push/ship: a BuildSpec checked once, git asked once,
and docker-py's errors translated once into jenkinsctl's.  No engine."""

from __future__ import annotations

import dataclasses
import types

import pytest

from jenkinsctl import engine as enginelib
from jenkinsctl import ship as shiplib
from jenkinsctl import tags as taglib
from jenkinsctl.build import BuildSpec
from jenkinsctl.errors import EngineConflict, EngineError, EngineNotFound, EngineVersionError, UsageError
from jenkinsctl.refs import parse_repository
from tests.support.gitrepo import one_commit_repo


@pytest.fixture
def repo(tmp_path):
    return one_commit_repo(tmp_path)


# --- BuildSpec ----------------------------------------------------------------------


def test_build_spec_is_checked_once_and_holds_absolute_paths(repo, monkeypatch):
    path, _ = repo
    monkeypatch.chdir(path.parent)
    spec = BuildSpec.checked(context=path.name, repository="127.0.0.1:5000/team/app", tags=["1", "2", "1"],
                             dockerfile=f"{path.name}/Dockerfile", cache_from=["127.0.0.1:5000/team/app:1"])
    assert spec.context == str(path) and spec.dockerfile == str(path / "Dockerfile")
    assert spec.tags == ("1", "2")
    assert spec.refs == ["127.0.0.1:5000/team/app:1", "127.0.0.1:5000/team/app:2"]
    assert spec.repository == parse_repository("127.0.0.1:5000/team/app")
    assert [str(c) for c in spec.cache_from] == ["127.0.0.1:5000/team/app:1"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.tags = ("3",)  # type: ignore[misc]


@pytest.mark.parametrize("change, expect", [
    ({"tags": []}, "no tags to build"),
    ({"tags": ["-bad"]}, "invalid tag"),
    ({"cache_from": ["UPPER/Case:x"]}, "cache"),
    ({"builder": "kaniko"}, "unknown builder"),
    ({"context": "/nonexistent/ctx"}, "does not exist"),
])
def test_build_spec_refuses_bad_input_with_a_usage_error(repo, change, expect):
    path, _ = repo
    kw = dict(context=str(path), repository="127.0.0.1:5000/team/app", tags=["1"])
    kw.update(change)
    with pytest.raises(UsageError) as e:
        BuildSpec.checked(**kw)
    if expect != "cache":  # the reference parser names the part that is wrong in its own words
        assert expect in e.value.message


# --- plan_build ---------------------------------------------------------------------


def test_plan_asks_git_each_question_once_for_tag_labels_and_branch(repo, monkeypatch):
    path, sha = repo
    asked = []
    real = taglib._git

    def counting(context, *args):
        asked.append(args[0])
        return real(context, *args)

    monkeypatch.setattr(taglib, "_git", counting)
    plan = shiplib.plan_build(image="127.0.0.1:5000/team/app", context=str(path), environ={},
                              moving_rules={"latest": ["main"], "{branch}": ["*"]})
    assert sorted(asked) == ["config", "rev-parse", "status", "symbolic-ref"]
    assert plan.spec.tags == (sha[:12],)
    assert plan.moving == ("latest", "main")
    assert plan.spec.labels["org.opencontainers.image.revision"] == sha
    assert plan.spec.labels["org.opencontainers.image.version"] == sha[:12]


def test_plan_takes_the_branch_from_jenkins_without_asking_git(repo, monkeypatch):
    path, sha = repo
    asked = []
    real = taglib._git
    monkeypatch.setattr(taglib, "_git", lambda c, *a: asked.append(a[0]) or real(c, *a))
    plan = shiplib.plan_build(image="127.0.0.1:5000/team/app", context=str(path), explicit_tags=["v1"],
                              environ={"BRANCH_NAME": "release/2", "BUILD_NUMBER": "7"},
                              moving_rules={"latest": ["main"], "{branch}": ["release/*"]})
    assert "symbolic-ref" not in asked and "status" not in asked
    assert plan.spec.tags == ("v1",) and plan.moving == ("release-2",)


def test_plan_refuses_the_registry_password_in_a_build_arg_or_label(repo):
    path, _ = repo
    auth = {"username": "u", "password": "pa55word-xyz"}
    for field in ("build_args", "user_labels"):
        with pytest.raises(UsageError) as e:
            shiplib.plan_build(image="127.0.0.1:5000/team/app", context=str(path), environ={}, secret_auth=auth,
                               **{field: {"TOKEN": "x-pa55word-xyz"}})
        assert "pa55word-xyz" not in e.value.message + (e.value.hint or "")


def test_plan_requires_an_image(repo):
    with pytest.raises(UsageError, match="--image is required"):
        shiplib.plan_build(image=None, context=str(repo[0]), environ={})


# --- engine error translation -------------------------------------------------------


def test_the_light_clients_answers_become_jenkinsctl_errors():
    nf = enginelib.translate(enginelib.EngineAPIError(404, "No such image: a:1"), "cannot inspect a:1")
    assert type(nf) is EngineNotFound and nf.message == "cannot inspect a:1: No such image: a:1"
    assert (nf.status_code, nf.explanation) == (404, "No such image: a:1")
    assert type(enginelib.translate(enginelib.EngineAPIError(409, "in use"), "x")) is EngineConflict
    assert type(enginelib.translate(enginelib.EngineAPIError(500, "boom"), "x")) is EngineError
    refused = enginelib.translate(enginelib.EngineAPIError(
        400, "client version 1.41 is too old. Minimum supported API version is 1.44"), "x")
    assert isinstance(refused, EngineVersionError)
    assert enginelib.translate(ValueError("not the engine's"), "x") is None


def test_docker_py_errors_are_translated_by_status():
    docker_errors = pytest.importorskip("docker.errors")

    def api_error(cls, status, text):
        return cls("msg", response=types.SimpleNamespace(status_code=status, reason="r", url="u"), explanation=text)

    assert type(enginelib.translate(api_error(docker_errors.NotFound, 404, "gone"), "a")) is EngineNotFound
    assert type(enginelib.translate(api_error(docker_errors.APIError, 409, "busy"), "a")) is EngineConflict
    other = enginelib.translate(docker_errors.DockerException("no engine"), "a")
    assert type(other) is EngineError and other.status_code is None


def test_engine_errors_raises_the_translation_and_lets_others_through():
    with pytest.raises(EngineNotFound) as e:
        with enginelib.engine_errors("cannot remove x"):
            raise enginelib.EngineAPIError(404, "no such container")
    assert e.value.__suppress_context__
    with pytest.raises(KeyError):
        with enginelib.engine_errors("y"):
            raise KeyError("z")
