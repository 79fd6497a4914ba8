"""Build, push and deploy as library calls: the checked BuildSpec made once at the edge, then ship()."""

from __future__ import annotations

import os
import re
import time

from jenkinsctl.build import BuildResult, BuildSpec, build_image, check_build_inputs, prune_tags
from jenkinsctl.engine import engine_api
from jenkinsctl.errors import JenkinsctlError, UsageError
from jenkinsctl.record import Record, field
from jenkinsctl.refs import Reference, parse, parse_repository, validate_tag
from jenkinsctl.registry import PushResult, check_no_secrets, push_image
from jenkinsctl.tags import (
    SHA_LEN,
    GitFacts,
    current_branch,
    default_tags,
    git_facts,
    moving_tags,
    oci_labels,
    plan_tags,
)

TYPE_CHECKING = False  # typing's import is a cost of every build and push
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Sequence

    LineSink = Callable[[str], None]


def _discard(line: str) -> None:
    pass


class Clients(Record):
    """The outside world a ship talks to, built once by the command."""

    engine: Any                                   # a LazyEngine or a docker-py client
    config: Any                                   # the loaded Config
    auth: Mapping[str, str] | None = None         # credentials for the image's registry (image_auth)
    log: LineSink = _discard


class Plan(Record):
    """A checked build plus the moving tags its push sets afterwards."""

    spec: BuildSpec
    moving: tuple[str, ...] = ()


def plan_build(*, image: str | Reference | None, context: str, dockerfile: str | None = None,
               explicit_tags: Sequence[str] = (),
               build_args: Mapping[str, str | None] | None = None, user_labels: Mapping[str, str | None] | None = None,
               target: str | None = None, pull: bool = False, no_cache: bool = False,
               cache_from: Sequence[str] = (), builder: str = "auto", environ: Mapping[str, str],
               secret_auth: Mapping[str, str] | None = None,
               moving_rules: Mapping[str, Sequence[str]] | None = None) -> Plan:
    """Everything checked before anything runs, each thing once: the
    repository, tags, build args, labels, context, Dockerfile and cache
    refs.  The default tag, the OCI labels and (with ``moving_rules``) the
    branch come from one set of concurrent git calls.  ``secret_auth``:
    credentials whose password must appear in no build arg or label."""
    if not image:
        raise UsageError("--image is required", hint="e.g. --image 127.0.0.1:5000/team/app")
    repo = image if isinstance(image, Reference) else parse_repository(image)
    explicit = [validate_tag(t) for t in explicit_tags]
    build_args = dict(build_args or {})
    user_labels = dict(user_labels or {})
    caches = [parse(c) for c in cache_from]
    ctx_dir, df = check_build_inputs(context, dockerfile)
    check_no_secrets(secret_auth, **{"build arg": build_args, "label": user_labels})
    branch_known = bool(environ.get("BRANCH_NAME") or environ.get("GIT_BRANCH"))
    facts = git_facts(ctx_dir, want_dirty=not explicit and not environ.get("BUILD_NUMBER"),
                      want_branch=bool(moving_rules) and not branch_known)
    branch = current_branch(ctx_dir, environ, facts=facts) if moving_rules else None
    tags = plan_tags(ctx_dir, environ, explicit=explicit, moving=moving_rules, branch=branch, facts=facts)
    labels = oci_labels(ctx_dir, environ, version=tags.immutable[0], facts=facts)
    labels.update({k: v or "" for k, v in user_labels.items()})
    spec = BuildSpec(repository=repo, tags=tuple(tags.immutable), context=ctx_dir, dockerfile=df,
                     build_args=build_args, labels=labels, target=target, pull=pull, no_cache=no_cache,
                     cache_from=tuple(caches), builder=builder)
    return Plan(spec=spec, moving=tuple(tags.moving))


def build(spec: BuildSpec, clients: Clients, environ: Mapping[str, str] | None = None) -> BuildResult:
    """``jenkinsctl build``: the checked build, nothing pushed."""
    return build_image(clients.engine, spec, log=clients.log, environ=environ)


def push(repository: Reference, tags: Sequence[str], clients: Clients, *,
         moving_rules: Mapping[str, Sequence[str]] | None = None,
         environ: Mapping[str, str] | None = None) -> PushResult:
    """``jenkinsctl push``: ``tags`` (checked) or, when none are given,
    the default tag of the working directory's build, then the moving tags
    the branch may set.  Git is asked once, with concurrent calls, for
    what both need."""
    environ = os.environ if environ is None else environ
    want_branch = bool(moving_rules) and not (environ.get("BRANCH_NAME") or environ.get("GIT_BRANCH"))
    facts = None
    if want_branch or not tags:
        facts = git_facts(".", want_dirty=not tags and not environ.get("BUILD_NUMBER"), want_branch=want_branch,
                          want_remote=False)
    moving = moving_tags(current_branch(".", environ, facts=facts), moving_rules) if moving_rules else []
    if not tags:
        assert facts is not None
        tags = [_default_push_tag(engine_api(clients.engine, clients.auth), repository, environ, facts)]
    return push_image(clients.engine, repository, tags, auth=clients.auth,
                      attempts=clients.config.build.push_attempts, log=clients.log,
                      moving_tags=[t for t in moving if t not in tags])


