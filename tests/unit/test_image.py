"""Tag rules, labels, credentials, and the parsing of recorded build and push
streams.  No engine: the push retry logic runs against a scripted client
that replays streams recorded from the real engine (20.10) and registry."""

from __future__ import annotations

import datetime as dt
import os
import stat

import pytest

from jenkinsctl import build as buildlib
from jenkinsctl import engine as enginelib
from jenkinsctl import registry as registrylib
from jenkinsctl import tags as taglib
from jenkinsctl.config import BuildConfig, RegistryConfig, RegistryLogin, SecretRef
from jenkinsctl.errors import RegistryError, UsageError
from jenkinsctl.refs import parse_repository
from tests.support.gitrepo import git, one_commit_repo

NOW = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


@pytest.fixture
def repo(tmp_path):
    return one_commit_repo(tmp_path, origin="https://ci-bot:s3cr3t-token@git.example.com/team/app.git")


# --- tags ----------------------------------------------------------------------------


def test_default_tag_clean_git_is_the_12_digit_sha(repo):
    path, sha = repo
    assert taglib.default_tags(str(path), {}, now=NOW) == [sha[:12]]


def test_default_tag_in_jenkins_adds_the_build_number(repo):
    path, sha = repo
    (path / "untracked").write_text("x")  # a Jenkins workspace may be dirty: the build number decides
    assert taglib.default_tags(str(path), {"BUILD_NUMBER": "42"}, now=NOW) == [f"{sha[:12]}-b42"]


def test_default_tag_dirty_tree_gets_a_utc_timestamp(repo):
    path, sha = repo
    (path / "Dockerfile").write_text("FROM scratch\nLABEL x=1\n")
    later = dt.datetime(2025, 1, 2, 4, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))  # = 03:04:05 UTC
    assert taglib.default_tags(str(path), {}, now=later) == [f"{sha[:12]}-dirty-20250102T030405Z"]


def test_default_tag_outside_git(tmp_path):
    assert taglib.default_tags(str(tmp_path), {}, now=NOW) == ["20250102T030405Z"]
    assert taglib.default_tags(str(tmp_path), {"BUILD_NUMBER": "7"}, now=NOW) == ["b7"]
    assert taglib.default_tags(str(tmp_path), {"SOURCE_DATE_EPOCH": "0"}) == ["19700101T000000Z"]
    # Jenkins' git plugin names the commit even when the context has no .git
    assert taglib.default_tags(str(tmp_path), {"GIT_COMMIT": "ab" * 20, "BUILD_NUMBER": "3"}) == ["abababababab-b3"]


def test_git_runs_only_where_a_repository_can_be(repo, tmp_path_factory, monkeypatch):
    """Outside any checkout no git process starts (a build context in /tmp);
    a .git directory or file above the context, a bare repository or a
    GIT_DIR-like variable makes git decide, and git's answer is used."""
    ran = []
    real = taglib._git
    monkeypatch.setattr(taglib, "_git", lambda c, *a: ran.append(a[0]) or real(c, *a))
    for var in taglib._GIT_PLACES:
        monkeypatch.delenv(var, raising=False)
    outside = tmp_path_factory.mktemp("plain")
    # The premise, not a skip: a temp dir inside a checkout would leave the
    # "outside any checkout" half of this test untested.
    assert not taglib._maybe_repository(str(outside), os.environ), \
        f"{outside} lies inside a git checkout on this machine; point TMPDIR outside it"
    assert taglib.git_facts(str(outside)) == taglib.GitFacts() and ran == []

    path, sha = repo
    (path / "sub").mkdir()
    assert taglib.git_facts(str(path / "sub")).sha == sha and ran            # found up the tree
    worktree = tmp_path_factory.mktemp("wt")
    (worktree / ".git").write_text(f"gitdir: {path / '.git'}\n")             # a .git file, as worktrees have
    assert taglib._maybe_repository(str(worktree), os.environ)
    bare = tmp_path_factory.mktemp("bare")
    git(bare, "init", "-q", "--bare")
    assert taglib._maybe_repository(str(bare / "refs"), os.environ)
    monkeypatch.setenv("GIT_DIR", str(path / ".git"))
    ran.clear()
    assert taglib.git_facts(str(outside)).sha == sha and ran                 # git decides


