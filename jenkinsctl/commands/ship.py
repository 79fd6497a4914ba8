"""jenkinsctl ship [CONTEXT] --image REPO [--to TARGET]: build, push, deploy by digest."""

from __future__ import annotations

import os
import time

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
    from jenkinsctl.commands.build import add_build_arguments
    from jenkinsctl.commands.deploy import add_target_arguments

    add_build_arguments(p)
    add_target_arguments(p, required=False)
    p.add_argument("--result", metavar="FILE", help="write the result as JSON to FILE")


def run(args, ctx):
    from jenkinsctl import build as buildlib, registry as registrylib, tags as taglib
    from jenkinsctl import refs
    from jenkinsctl.commands.build import engine_for, prepare
    from jenkinsctl.commands.deploy import resolve_target
    from jenkinsctl.deploy import ImageRef, deploy_summary, make_strategy, write_result

    started = time.monotonic()
    environ = os.environ
    kwargs, conf = prepare(args, ctx, environ)
    repo = refs.parse_repository(kwargs["repository"])
    target = resolve_target(args, conf) if args.to else None
    auth = registrylib.image_auth(conf, environ, repo, step=bool(getattr(args, "params_env", None)))
    moving = [t for t in taglib.moving_tags(taglib.current_branch(args.context, environ),
                                              conf.build.moving_tags) if t not in kwargs["tags"]]
    strategy = None
    client = engine_for(conf)
    if target is not None:
        strategy = make_strategy(target, config=conf, client=client, auth=auth)
    log = buildlib.stderr_sink()
    durations: dict[str, float] = {}

    t = time.monotonic()
    built = buildlib.build(client, log=log, **kwargs)
    durations["build"] = round(time.monotonic() - t, 3)

    t = time.monotonic()
    # image_id: push refuses a tag that another build on this host re-tagged
    # since this build, so the digest deployed below is this run's image.
    pushed = registrylib.push(client, repository=repo.repository, tags=kwargs["tags"], auth=auth,
                           attempts=conf.build.push_attempts, log=log, moving_tags=moving,
                           image_id=built.image_id)
    durations["push"] = round(time.monotonic() - t, 3)

    result = {"image": repo.repository, "digest": pushed.digest, "tags": list(pushed.tags),
              "build": {"image_id": built.image_id, "builder": built.builder, "cached_steps": built.cached_steps,
                        "total_steps": built.total_steps},
              "push": {"layers_pushed": pushed.layers_pushed, "layers_existing": pushed.layers_existing,
                       "attempts": pushed.attempts},
              "deploy": None, "durations": durations}
    if strategy is not None:
        img = ImageRef(repo.repository, pushed.digest, tuple(pushed.tags))
        t = time.monotonic()
        try:
            outcome = strategy.deploy(img)
        except Exception as exc:
            durations["deploy"] = round(time.monotonic() - t, 3)
            durations["total"] = round(time.monotonic() - started, 3)
            result["deploy"] = deploy_summary(None, target, exc)
            if args.result:
                write_result(args.result, result)
            raise
        durations["deploy"] = round(time.monotonic() - t, 3)
        result["deploy"] = deploy_summary(outcome, target)
    result["pruned_tags"] = _prune_tags(client, repo.repository, keep=conf.build.keep_images,
                                        protect=set(pushed.tags))
    durations["total"] = round(time.monotonic() - started, 3)
    if args.result:
        write_result(args.result, result)
    return result


def _prune_tags(client, repository: str, *, keep: int, protect: set[str]) -> list[str]:
    """Untag the host's older images of ``repository`` beyond the newest
    ``keep`` (build.keep_images), so shipping often does not fill the disk.
    Running containers refer to images by digest, and an image a container
    still uses is never deleted (no force), so this cannot break a deploy.

    "Newest" is when the engine last tagged the image on this host
    (Metadata.LastTagTime, in nanoseconds), which every ship's build sets:
    the image's Created is the time of its last *cached* layer for BuildKit
    builds that differ only in a build arg, identical across ships, and the
    created label is fixed by SOURCE_DATE_EPOCH.  Created stands in only
    where the engine recorded no tag time."""
    import docker.errors

    try:
        images = client.api.images(name=repository)
    except docker.errors.APIError:
        return []
    tagged = []
    for img in images:
        tags = [rt for rt in img.get("RepoTags") or ()
                if rt.rpartition(":")[0] == repository and rt.rpartition(":")[2] not in protect]
        if tags:
            when = _last_tagged(client, img)
            tagged += [(when, rt) for rt in tags]
    tagged.sort(key=lambda pair: pair[0], reverse=True)   # never by tag text: s9 > s10
    removed = []
    for _, rt in tagged[keep:]:
        try:
            client.api.remove_image(rt, noprune=False)
            removed.append(rt)
        except docker.errors.APIError:
            pass
    return removed


def _last_tagged(client, img) -> float:
    """Seconds since the epoch when ``img`` (an image-list entry) was last
    tagged here, else its Created."""
    import docker.errors

    from jenkinsctl.deploy import parse_time

    try:
        meta = client.api.inspect_image(img["Id"]).get("Metadata") or {}
    except docker.errors.APIError:
        meta = {}
    t = parse_time(meta.get("LastTagTime"))
    return t.timestamp() if t.year > 1970 else float(img.get("Created") or 0)


def render(result) -> str:
    from jenkinsctl.commands.deploy import render_deploy

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
