"""jenkinsctl down: remove the project's own containers, networks and nodes."""

from __future__ import annotations

from jenkinsctl.provision import Provisioner, render_changes
from jenkinsctl.signals import interruptible

DESCRIPTION = ("Delete the project's nodes and credential from the controller, then remove the containers and "
               "networks that carry the project's ownership labels. Volumes (the controller's home) are kept "
               "unless --volumes is given. Nothing without the labels is touched.")


def add_arguments(p) -> None:
    p.add_argument("--volumes", action="store_true", help="also remove the project's volumes (controller home)")


def run(args, ctx):
    with interruptible():
        return Provisioner(ctx.config).down(volumes=args.volumes)


def render(result) -> str:
    return render_changes(result["removed"]) if result["removed"] else "nothing to remove"