def test_default_tag_is_validated(tmp_path):
    with pytest.raises(UsageError):
        taglib.default_tags(str(tmp_path), {"BUILD_NUMBER": "4 2"})


def test_default_tag_of_two_branch_jobs_at_one_commit_and_build_number_differ(repo):
    """Every branch job of a multibranch pipeline counts from 1: the branch
    (or else the job) is part of the tag, so two concurrent ships of one
    commit never share one (docs/robustness.md, bug 2)."""
    path, sha = repo
    a = taglib.default_tags(str(path), {"BUILD_NUMBER": "7", "BRANCH_NAME": "feature/a", "JOB_NAME": "app/feature%2Fa"})
    b = taglib.default_tags(str(path), {"BUILD_NUMBER": "7", "BRANCH_NAME": "PR-12", "JOB_NAME": "app/PR-12"})
    assert a == [f"{sha[:12]}-feature-a-b7"] and b == [f"{sha[:12]}-PR-12-b7"]
    # a pipeline that is not multibranch: the job's full name
    assert taglib.default_tags(str(path), {"BUILD_NUMBER": "7", "JOB_NAME": "team/app-ci"}) == [f"{sha[:12]}-team-app-ci-b7"]
    assert taglib.default_tags(str(path), {"BUILD_NUMBER": "7", "JOB_NAME": "team/app-nightly"}) \
        == [f"{sha[:12]}-team-app-nightly-b7"]
    # outside git, and a name that is not tag-safe at its start
    assert taglib.default_tags(str(path / "none"), {"BUILD_NUMBER": "3", "BRANCH_NAME": ".hidden/x"},
                              facts=taglib.GitFacts()) == ["hidden-x-b3"]


def test_default_tag_with_a_long_job_name_stays_short_and_distinct(repo):
    path, sha = repo
    long_a, long_b = "release/" + "a" * 200 + "-one", "release/" + "a" * 200 + "-two"
    ta = taglib.default_tags(str(path), {"BUILD_NUMBER": "123456", "BRANCH_NAME": long_a})[0]
    tb = taglib.default_tags(str(path), {"BUILD_NUMBER": "123456", "BRANCH_NAME": long_b})[0]
    assert ta != tb and len(ta) <= 12 + 1 + taglib.JOB_PART_MAX + 8 <= 128
    assert ta.startswith(f"{sha[:12]}-release-aaaa") and ta.endswith("-b123456")


MOVING = {"latest": ("main", "master"), "{branch}": ("release/*", "develop"), "stable": ("release/*",)}


@pytest.mark.parametrize("branch,want", [
    ("main", ["latest"]),
    ("master", ["latest"]),
    ("release/1.2", ["release-1.2", "stable"]),
    ("develop", ["develop"]),
    ("feature/x", []),
    ("PR-12", []),
    (None, []),
])
def test_moving_tags_only_on_configured_branches(branch, want):
    assert taglib.moving_tags(branch, MOVING) == want


def test_current_branch_sources(repo):
    path, _ = repo
    assert taglib.current_branch(str(path), {"BRANCH_NAME": "PR-3", "GIT_BRANCH": "origin/x"}) == "PR-3"
    assert taglib.current_branch(str(path), {"GIT_BRANCH": "origin/release/2"}) == "release/2"
    assert taglib.current_branch(str(path), {}) == "main"
    git(path, "checkout", "-q", "--detach")
    assert taglib.current_branch(str(path), {}) is None


def test_plan_tags_explicit_replaces_default_and_moving_follow_branch(repo):
    path, sha = repo
    plan = taglib.plan_tags(str(path), {}, explicit=["v1", "v1"], moving={"latest": ("main",)})
    assert plan.immutable == ["v1"] and plan.moving == ["latest"]
    plan = taglib.plan_tags(str(path), {"BRANCH_NAME": "feature/y"}, moving={"latest": ("main",)}, now=NOW)
    assert plan.immutable == [sha[:12]] and plan.moving == []
    with pytest.raises(UsageError):
        taglib.plan_tags(str(path), {}, explicit=["bad/tag"])


# --- labels --------------------------------------------------------------------------


