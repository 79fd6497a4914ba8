"""jenkinsctl build [CONTEXT] --image REPO: build an image on the host engine.

BuildKit through the docker CLI when one that can use it is found (so the
host's build cache is shared), else docker-py's classic builder.  Output is
streamed to stderr line by line; stdout carries only the result.
"""

from __future__ import annotations

import os
from typing import Any

DESCRIPTION = """Build an image on the host engine and tag it REPO:TAG.

Without --tag the tag is immutable: the commit's first 12 hex digits, plus
-BRANCH-bBUILD_NUMBER in Jenkins (BRANCH_NAME, else JOB_NAME); with
uncommitted changes -dirty-TIMESTAMP is added, and outside git a UTC
timestamp is used (YYYYMMDDTHHMMSSZ).
OCI labels (revision, source, created, version) are added from git and the
Jenkins environment.  Build args and labels are stored in the image: never
put credentials in them.  Moving tags (latest, ...) are set by push."""


def add_build_arguments(p) -> None:
    """The build options, shared with ``ship``.  Dests: context, image,
    file, tag, build_arg, target, builder, label, pull, no_cache, cache_from."""
    p.add_argument("context", nargs="?", default=".", metavar="CONTEXT",
                   help="build context directory (default: .)")
    # Not required=True: the pipeline step supplies --image through
    # --params-env as a parser default, which argparse's check ignores.
    p.add_argument("--image", "-i", metavar="REPO", default=None,
                   help="repository to tag, e.g. 127.0.0.1:5000/team/app (no tag)")
    p.add_argument("--file", "-f", metavar="DOCKERFILE", default=None,
                   help="Dockerfile, relative to the current directory (default: CONTEXT/Dockerfile)")
    p.add_argument("--tag", "-t", metavar="TAG", action="append", default=[],
                   help="tag to set instead of the default immutable tag (repeatable)")
    p.add_argument("--build-arg", dest="build_arg", metavar="K=V", action="append", default=[],
                   help="build argument; K alone takes the value from the environment (repeatable; not for secrets)")
    p.add_argument("--target", metavar="STAGE", default=None, help="build up to this stage")
    p.add_argument("--builder", choices=("auto", "buildkit", "classic"), default=None,
                   help="auto (default, from build.builder): BuildKit when a docker CLI can use it, else classic")
    p.add_argument("--label", metavar="K=V", action="append", default=[], help="image label (repeatable)")
    p.add_argument("--pull", action="store_true", default=False, help="always pull newer base images")
    p.add_argument("--no-cache", dest="no_cache", action="store_true", default=False,
                   help="do not use the build cache")
    p.add_argument("--cache-from", dest="cache_from", metavar="REF", action="append", default=[],
                   help="image to use as a cache source (repeatable)")


def add_arguments(p) -> None:
    add_build_arguments(p)


def settings(ctx):
    """The config; with no file and no overrides, load_config skips schema
    validation, so an unchanged build does not pay for jsonschema."""
    return ctx.config


def _pairs(values, flag: str, *, allow_bare: bool) -> dict[str, str | None]:
    from jenkinsctl.errors import UsageError

    out: dict[str, str | None] = {}
    if isinstance(values, dict):  # from --params-env: {"K": "V"}
        values = [(k, v) for k, v in values.items()]
    for item in values or ():
        if isinstance(item, (list, tuple)) and len(item) == 2:  # from --params-env
            key, value = str(item[0]), None if item[1] is None else str(item[1])
        else:
            key, eq, value = str(item).partition("=")
            if not eq:
                if not allow_bare:
                    raise UsageError(f"{flag} '{item}' is not KEY=VALUE", hint=f"write {flag} {item}=VALUE")
                value = None
        if not key or any(c.isspace() for c in key):
            raise UsageError(f"{flag} '{item}': the key is empty or has white space", hint=f"write {flag} KEY=VALUE")
        out[key] = value
    return out


def prepare(args, ctx, environ=None) -> tuple[dict[str, Any], Any]:
    """Everything validated before anything runs: the repository, tags,
    build args, labels, context, Dockerfile and cache refs.  Returns the
    keyword arguments for image.build (minus client and log) and the config."""
    from jenkinsctl import build, refs, registry, tags as taglib
    from jenkinsctl.errors import UsageError

    environ = os.environ if environ is None else environ
    if not args.image:
        raise UsageError("--image is required", hint="e.g. --image 127.0.0.1:5000/team/app")
    repo = refs.parse_repository(args.image)
    explicit = [refs.validate_tag(t) for t in args.tag]
    build_args = _pairs(args.build_arg, "--build-arg", allow_bare=True)
    user_labels = _pairs(args.label, "--label", allow_bare=False)
    for c in args.cache_from:
        refs.parse(c)
    ctx_dir, _ = build._check_build_inputs(args.context, args.file)
    conf = settings(ctx)
    # The password is known here only if set; its absence is no error for a build.
    try:
        auth = registry.registry_auth(conf, environ)
    except Exception:  # noqa: BLE001 - a build needs no credentials
        auth = None
    registry.check_no_secrets(auth, **{"build arg": build_args, "label": user_labels})
    facts = taglib.git_facts(ctx_dir, want_dirty=not explicit and not environ.get("BUILD_NUMBER"))
    tags = explicit or taglib.default_tags(ctx_dir, environ, facts=facts)
    labels = taglib.oci_labels(ctx_dir, environ, version=tags[0], facts=facts)
    labels.update({k: v or "" for k, v in user_labels.items()})
    return dict(context=args.context, repository=repo.repository, tags=tags, dockerfile=args.file,
                build_args=build_args, target=args.target, labels=labels, pull=args.pull,
                no_cache=args.no_cache, cache_from=tuple(args.cache_from),
                builder=args.builder or conf.build.builder, environ=environ), conf


def engine_for(conf):
    from jenkinsctl.engine import LazyEngine

    return LazyEngine(conf.engine.host, timeout=conf.engine.timeout, tls=conf.engine.tls)


def run(args, ctx):
    from jenkinsctl import build

    kwargs, conf = prepare(args, ctx)
    result = build.build(engine_for(conf), log=build.stderr_sink(), **kwargs)
    out = result.to_dict()
    out["tags"] = list(kwargs["tags"])
    out["labels"] = kwargs["labels"]
    return out


def render(result) -> str:
    cached = f"{result['cached_steps']}/{result['total_steps']} steps cached"
    lines = [f"built {result['image_id']} with {result['builder']} in {result['seconds']:.1f}s ({cached})"]
    lines += [f"  {r}" for r in result["refs"]]
    return "\n".join(lines)
