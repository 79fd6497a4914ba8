"""jenkinsctl push --image REPO [--tag T ...]: push tags and report the digest."""

from __future__ import annotations

import os

from jenkinsctl.commands.build import clients_for
from jenkinsctl.errors import UsageError

# The rest of the library is imported inside the functions: `jenkinsctl push --help` imports
# this module, and must stay as cheap as the CLI's own start-up.

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


def run(args, ctx):
    from jenkinsctl import ship as shiplib
    from jenkinsctl.refs import parse_repository, validate_tag
    from jenkinsctl.registry import image_auth

    environ = os.environ
    if not args.image:
        raise UsageError("--image is required", hint="e.g. --image 127.0.0.1:5000/team/app")
    repo = parse_repository(args.image)
    explicit = [validate_tag(t) for t in args.tag]
    conf = ctx.config
    auth = image_auth(conf, environ, repo, step=bool(getattr(args, "params_env", None)))
    result = shiplib.push(repo, explicit, clients_for(conf, auth=auth), moving_rules=conf.build.moving_tags,
                          environ=environ)
    return result.to_dict()


def render(result) -> str:
    layers = f"{result['layers_pushed']} layers pushed, {result['layers_existing']} already there"
    tries = "" if result["attempts"] == len(result["tags"]) else f", {result['attempts']} attempts"
    lines = [f"pushed {result['repository']}@{result['digest']} ({layers}{tries}, {result['seconds']:.1f}s)"]
    lines += [f"  {result['repository']}:{t}" for t in result["tags"]]
    return "\n".join(lines)