def test_oci_labels_from_git_without_credentials(repo):
    path, sha = repo
    labels = taglib.oci_labels(str(path), {"BUILD_NUMBER": "5"}, now=NOW)
    assert labels == {
        "org.opencontainers.image.revision": sha,
        "org.opencontainers.image.source": "https://git.example.com/team/app.git",
        "org.opencontainers.image.created": "2025-01-02T03:04:05Z",
        "org.opencontainers.image.version": f"{sha[:12]}-b5",
    }
    assert "s3cr3t" not in repr(labels)


def test_oci_labels_from_jenkins_environment_outside_git(tmp_path):
    env = {"GIT_COMMIT": "c" * 40, "GIT_URL": "https://u:p@h.example/r.git", "BUILD_NUMBER": "9"}
    labels = taglib.oci_labels(str(tmp_path), env, version="1.4.0", now=NOW)
    assert labels["org.opencontainers.image.revision"] == "c" * 40
    assert labels["org.opencontainers.image.source"] == "https://h.example/r.git"
    assert labels["org.opencontainers.image.version"] == "1.4.0"


# --- credentials -----------------------------------------------------------------------


class Conf:
    def __init__(self, username=None, password=None):
        self.registry = RegistryConfig(url="127.0.0.1:5000", username=username, password=password)
        self.build = BuildConfig(builder="auto", moving_tags={}, keep_images=5, push_attempts=4)


def test_registry_auth_environment_wins(tmp_path):
    conf = Conf("cfg-user", SecretRef(env="CFG_PW"))
    env = {"JENKINSCTL_REGISTRY_USERNAME": "u", "JENKINSCTL_REGISTRY_PASSWORD": "p", "CFG_PW": "other"}
    assert registrylib.registry_auth(conf, env) == {"username": "u", "password": "p", "serveraddress": "127.0.0.1:5000"}


