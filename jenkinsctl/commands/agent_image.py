"""jenkinsctl agent-image: build the SSH agent image and print its reference."""

from __future__ import annotations

DESCRIPTION = ("Build the SSH agent image (resources/agent) on the configured engine, with jenkinsctl installed from "
               "wheels built on this host, and print its reference. The tag carries a hash of the content, so a "
               "second run with nothing changed reuses the image and builds nothing.")


def add_arguments(p) -> None:
    p.add_argument("--base", metavar="IMAGE", default=None,
                   help="base image (default: debian:trixie-slim, the Dockerfile's ARG BASE); its python3 must be "
                        "3.13, the Python the wheels are fetched for")
    p.add_argument("--rebuild", action="store_true", help="build even when an image with the same hash exists")


def run(args, ctx):
    from jenkinsctl.agent_image import DEFAULT_BASE, build_agent_image
    from jenkinsctl.engine import client

    cfg = ctx.config
    engine = client(cfg.engine.host, timeout=max(cfg.engine.timeout, 600), tls=cfg.engine.tls)
    ref = build_agent_image(engine, project=cfg.project, base=args.base or DEFAULT_BASE, rebuild=args.rebuild)
    return {"image": ref}


def render(result) -> str:
    return result["image"]
