"""jenkinsctl build [CONTEXT] --image REPO: build an image on the host engine.

BuildKit through the docker CLI when one that can use it is found (so the
host's build cache is shared), else docker-py's classic builder.  Output is
streamed to stderr line by line; stdout carries only the result.
"""

from __future__ import annotations

import os

from jenkinsctl.errors import UsageError  # loaded by the CLI already

TYPE_CHECKING = False  # typing's import would cost `build --help`
if TYPE_CHECKING:
    from jenkinsctl.ship import Clients, Plan

# The rest of the library is imported inside the functions: `jenkinsctl build
# --help` imports this module, and must stay as cheap as the CLI's own start-up.

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


def _pairs(values, flag: str, *, allow_bare: bool) -> dict[str, str | None]:
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


def plan(args, ctx, environ=None, *, auth=None, moving: bool = False, repository=None) -> "Plan":
    """The checked Plan of the build options (see ship.plan_build).
    ``auth``: the push's credentials (ship); a plain build checks build
    args and labels against registry.url's, when they can be read."""
    from jenkinsctl.registry import registry_auth
    from jenkinsctl.ship import plan_build, secret_auth_for_build

    environ = os.environ if environ is None else environ
    conf = ctx.config
    if auth is None and not moving:
        auth = secret_auth_for_build(lambda: registry_auth(conf, environ))
    return plan_build(image=repository or args.image, context=args.context, dockerfile=args.file,
                      explicit_tags=args.tag,
                      build_args=_pairs(args.build_arg, "--build-arg", allow_bare=True),
                      user_labels=_pairs(args.label, "--label", allow_bare=False), target=args.target,
                      pull=args.pull, no_cache=args.no_cache, cache_from=tuple(args.cache_from),
                      builder=args.builder or conf.build.builder, environ=environ, secret_auth=auth,
                      moving_rules=conf.build.moving_tags if moving else None)


def clients_for(conf, *, auth=None) -> "Clients":
    """A LazyEngine: a BuildKit build or a light push never imports docker-py."""
    from jenkinsctl.build import stderr_sink
    from jenkinsctl.engine import LazyEngine
    from jenkinsctl.ship import Clients

    engine = LazyEngine(conf.engine.host, timeout=conf.engine.timeout, tls=conf.engine.tls)
    return Clients(engine=engine, config=conf, auth=auth, log=stderr_sink())


def run(args, ctx):
    from jenkinsctl import ship as shiplib

    p = plan(args, ctx)
    result = shiplib.build(p.spec, clients_for(ctx.config))
    out = result.to_dict()
    out["tags"] = list(p.spec.tags)
    out["labels"] = dict(p.spec.labels)
    return out


def render(result) -> str:
    cached = f"{result['cached_steps']}/{result['total_steps']} steps cached"
    lines = [f"built {result['image_id']} with {result['builder']} in {result['seconds']:.1f}s ({cached})"]
    lines += [f"  {r}" for r in result["refs"]]
    return "\n".join(lines)