def test_registry_auth_password_file_and_config_refs(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    env = {"JENKINSCTL_REGISTRY_USERNAME": "u", "JENKINSCTL_REGISTRY_PASSWORD_FILE": str(pw)}
    assert registrylib.registry_auth(Conf(), env, registry="127.0.0.1:5000")["password"] == "from-file"
    assert registrylib.registry_auth(Conf(), env)["serveraddress"] == "127.0.0.1:5000"
    conf = Conf(SecretRef(env="U"), SecretRef(env="P"))
    assert registrylib.registry_auth(conf, {"U": "cu", "P": "cp"})["username"] == "cu"
    assert registrylib.registry_auth(Conf(), {}) is None


def test_registry_credentials_go_only_to_their_registry():
    """An image on another registry, or on Docker Hub (no registry part),
    gets none of registry.url's credentials; registry.others entries get
    their own and nobody else's."""
    others = (RegistryLogin(url="ghcr.io", username="gh-user", password=SecretRef(env="GH_PW")),)
    conf = Conf()
    conf.registry = RegistryConfig(url="127.0.0.1:5000", username=None, password=None, others=others)
    env = {"JENKINSCTL_REGISTRY_USERNAME": "u", "JENKINSCTL_REGISTRY_PASSWORD": "main-secret",
           "GH_PW": "gh-secret"}
    for name in ("team/app", "library/app", "docker.io/team/app", "index.docker.io/team/app",
                 "127.0.0.1:5001/team/app", "127.0.0.1/team/app", "evil.example:5000/team/app"):
        assert registrylib.image_auth(conf, env, parse_repository(name)) is None, name
    assert registrylib.image_auth(conf, env, parse_repository("127.0.0.1:5000/team/app"))["password"] == "main-secret"
    gh = registrylib.image_auth(conf, env, parse_repository("GHCR.io/team/app"))
    assert gh == {"username": "gh-user", "password": "gh-secret", "serveraddress": "ghcr.io"}
    with pytest.raises(RegistryError) as e:
        registrylib.image_auth(conf, {}, parse_repository("ghcr.io/team/app"))
    assert "ghcr.io" in e.value.message


def test_a_steps_bound_credentials_are_for_the_steps_image_only():
    """dockerBuildPush(image: 'reg.example:5000/app', credentialsId: ...)
    binds JENKINSCTL_REGISTRY_*: they go to that image's registry (Docker
    Hub for a bare name), never registry.url's password to it."""
    conf = Conf("cfg-user", SecretRef(env="CFG_PW"))
    env = {"JENKINSCTL_REGISTRY_USERNAME": "bound", "JENKINSCTL_REGISTRY_PASSWORD": "bound-pw", "CFG_PW": "cfg-pw"}
    got = registrylib.image_auth(conf, env, parse_repository("reg.example:5000/app"), step=True)
    assert got == {"username": "bound", "password": "bound-pw", "serveraddress": "reg.example:5000"}
    assert registrylib.image_auth(conf, env, parse_repository("team/app"), step=True)["password"] == "bound-pw"
    # Nothing bound: the configured credentials stay with registry.url.
    assert registrylib.image_auth(conf, {"CFG_PW": "cfg-pw"}, parse_repository("reg.example:5000/app"), step=True) is None
    assert registrylib.image_auth(conf, env, parse_repository("reg.example:5000/app")) is None


def test_a_push_refused_for_want_of_credentials_says_why():
    hint = registrylib._permanent_hint("unauthorized: authentication required", parse_repository("team/app"), False)
    assert "Docker Hub" in hint and "registry.others" in hint


def test_registry_auth_half_configured_is_an_error_without_the_secret(tmp_path):
    with pytest.raises(RegistryError) as e:
        registrylib.registry_auth(Conf(), {"JENKINSCTL_REGISTRY_PASSWORD": "hunter2-secret"})
    assert "hunter2" not in str(e.value.to_dict())
    with pytest.raises(RegistryError):
        registrylib.registry_auth(Conf("u"), {})
    with pytest.raises(RegistryError) as e:
        registrylib.registry_auth(Conf(), {"JENKINSCTL_REGISTRY_USERNAME": "u",
                                     "JENKINSCTL_REGISTRY_PASSWORD_FILE": str(tmp_path / "missing")})
    assert "missing" in e.value.message


def test_build_args_carrying_the_registry_password_are_refused():
    auth = {"username": "u", "password": "hunter2-secret"}
    registrylib.check_no_secrets(auth, **{"build arg": {"A": "1", "B": None}})
    with pytest.raises(UsageError) as e:
        registrylib.check_no_secrets(auth, **{"build arg": {"TOKEN": "x-hunter2-secret"}})
    assert "TOKEN" in e.value.message and "hunter2" not in e.value.message


# --- recorded build output ---------------------------------------------------------------

# `DOCKER_BUILDKIT=1 docker build --progress=plain` (CLI 20.10.24), sha256 lines kept.
BUILDKIT_FAIL = """\
#1 [internal] load .dockerignore
#1 sha256:21e543502b09388426ea331f8b0d338bbee8a7b77b9a51804a9dfc00038f310f
#1 transferring context: 2B 0.4s done
#1 DONE 0.4s

#4 [1/3] FROM docker.io/library/debian:bookworm-slim
#4 CACHED

#5 [2/3] RUN echo first-ok
#5 CACHED

#6 [3/3] RUN echo "line one" && echo "the failing step says why" >&2 && exit 3
#6 0.244 line one
#6 0.245 the failing step says why
#6 ERROR: executor failed running [/bin/sh -c echo "line one" && echo "the failing step says why" >&2 && exit 3]: exit code: 3
------
 > [3/3] RUN echo "line one" && echo "the failing step says why" >&2 && exit 3:
------
executor failed running [/bin/sh -c echo "line one" && echo "the failing step says why" >&2 && exit 3]: exit code: 3
"""

BUILDKIT_OK = """\
#4 [builder 1/3] FROM docker.io/library/debian:bookworm-slim
#4 CACHED
#5 [builder 2/3] RUN make
#5 CACHED
#7 [builder 3/3] COPY a /a
#7 DONE 0.1s
#8 [stage-1 1/2] COPY --from=builder /a /a
#8 CACHED
#9 exporting to image
#9 writing image sha256:5181a4d62c033bcbae67197ac1945fa4a8755c127f1c78a8a71ccc2f5221e949 done
"""


def test_buildkit_progress_finds_the_failing_step_and_its_output():
    p = buildlib.BuildKitProgress()
    for line in BUILDKIT_FAIL.splitlines():
        p.feed(line)
    step, tail, summary = p.failure()
    assert step.startswith("[3/3] RUN echo")
    assert tail == ["line one", "the failing step says why"]
    assert summary.endswith("exit code: 3")
    assert (p.cached_steps, p.total_steps) == (1, 2)  # FROM is not a step that counts


def test_buildkit_progress_counts_cached_steps_across_stages():
    p = buildlib.BuildKitProgress()
    for line in BUILDKIT_OK.splitlines():
        p.feed(line)
    assert (p.cached_steps, p.total_steps) == (2, 3)


def test_classic_progress_recorded_stream():
    p = buildlib.ClassicProgress()
    stream = [
        {"stream": "Step 1/3 : FROM debian:bookworm-slim\n"}, {"stream": " ---> e618754397ac\n"},
        {"stream": "Step 2/3 : RUN echo ok\n"}, {"stream": " ---> Using cache\n"}, {"stream": " ---> fafc9e734e87\n"},
        {"stream": "Step 3/3 : RUN echo boom >&2; exit 3\n"}, {"stream": " ---> Running in d1d1e60f4f6c\n"},
        {"stream": "boom\n"},
        {"errorDetail": {"code": 3, "message": "The command '/bin/sh -c echo boom >&2; exit 3' returned a non-zero code: 3"},
         "error": "The command '/bin/sh -c echo boom >&2; exit 3' returned a non-zero code: 3"},
    ]
    shown = [line for e in stream for line in p.feed(e)]
    assert "boom" in shown and shown[-1].startswith("ERROR: The command")
    assert p.step == "[3/3] RUN echo boom >&2; exit 3"
    assert "boom" in p.step_lines and p.cached == 1 and p.non_from == 2
    assert p.error.endswith("non-zero code: 3")


# --- recorded push streams -----------------------------------------------------------------

DIGEST = "sha256:3c2596575b1395a386af2f825e630f8c5efbb8cb5392d9996d16be074f98057b"
HEAD = {"status": "The push refers to repository [127.0.0.1:5000/jenkinsctl-test/exp]"}
OK_NEW = [HEAD, {"status": "Preparing", "progressDetail": {}, "id": "bff71eed13bf"},
          {"status": "Pushing", "progressDetail": {"current": 512, "total": 1049048}, "id": "bff71eed13bf"},
          {"status": "Pushed", "progressDetail": {}, "id": "bff71eed13bf"},
          {"status": f"x: digest: {DIGEST} size: 528"},
          {"progressDetail": {}, "aux": {"Tag": "x", "Digest": DIGEST, "Size": 528}}]
OK_EXISTS = [HEAD, {"status": "Preparing", "progressDetail": {}, "id": "bff71eed13bf"},
             {"status": "Layer already exists", "progressDetail": {}, "id": "bff71eed13bf"},
             {"status": f"x: digest: {DIGEST} size: 528"},
             {"progressDetail": {}, "aux": {"Tag": "x", "Digest": DIGEST, "Size": 528}}]
E503 = [HEAD, {"status": "Layer already exists", "progressDetail": {}, "id": "bff71eed13bf"},
        {"errorDetail": {"message": "received unexpected HTTP status: 503 Service Unavailable"},
         "error": "received unexpected HTTP status: 503 Service Unavailable"}]
E401 = [HEAD, {"status": "Preparing", "progressDetail": {}, "id": "bff71eed13bf"},
        {"errorDetail": {"message": "unauthorized: authentication required"},
         "error": "unauthorized: authentication required"}]
ERESET = [HEAD, {"errorDetail": {"message": 'Put "http://127.0.0.1:5000/v2/x/manifests/x": read tcp '
                                            "127.0.0.1:1->127.0.0.1:5000: read: connection reset by peer"}}]
EEOF = [HEAD, {"error": 'Patch "http://127.0.0.1:5000/v2/x/blobs/uploads/1": EOF'}]
ENGINE_RETRY = [HEAD, {"status": "Retrying in 5 seconds", "progressDetail": {}, "id": "9afe54fd8c19"},
                {"status": "Retrying in 4 seconds", "progressDetail": {}, "id": "9afe54fd8c19"},
                {"status": "Pushed", "progressDetail": {}, "id": "9afe54fd8c19"},
                {"progressDetail": {}, "aux": {"Tag": "d", "Digest": DIGEST, "Size": 740}}]


def test_push_stream_parses_digest_and_layers():
    s = registrylib.PushStream()
    shown = [line for e in OK_NEW for line in s.feed(e)]
    assert s.digest == DIGEST and s.error is None
    assert s.pushed() == {"bff71eed13bf"} and s.existing() == set()
    assert "bff71eed13bf: Pushed" in shown
    assert not any("Pushing" in line for line in shown)  # progress is not logged line by line


def test_push_stream_engine_retry_is_one_line():
    s = registrylib.PushStream()
    shown = [line for e in ENGINE_RETRY for line in s.feed(e)]
    assert sum("retrying" in line for line in shown) == 1 and s.engine_retries == 1


@pytest.mark.parametrize("stream,kind", [(E503, "transient"), (ERESET, "transient"), (EEOF, "transient"),
                                         (E401, "permanent")])
def test_push_stream_errors_are_classified(stream, kind):
    s = registrylib.PushStream()
    for e in stream:
        s.feed(e)
    assert s.error and registrylib.classify_push_error(s.error) == kind


@pytest.mark.parametrize("message", [
    "denied: requested access to the resource is denied",
    "name invalid: invalid repository name",
    "manifest invalid: manifest invalid",
    "unauthorized: incorrect username or password",
    "received unexpected HTTP status: 401 Unauthorized",
    "An image does not exist locally with the tag: 127.0.0.1:5000/x",
    "something nobody has seen before",
    "unauthorized: 503 mentioned but still a 401",
])
def test_permanent_errors(message):
    assert registrylib.classify_push_error(message) == "permanent"


@pytest.mark.parametrize("message", [
    "received unexpected HTTP status: 502 Bad Gateway",
    "received unexpected HTTP status: 500 Internal Server Error",
    "write tcp 127.0.0.1:1->127.0.0.1:2: write: broken pipe",
    "net/http: TLS handshake timeout",
    "dial tcp 127.0.0.1:5000: connect: connection refused",
    "toomanyrequests: slow down",
])
def test_transient_errors(message):
    assert registrylib.classify_push_error(message) == "transient"


class FakeAPI:
    """Replays one recorded stream per push call; records calls."""

    def __init__(self, streams):
        self.streams = list(streams)
        self.calls = []
        self.tagged = []

    def inspect_image(self, ref):
        return {"Id": "sha256:" + "1" * 64}

    def tag(self, image_id, repository, tag):
        self.tagged.append((repository, tag))

    def push(self, repository, tag=None, stream=False, decode=False, auth_config=None):
        assert stream and decode
        self.calls.append((repository, tag, auth_config))
        return iter(self.streams.pop(0))


class FakeClient:
    def __init__(self, streams):
        self.api = FakeAPI(streams)


def test_push_retries_transient_errors_with_bounded_backoff():
    client = FakeClient([E503, ERESET, OK_EXISTS])
    waits, lines = [], []
    r = registrylib.push(client, repository="127.0.0.1:5000/jenkinsctl-test/exp", tags=["x"],
                   auth={"username": "u", "password": "pw-123"}, attempts=4, sleep=waits.append, log=lines.append)
    assert r.digest == DIGEST and r.attempts == 3
    assert waits == [1.0, 3.0]
    assert sum("retrying in" in line for line in lines) == 2


def test_push_gives_up_after_the_attempts():
    client = FakeClient([E503] * 3)
    waits = []
    with pytest.raises(RegistryError) as e:
        registrylib.push(client, repository="r:1/a", tags=["x"], auth=None, attempts=3, sleep=waits.append)
    assert "after 3 attempts" in e.value.message and e.value.details["retryable"] is True
    assert waits == [1.0, 3.0] and sum(registrylib.PUSH_BACKOFF[:3]) <= 10


def test_push_permanent_error_fails_at_once_without_the_password():
    client = FakeClient([E401, OK_EXISTS])
    waits = []
    with pytest.raises(RegistryError) as e:
        registrylib.push(client, repository="r:1/a", tags=["x"], auth={"username": "u", "password": "pw-secret-9"},
                   sleep=waits.append)
    assert waits == [] and len(client.api.calls) == 1
    assert "unauthorized: authentication required" in e.value.message
    assert "JENKINSCTL_REGISTRY_USERNAME" in e.value.hint
    assert "pw-secret-9" not in str(e.value.to_dict())


def test_push_order_immutable_first_then_moving():
    client = FakeClient([OK_NEW, OK_EXISTS, OK_EXISTS])
    r = registrylib.push(client, repository="r:1/a", tags=["abc123", "v1"], auth=None, moving_tags=["latest", "v1"])
    assert [c[1] for c in client.api.calls] == ["abc123", "v1", "latest"]
    assert client.api.tagged == [("r:1/a", "latest")]
    assert r.tags == ["abc123", "v1", "latest"]
    assert (r.layers_pushed, r.layers_existing) == (1, 0)


def test_push_moving_tags_not_pushed_when_immutable_fails():
    client = FakeClient([E401])
    with pytest.raises(RegistryError):
        registrylib.push(client, repository="r:1/a", tags=["abc"], auth=None, moving_tags=["latest"])
    assert [c[1] for c in client.api.calls] == ["abc"] and client.api.tagged == []


class RetaggingAPI(FakeAPI):
    """An engine on which another build re-tags REPO:TAG to ``other`` after
    ``inspections`` looks at the tag, or whose push of it goes out as the
    other image (``pushed_as``)."""

    MINE, OTHER = "sha256:" + "1" * 64, "sha256:" + "2" * 64

    def __init__(self, streams, *, retag_after=None, pushed_as=None):
        super().__init__(streams)
        self.looks, self.retag_after, self.pushed_as = 0, retag_after, pushed_as

    def inspect_image(self, ref):
        if "@" in ref:
            return {"Id": self.pushed_as or self.MINE}
        self.looks += 1
        retagged = self.retag_after is not None and self.looks > self.retag_after
        return {"Id": self.OTHER if retagged else self.MINE}


def test_push_of_this_runs_image_refuses_a_tag_another_build_retagged():
    client = FakeClient([])
    client.api = RetaggingAPI([OK_NEW], retag_after=1)   # re-tagged between the first look and the push
    with pytest.raises(RegistryError) as e:
        registrylib.push(client, repository="r:1/a", tags=["abc"], auth=None, moving_tags=["latest"],
                   image_id=RetaggingAPI.MINE)
    assert client.api.calls == [] and client.api.tagged == []     # nothing pushed, latest not moved
    assert "re-tagged" in e.value.message and "nothing was pushed" in e.value.message
    assert "distinct tags" in e.value.hint


def test_push_of_this_runs_image_refuses_a_digest_of_another_image():
    client = FakeClient([])
    client.api = RetaggingAPI([OK_NEW, OK_EXISTS], pushed_as=RetaggingAPI.OTHER)  # re-tagged during the push
    with pytest.raises(RegistryError) as e:
        registrylib.push(client, repository="r:1/a", tags=["abc"], auth=None, moving_tags=["latest"],
                   image_id=RetaggingAPI.MINE)
    assert [c[1] for c in client.api.calls] == ["abc"] and client.api.tagged == []   # latest never pushed
    assert DIGEST in e.value.message and "abc now names the other image" in e.value.message


def test_push_of_this_runs_image_points_moving_tags_at_it():
    client = FakeClient([])
    client.api = RetaggingAPI([OK_NEW, OK_EXISTS])
    r = registrylib.push(client, repository="r:1/a", tags=["abc"], auth=None, moving_tags=["latest"],
                   image_id=RetaggingAPI.MINE)
    assert r.tags == ["abc", "latest"] and client.api.tagged == [("r:1/a", "latest")]


def test_push_validates_before_anything_runs():
    client = FakeClient([])
    for kwargs in ({"repository": "r:1/A", "tags": ["x"]}, {"repository": "r:1/a", "tags": ["-x"]},
                   {"repository": "r:1/a:t", "tags": ["x"]}, {"repository": "r:1/a", "tags": []},
                   {"repository": "r:1/a", "tags": ["x"], "moving_tags": ["a b"]}):
        with pytest.raises(UsageError):
            registrylib.push(client, auth=None, **kwargs)
    assert client.api.calls == []


# --- which builder --------------------------------------------------------------------------


def fake_cli(directory, version, buildx_ok, api="1.41"):
    """A docker CLI that answers the probe: `docker version --format ...`
    prints the client half (as the real one does with no engine), and
    `docker buildx version` succeeds only with the plugin."""
    directory.mkdir(parents=True, exist_ok=True)
    p = directory / "docker"
    p.write_text("#!/bin/sh\n"
                 f'if [ "$1" = "version" ]; then echo "{version} {api}"; echo "Cannot connect" >&2; exit 1; fi\n'
                 f'if [ "$1" = "buildx" ]; then exit {0 if buildx_ok else 1}; fi\nexit 9\n')
    p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return str(p)


@pytest.fixture(autouse=True)
def _private_probe_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    buildlib._cli_cache.clear()


def test_find_buildkit_cli_skips_a_new_cli_without_buildx(tmp_path):
    new = fake_cli(tmp_path / "a", "28.2.2", buildx_ok=False)
    old = fake_cli(tmp_path / "b", "20.10.24+dfsg1", buildx_ok=False)
    path = os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")])
    assert buildlib.find_buildkit_cli({"PATH": path}) == old
    fake_cli(tmp_path / "c", "28.2.2", buildx_ok=True)
    assert buildlib.find_buildkit_cli({"PATH": str(tmp_path / "c")}) == str(tmp_path / "c" / "docker")
    assert buildlib.find_buildkit_cli({"PATH": str(tmp_path / "a")}) is None
    # JENKINSCTL_DOCKER_CLI alone is considered; a 23+ CLI without buildx cannot use BuildKit.
    assert buildlib.find_buildkit_cli({"PATH": path, "JENKINSCTL_DOCKER_CLI": new}) is None
    assert buildlib.find_buildkit_cli({"PATH": "", "JENKINSCTL_DOCKER_CLI": old}) == old


def test_cli_probe_is_cached_until_the_binary_changes(tmp_path):
    cli = fake_cli(tmp_path / "d", "20.10.24", buildx_ok=False)
    assert buildlib._cli_has_buildkit(cli) is True
    # Same size and mtime: the cached answer, without running it.
    st = os.stat(cli)
    text = open(cli).read().replace("20.10.24", "28.00.00")
    open(cli, "w").write(text)
    os.utime(cli, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert buildlib._cli_has_buildkit(cli) is True
    os.utime(cli, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # replaced binary: probed again
    assert buildlib._cli_has_buildkit(cli) is False


def test_explicit_buildkit_without_cli_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError) as e:
        buildlib.resolve_builder(object(), "buildkit", {"PATH": str(tmp_path)})
    assert "--builder classic" in e.value.hint
    assert buildlib.resolve_builder(object(), "auto", {"PATH": str(tmp_path)}) == ("classic", None)


def test_docker_host_of_a_lazy_engine_and_raw_ping_failure():
    assert enginelib.docker_host(enginelib.LazyEngine("tcp://127.0.0.1:1")) == "tcp://127.0.0.1:1"
    assert enginelib._raw_ping("tcp://127.0.0.1:1", timeout=0.5) is None
    assert enginelib._raw_ping("ssh://host") is None


def test_stderr_sink_strips_terminal_escapes(capsys):
    buildlib.stderr_sink(strip_ansi=True)("\x1b[31mred\x1b[0m\rdone")
    assert capsys.readouterr().err == "reddone\n"


def test_registry_auth_header_is_what_docker_py_sends():
    import docker.auth

    auth = {"username": "ci-pusher", "password": "p+w/?~\u00e9'\"!", "serveraddress": "127.0.0.1:5000"}
    assert enginelib.registry_auth_header(auth) == docker.auth.encode_header(auth).decode()


def test_buildkit_scratch_directory_is_private_and_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    with buildlib._private_dir("jenkinsctl-build-") as d:
        assert os.path.dirname(d) == str(tmp_path) and stat.S_IMODE(os.stat(d).st_mode) == 0o700
        open(os.path.join(d, "iid"), "w").write("sha256:x")
    assert not os.path.exists(d)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "missing"))  # falls back to /tmp
    with buildlib._private_dir("jenkinsctl-build-") as d:
        assert os.path.isdir(d)
    assert not os.path.exists(d)
