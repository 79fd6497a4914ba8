"""jenkinsctl ship [CONTEXT] --image REPO [--to TARGET]: build, push, deploy by digest."""

from __future__ import annotations

import os

from jenkinsctl.commands.build import add_build_arguments, clients_for, plan
from jenkinsctl.commands.deploy import add_target_arguments, render_deploy, resolve_target
from jenkinsctl.errors import UsageError

# The rest of the library is imported inside the functions: `jenkinsctl ship --help` imports
# this module, and must stay as cheap as the CLI's own start-up.

DESCRIPTION = """Build, push and (with --to) deploy in one command: what the dockerBuildPush step runs.

The deploy uses the digest this run pushed, never a tag, so two ships of two
branches of one repository running at the same time each deploy their own
build.  Everything is checked before the build starts: the image reference,
tags, build args, the --to target and the registry credentials
(JENKINSCTL_REGISTRY_USERNAME / JENKINSCTL_REGISTRY_PASSWORD(_FILE)).

--result FILE writes JSON: image, digest, tags, deploy {strategy, target,
outcome, previous}, and the seconds of each stage (build, push, deploy, total).
It is written on a failed deploy too (deploy.outcome "failed"), since the
image was pushed by then."""


def add_arguments(p) -> None:
    add_build_arguments(p)
    add_target_arguments(p, required=False)
    p.add_argument("--result", metavar="FILE", help="write the result as JSON to FILE")


def run(args, ctx):
    from jenkinsctl import ship as shiplib
    from jenkinsctl.deploy import write_result
    from jenkinsctl.refs import parse_repository
    from jenkinsctl.registry import image_auth

    environ = os.environ
    conf = ctx.config
    if not args.image:
        raise UsageError("--image is required", hint="e.g. --image 127.0.0.1:5000/team/app")
    # The image's credentials, resolved once: they are what the push sends,
    # and build args and labels must not carry their password.
    repo = parse_repository(args.image)
    auth = image_auth(conf, environ, repo, step=bool(getattr(args, "params_env", None)))
    p = plan(args, ctx, environ, auth=auth, moving=True, repository=repo)
    target = resolve_target(args, conf) if args.to else None
    shipped = shiplib.ship(p, target, clients_for(conf, auth=auth), environ=environ)
    result = shipped.to_dict()
    if args.result:
        write_result(args.result, result)
    if shipped.deploy_error is not None:
        raise shipped.deploy_error
    return result


def render(result) -> str:
    if not result:
        return ""
    d = result["durations"]
    b = result["build"]
    lines = [f"built {result['image']} with {b['builder']} in {d['build']:.1f}s "
             f"({b['cached_steps']}/{b['total_steps']} steps cached)",
             f"pushed {result['image']}@{result['digest']} in {d['push']:.1f}s "
             f"({result['push']['layers_pushed']} layers pushed, {result['push']['layers_existing']} already there)",
             "  tags: " + ", ".join(result["tags"])]
    if result.get("deploy"):
        lines.append(render_deploy(result) + f"\n  in {d['deploy']:.1f}s")
    lines.append(f"total {d['total']:.1f}s")
    return "\n".join(lines)
