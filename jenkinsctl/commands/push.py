"""jenkinsctl push --image REPO [--tag T ...]: push tags and report the digest."""

from __future__ import annotations

import os
import re

DESCRIPTION = """Push REPO:TAG for each tag, then the moving tags, and report the digest.

Without --tag the build's default immutable tag is pushed (see 'jenkinsctl
build --help'; the newest local -dirty-/timestamp tag when the tree is not
clean).  Moving tags from build.moving_tags (latest on main/master by default)
are pushed only after the immutable tag succeeded.

Credentials: JENKINSCTL_REGISTRY_USERNAME and JENKINSCTL_REGISTRY_PASSWORD or
JENKINSCTL_REGISTRY_PASSWORD_FILE, else registry.username/password from the
config.  Never from a flag.  Transient registry errors (5xx, reset, EOF) are
retried build.push_attempts times; 401/403/denied fail at once."""


def add_arguments(p) -> None:
    p.add_argument("--image", "-i", metavar="REPO", default=None, help="repository to push (no tag)")
    p.add_argument("--tag", "-t", metavar="TAG", action="append", default=[],
                   help="tag to push instead of the default immutable tag (repeatable; first is pushed first)")


def _default_tag(api, repo, environ) -> str:
    """The default immutable tag of the working directory's build; when it
    has a timestamp (dirty tree, no git) the newest matching local tag."""
    from jenkinsctl import tags as taglib
    from jenkinsctl.errors import UsageError

    facts = taglib.git_facts(".", want_dirty=not environ.get("BUILD_NUMBER"), want_remote=False)
    want = taglib.default_tags(".", environ, facts=facts)[0]
    local = _local_tags(api, repo.repository)
    if want in local:
        return want
    # Only a tag with a timestamp cannot be recomputed: then take the newest
    # local one of its kind (a dirty tree also accepts the commit's clean tag,
    # as the build context may have been clean).  A build number is exact.
    sha = (facts.sha or environ.get("GIT_COMMIT") or "")[: taglib.SHA_LEN]
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


def run(args, ctx):
    from jenkinsctl import build, engine, refs, registry, tags as taglib
    from jenkinsctl.commands.build import settings
    from jenkinsctl.errors import UsageError

    environ = os.environ
    if not args.image:
        raise UsageError("--image is required", hint="e.g. --image 127.0.0.1:5000/team/app")
    repo = refs.parse_repository(args.image)
    explicit = [refs.validate_tag(t) for t in args.tag]
    conf = settings(ctx)
    moving = taglib.moving_tags(taglib.current_branch(".", environ), conf.build.moving_tags)
    auth = registry.image_auth(conf, environ, repo, step=bool(getattr(args, "params_env", None)))
    client = engine.LazyEngine(conf.engine.host, timeout=conf.engine.timeout, tls=conf.engine.tls)
    tags = explicit or [_default_tag(engine.engine_api(client, auth), repo, environ)]
    result = registry.push(client, repository=repo.repository, tags=tags, auth=auth,
                        attempts=conf.build.push_attempts, log=build.stderr_sink(),
                        moving_tags=[t for t in moving if t not in tags])
    return result.to_dict()


def render(result) -> str:
    layers = f"{result['layers_pushed']} layers pushed, {result['layers_existing']} already there"
    tries = "" if result["attempts"] == len(result["tags"]) else f", {result['attempts']} attempts"
    lines = [f"pushed {result['repository']}@{result['digest']} ({layers}{tries}, {result['seconds']:.1f}s)"]
    lines += [f"  {result['repository']}:{t}" for t in result["tags"]]
    return "\n".join(lines)