def _default_push_tag(api, repo: Reference, environ: Mapping[str, str], facts: GitFacts) -> str:
    """The default immutable tag of the working directory's build; when it
    has a timestamp (dirty tree, no git) the newest matching local tag."""
    want = default_tags(".", environ, facts=facts)[0]
    local = _local_tags(api, repo.repository)
    if want in local:
        return want
    # Only a tag with a timestamp cannot be recomputed: then take the newest
    # local one of its kind (a dirty tree also accepts the commit's clean tag,
    # as the build context may have been clean).  A build number is exact.
    sha = (facts.sha or environ.get("GIT_COMMIT") or "")[:SHA_LEN]
    family = None
    if not environ.get("BUILD_NUMBER"):
        if sha and facts.dirty:
            family = re.compile(rf"^{re.escape(sha)}(-dirty-\d{{8}}T\d{{6}}Z)?$")
        elif not sha:
            family = re.compile(r"^\d{8}T\d{6}Z$")
    found = sorted((created, t) for t, created in local.items() if family and family.match(t))
    if found:
        return found[-1][1]
    raise UsageError(f"no local image {repo.repository}:{want} (the default tag) to push",
                     hint="build it first, or name the tag with --tag")


def _local_tags(api, repository: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for img in api.images(name=repository) or ():
        for rt in img.get("RepoTags") or ():
            r, _, t = rt.rpartition(":")
            if r == repository:
                out[t] = str(img.get("Created", 0)).zfill(12)
    return out


class ShipResult(Record, frozen=False):
    """What ``ship`` did.  ``deploy_error`` is set (and nothing was pruned)
    when the deploy failed after the push: the caller records the result,
    then raises it."""

    build: BuildResult
    push: PushResult
    deploy: dict[str, Any] | None = None
    durations: dict[str, float] = field(default_factory=dict)
    pruned_tags: list[str] | None = None
    deploy_error: BaseException | None = None

    def to_dict(self) -> dict[str, Any]:
        b, p = self.build, self.push
        out: dict[str, Any] = {
            "image": p.repository, "digest": p.digest, "tags": list(p.tags),
            "build": {"image_id": b.image_id, "builder": b.builder, "cached_steps": b.cached_steps,
                      "total_steps": b.total_steps},
            "push": {"layers_pushed": p.layers_pushed, "layers_existing": p.layers_existing,
                     "attempts": p.attempts},
            "deploy": self.deploy, "durations": self.durations}
        if self.pruned_tags is not None:
            out["pruned_tags"] = self.pruned_tags
        return out


def ship(plan: Plan, target, clients: Clients, environ: Mapping[str, str] | None = None) -> ShipResult:
    """Build ``plan.spec``, push its tags then the moving tags, deploy the
    pushed digest to ``target`` (a DeployTarget, or None), and untag the
    host's older images beyond build.keep_images."""
    # The deploy package is imported only to ship: `jenkinsctl build` and
    # `push` import this module and do not pay for it.
    from jenkinsctl.deploy import ImageRef, deploy_summary, make_strategy

    started = time.monotonic()
    spec, conf = plan.spec, clients.config
    strategy = None
    if target is not None:  # before the build: a bad target costs no build
        strategy = make_strategy(target, config=conf, client=clients.engine,
                                 auth=dict(clients.auth) if clients.auth is not None else None)
    durations: dict[str, float] = {}

    t = time.monotonic()
    built = build_image(clients.engine, spec, log=clients.log, environ=environ)
    durations["build"] = round(time.monotonic() - t, 3)

    t = time.monotonic()
    # image_id: push refuses a tag that another build on this host re-tagged
    # since this build, so the digest deployed below is this run's image.
    pushed = push_image(clients.engine, spec.repository, spec.tags, auth=clients.auth,
                        attempts=conf.build.push_attempts, log=clients.log, moving_tags=plan.moving,
                        image_id=built.image_id)
    durations["push"] = round(time.monotonic() - t, 3)
    result = ShipResult(build=built, push=pushed, durations=durations)

    if strategy is not None:
        img = ImageRef(spec.repository.repository, pushed.digest, tuple(pushed.tags))
        t = time.monotonic()
        try:
            outcome = strategy.deploy(img)
        except Exception as exc:  # noqa: BLE001 - kept in the result; the command raises it after the build and push are reported
            durations["deploy"] = round(time.monotonic() - t, 3)
            durations["total"] = round(time.monotonic() - started, 3)
            result.deploy = deploy_summary(None, target, exc)
            result.deploy_error = exc
            return result
        durations["deploy"] = round(time.monotonic() - t, 3)
        result.deploy = deploy_summary(outcome, target)
    result.pruned_tags = prune_tags(clients.engine, spec.repository.repository, keep=conf.build.keep_images,
                                    protect=set(pushed.tags))
    durations["total"] = round(time.monotonic() - started, 3)
    return result


def secret_auth_for_build(registry_auth: Callable[[], Mapping[str, str] | None]) -> Mapping[str, str] | None:
    """The credentials a plain build checks its build args and labels
    against, when they can be resolved: a build itself needs none, so a
    credential that cannot be read is no error here."""
    try:
        return registry_auth()
    except JenkinsctlError:
        return None


__all__ = ["BuildSpec", "Clients", "GitFacts", "Plan", "ShipResult", "build", "plan_build", "push", "ship",
           "secret_auth_for_build"]
