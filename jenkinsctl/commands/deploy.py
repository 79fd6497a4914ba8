"""jenkinsctl deploy --image REF --to STRATEGY:TARGET: redeploy by digest."""

from __future__ import annotations

import dataclasses
import os

from jenkinsctl import engine, refs
from jenkinsctl import registry as registrylib
from jenkinsctl.config import Health
from jenkinsctl.deploy import deploy_summary, make_strategy, parse_target, resolve_image, write_result
from jenkinsctl.errors import UsageError

DESCRIPTION = """Redeploy an image by digest and wait for the outcome.

--to is STRATEGY:TARGET or the name of a target in the config's deploy.targets:
  container:NAME    replace a container on this engine, health-gated; the old one keeps
                    serving if the new one is unhealthy, and is kept for rollback
  swarm:SERVICE     update a Swarm service (start-first where ports allow, rollback on failure)
  webhook:URL       POST {image, digest, tags} to a redeploy trigger; the Bearer secret comes
                    from JENKINSCTL_WEBHOOK_SECRET(_FILE) or the target's secret reference
  stack:NAME        docker stack deploy of the target's compose file, one service pinned by digest

--image may carry a tag (resolved to its digest at the registry) or a digest.
Registry credentials: JENKINSCTL_REGISTRY_USERNAME and JENKINSCTL_REGISTRY_PASSWORD(_FILE)."""


def add_arguments(p) -> None:
    p.add_argument("--image", required=True, metavar="REF",
                   help="image to deploy: REPO:TAG (resolved to a digest) or REPO@sha256:...")
    add_target_arguments(p, required=True)
    p.add_argument("--result", metavar="FILE", help="write the result as JSON to FILE")


def add_target_arguments(p, *, required: bool) -> None:
    """--to and the flags that override a target's settings (shared with
    rollback and ship)."""
    p.add_argument("--to", required=required, metavar="TARGET",
                   help="STRATEGY:TARGET (container:NAME, swarm:SERVICE, webhook:URL) or a configured target")
    p.add_argument("--health-url", metavar="URL", help="container: HTTP URL that must answer 2xx/3xx "
                   "(overrides the target's health.http; default: the image's HEALTHCHECK)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="how long the whole deploy may take: lock wait, pull, health gates, convergence, "
                   "webhook retries (overrides the target's timeout)")
    p.add_argument("--keep", type=int, metavar="N", help="container: previous versions kept for rollback")


def resolve_target(args, config):
    target = parse_target(args.to, config)
    changes = {}
    if getattr(args, "health_url", None):
        if not args.health_url.startswith(("http://", "https://")):
            raise UsageError(f"--health-url {args.health_url}: not an http(s) URL")
        changes["health"] = Health(http=args.health_url, timeout=target.health.timeout,
                                   interval=target.health.interval)
    if getattr(args, "timeout", None) is not None:
        if args.timeout <= 0:
            raise UsageError("--timeout must be more than 0")
        changes["timeout"] = args.timeout
    if getattr(args, "keep", None) is not None:
        if args.keep < 0:
            raise UsageError("--keep must be 0 or more")
        changes["keep"] = args.keep
    return dataclasses.replace(target, **changes) if changes else target


def engine_client(config):
    return engine.client(config.engine.host, timeout=config.engine.timeout, tls=config.engine.tls)


def run(args, ctx):
    config = ctx.config
    target = resolve_target(args, config)
    ref = refs.parse(args.image)
    auth = registrylib.image_auth(config, os.environ, ref, step=bool(getattr(args, "params_env", None)))
    client = None if (target.strategy == "webhook" and ref.digest) else engine_client(config)
    image = resolve_image(client, ref, auth)
    strategy = make_strategy(target, config=config, client=client, auth=auth)
    result = {"image": image.repository, "digest": image.digest, "tags": list(image.tags)}
    try:
        outcome = strategy.deploy(image)
    except Exception as exc:
        if args.result:
            write_result(args.result, {**result, "deploy": deploy_summary(None, target, exc), "durations": {}})
        raise
    result.update({"deploy": deploy_summary(outcome, target), "durations": {"deploy": outcome.seconds}})
    if args.result:
        write_result(args.result, result)
    return result


def render(result) -> str:
    return render_deploy(result)


def render_deploy(result) -> str:
    if not result:
        return ""
    d = result["deploy"]
    det = d.get("details") or {}
    pinned = f"{result['image']}@{result['digest']}"
    words = {"deployed": "deployed", "created": "created", "unchanged": "already running",
             "triggered": "triggered", "rolled-back": "rolled back to"}
    lines = [f"{words.get(d['outcome'], d['outcome'])} {pinned} at {d['target']}"]
    facts = []
    if det.get("mode"):
        facts.append(det["mode"])
    if det.get("switch_ms") is not None and det.get("mode") == "stop-first":
        facts.append(f"switch {det['switch_ms']:.0f} ms")
    if det.get("health"):
        facts.append(f"health: {det['health']}")
    if det.get("state"):
        facts.append(f"update: {det['state']}")
    if det.get("status") is not None and d["strategy"] == "webhook":
        facts.append(f"HTTP {det['status']} after {det.get('attempts', 1)} attempt(s)")
    if facts:
        lines.append("  " + ", ".join(facts))
    prev = d.get("previous")
    if prev:
        kept = f" (kept as {det['retired']})" if det.get("retired") else ""
        lines.append(f"  previous: {prev.get('image')}{kept}")
    if det.get("pruned"):
        lines.append(f"  removed old versions: {', '.join(det['pruned'])}")
    return "\n".join(lines)
