"""jenkinsctl rollback --to STRATEGY:TARGET: go back to the previous version."""

from __future__ import annotations

from jenkinsctl.commands.deploy import add_target_arguments, engine_client, render_deploy, resolve_target
from jenkinsctl.deploy import deploy_summary, make_strategy, write_result

DESCRIPTION = """Go back to the version deployed before the current one.

  container:NAME   start the newest kept container older than the current one again
                   (health-gated; --version picks another: vSEQ, a digest or a digest prefix)
  swarm:SERVICE    roll the service back to its previous spec and wait until it has
  webhook:URL      not possible: the receiver owns its history; deploy the old digest instead"""


def add_arguments(p) -> None:
    add_target_arguments(p, required=True)
    p.add_argument("--version", metavar="VERSION",
                   help="container: the kept version to go back to (vSEQ, sha256:..., or a digest prefix)")
    p.add_argument("--result", metavar="FILE", help="write the result as JSON to FILE")


def run(args, ctx):
    config = ctx.config
    target = resolve_target(args, config)
    client = None if target.strategy == "webhook" else engine_client(config)
    strategy = make_strategy(target, config=config, client=client)
    outcome = strategy.rollback(args.version)
    repo, _, digest = (outcome.image or "").partition("@")
    result = {"image": repo, "digest": digest or None, "tags": [],
              "deploy": deploy_summary(outcome, target), "durations": {"deploy": outcome.seconds}}
    if args.result:
        write_result(args.result, result)
    return result


def render(result) -> str:
    return render_deploy(result) if result else ""
