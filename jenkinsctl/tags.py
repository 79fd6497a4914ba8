"""Git facts, default and moving image tags, and OCI labels."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import time

from jenkinsctl.record import Record
from jenkinsctl.refs import validate_tag

TYPE_CHECKING = False  # typing's import is a cost of every build and push
if TYPE_CHECKING:
    import datetime as _dt
    from typing import Mapping, Sequence

OCI = "org.opencontainers.image."
SHA_LEN = 12  # fixed, so one commit gets the same tag in every clone
JOB_PART_MAX = 48  # the branch/job part of a default tag; keeps the tag far below 128 characters


def _git(context: str, *args: str) -> subprocess.Popen | None:
    try:
        return subprocess.Popen(["git", "-C", context, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    except OSError:  # no git on PATH
        return None


# What makes git look for a repository somewhere other than up the tree.
_GIT_PLACES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES", "GIT_CONFIG_PARAMETERS",
               "GIT_CONFIG_COUNT")


def _maybe_repository(context: str, environ: Mapping[str, str]) -> bool:
    """False only when git would certainly find no repository for
    ``context``: no GIT_* variable that redirects it, and neither ``context``
    nor any directory above it holds a ``.git`` or is itself a bare
    repository (HEAD, objects/ and refs/).  A build context outside any
    checkout then costs no git process at all."""
    if any(environ.get(v) for v in _GIT_PLACES):
        return True
    d = os.path.abspath(context)
    while True:
        if os.path.lexists(os.path.join(d, ".git")) or (
                os.path.isfile(os.path.join(d, "HEAD")) and os.path.isdir(os.path.join(d, "objects"))
                and os.path.isdir(os.path.join(d, "refs"))):
            return True
        parent = os.path.dirname(d)
        if parent == d:
            return False
        d = parent


def _out(proc: subprocess.Popen | None) -> str | None:
    if proc is None:
        return None
    out, _ = proc.communicate()
    return out.strip() if proc.returncode == 0 and out.strip() else None


class GitFacts(Record):
    """What git says about a build context (see git_facts)."""

    sha: str | None = None          # full commit id
    dirty: bool = False             # the context differs from the commit
    branch: str | None = None       # None when detached
    remote: str | None = None       # origin's URL, credentials removed


def git_facts(context: str, *, want_dirty: bool = True, want_branch: bool = False,
              want_remote: bool = True) -> GitFacts:
    """What git knows about ``context``, asked with concurrent git calls.
    Outside a work tree (or without git) every field is empty."""
    if not _maybe_repository(context, os.environ):  # the environment git runs with
        return GitFacts()
    procs = {"sha": _git(context, "rev-parse", "--verify", "-q", "HEAD")}
    if want_dirty:
        procs["dirty"] = _git(context, "status", "--porcelain", "--", ".")
    if want_branch:
        procs["branch"] = _git(context, "symbolic-ref", "--short", "-q", "HEAD")
    if want_remote:
        procs["remote"] = _git(context, "config", "--get", "remote.origin.url")
    out = {k: _out(p) for k, p in procs.items()}
    sha = out["sha"]
    return GitFacts(sha=sha, dirty=bool(sha and out.get("dirty")), branch=out.get("branch"),
                    remote=_clean_url(out.get("remote")))


def _clean_url(url: str | None) -> str | None:
    """A remote URL without user:token@ (Jenkins checkouts often embed one)."""
    if not url:
        return None
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", url)


def _now(now: _dt.datetime | None, environ: Mapping[str, str]) -> time.struct_time:
    """The build's time in UTC: ``now``, else SOURCE_DATE_EPOCH, else the
    clock.  A struct_time from the time module: the datetime module is
    imported only by a caller that passes one."""
    if now is not None:
        import datetime  # loaded already: ``now`` is one

        return now.astimezone(datetime.timezone.utc).timetuple()
    sde = environ.get("SOURCE_DATE_EPOCH", "")
    if sde.isdigit():
        return time.gmtime(int(sde))
    return time.gmtime()


def _stamp(t: time.struct_time) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", t)


def default_tags(context: str, environ: Mapping[str, str], *, now: _dt.datetime | None = None,
                 facts: GitFacts | None = None) -> list[str]:
    """The immutable tag of a build, when no --tag is given:

    ==============================  ====================================  ===================================
    where                           tag                                   example
    ==============================  ====================================  ===================================
    git, in Jenkins (BUILD_NUMBER)  SHA12-JOB-bBUILD_NUMBER               3f2a9c1b7d4e-feature-x-b42
    git, clean, not in Jenkins      SHA12                                 3f2a9c1b7d4e
    git, uncommitted changes        SHA12-dirty-YYYYMMDDTHHMMSSZ (UTC)    3f2a9c1b7d4e-dirty-20250102T030405Z
    no git, in Jenkins              JOB-bBUILD_NUMBER                     feature-x-b42
    no git, not in Jenkins          YYYYMMDDTHHMMSSZ (UTC)                20250102T030405Z
    ==============================  ====================================  ===================================

    SHA12 is the first 12 hex digits of the commit of the context (12, not
    git's variable --short length, so every clone names a commit the same).
    In Jenkins the build number is part of the tag because a re-run of the
    same commit is a new image (new ``created`` label) and must not overwrite
    the tag of an image that may already be deployed.  JOB is BRANCH_NAME
    (multibranch pipelines), else JOB_NAME, made tag-safe (``feature/x`` ->
    ``feature-x``; longer than JOB_PART_MAX: cut, plus 6 hex digits of the
    name's sha256): every branch job of a multibranch pipeline counts its
    builds from 1, so two branches at one commit would otherwise both build
    ``SHA12-b7``, and two concurrent ships would push over each other's tag.
    Without BRANCH_NAME and JOB_NAME it is left out (``SHA12-bBUILD_NUMBER``).
    A dirty tree gets a timestamp for the same reason as the build number.
    Outside git, GIT_COMMIT (set by Jenkins' git plugin) stands in for the
    commit.  "UTC" is the build's start time, or SOURCE_DATE_EPOCH when set.
    The tag is checked against the reference grammar.
    """
    build_number = (environ.get("BUILD_NUMBER") or "").strip()
    if facts is None:
        facts = git_facts(context, want_dirty=not build_number, want_remote=False)
    sha = facts.sha or (environ.get("GIT_COMMIT") or "").strip() or None
    job = _job_part(environ) if build_number else None
    jenkins = "-".join(p for p in (job, f"b{build_number}") if p)
    if sha and build_number:
        tag = f"{sha[:SHA_LEN]}-{jenkins}"
    elif sha and facts.dirty:
        tag = f"{sha[:SHA_LEN]}-dirty-{_stamp(_now(now, environ))}"
    elif sha:
        tag = sha[:SHA_LEN]
    elif build_number:
        tag = jenkins
    else:
        tag = _stamp(_now(now, environ))
    return [validate_tag(tag)]


def _job_part(environ: Mapping[str, str]) -> str | None:
    """The branch (BRANCH_NAME) or else the job (JOB_NAME) of a Jenkins
    build as a tag part; None when neither is set."""
    name = (environ.get("BRANCH_NAME") or "").strip() or (environ.get("JOB_NAME") or "").strip()
    if not name:
        return None
    part = _branch_tag(name)
    if len(part) > JOB_PART_MAX:
        import hashlib  # only for long names: its import loads OpenSSL

        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:6]
        part = f"{part[:JOB_PART_MAX - 7].rstrip('.-')}-{digest}"
    return part


def current_branch(context: str, environ: Mapping[str, str], *, facts: GitFacts | None = None) -> str | None:
    """BRANCH_NAME (multibranch pipelines), else GIT_BRANCH without its
    remote prefix, else git's current branch; None when detached.  With
    ``facts`` (asked with want_branch) git is not asked again."""
    if environ.get("BRANCH_NAME"):
        return environ["BRANCH_NAME"]
    gb = environ.get("GIT_BRANCH")
    if gb:
        for prefix in ("refs/heads/", "refs/remotes/origin/", "origin/"):
            if gb.startswith(prefix):
                return gb[len(prefix):]
        return gb
    if facts is not None:
        return facts.branch
    return git_facts(context, want_dirty=False, want_branch=True, want_remote=False).branch


def _branch_tag(branch: str) -> str:
    t = re.sub(r"[^A-Za-z0-9_.-]+", "-", branch).lstrip(".-")[:128]
    return t or "branch"


def moving_tags(branch: str | None, moving: Mapping[str, Sequence[str]]) -> list[str]:
    """The moving tags this branch may set.  ``moving`` maps a tag to the
    branch patterns allowed to set it (shell globs: ``main``, ``release/*``);
    a tag ``{branch}`` stands for the branch name made tag-safe
    (``feature/x`` -> ``feature-x``).  No branch (detached HEAD) sets none."""
    if not branch:
        return []
    out: list[str] = []
    for tag, patterns in moving.items():
        if any(fnmatch.fnmatchcase(branch, p) for p in patterns):
            t = tag.replace("{branch}", _branch_tag(branch)) if "{branch}" in tag else tag
            validate_tag(t)
            if t not in out:
                out.append(t)
    return out


def oci_labels(context: str, environ: Mapping[str, str], *, version: str | None = None,
               now: _dt.datetime | None = None, facts: GitFacts | None = None) -> dict[str, str]:
    """org.opencontainers.image.{revision,source,created,version} from git
    and the Jenkins environment; keys whose value is unknown are left out.
    ``version`` defaults to the default immutable tag.  No credentials:
    the source URL is stripped of any user:token@."""
    if facts is None:
        facts = git_facts(context, want_dirty=version is None and not environ.get("BUILD_NUMBER"))
    labels: dict[str, str] = {}
    revision = facts.sha or (environ.get("GIT_COMMIT") or "").strip()
    if revision:
        labels[OCI + "revision"] = revision
    source = facts.remote or _clean_url((environ.get("GIT_URL") or "").strip())
    if source:
        labels[OCI + "source"] = source
    labels[OCI + "created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", _now(now, environ))
    labels[OCI + "version"] = version or default_tags(context, environ, now=now, facts=facts)[0]
    return labels


class TagPlan(Record):
    """The tags one build gets: immutable ones, then the moving ones its branch may set."""

    immutable: list[str]   # pushed first; at least one
    moving: list[str]      # pushed only after every immutable tag is


def plan_tags(context: str, environ: Mapping[str, str], *, explicit: Sequence[str] = (),
              moving: Mapping[str, Sequence[str]] | None = None, branch: str | None = None,
              now: _dt.datetime | None = None, facts: GitFacts | None = None) -> TagPlan:
    """--tag values when given (they replace the default immutable tag),
    else ``default_tags``; plus the moving tags the branch may set."""
    immutable = [validate_tag(t) for t in explicit] or default_tags(context, environ, now=now, facts=facts)
    mov: list[str] = []
    if moving:
        if branch is None:
            branch = current_branch(context, environ)
        mov = [t for t in moving_tags(branch, moving) if t not in immutable]
    return TagPlan(immutable=list(dict.fromkeys(immutable)), moving=mov)

