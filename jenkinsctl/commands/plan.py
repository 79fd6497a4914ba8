"""jenkinsctl plan: what apply would change, changing nothing."""

from __future__ import annotations

from jenkinsctl.provision import Provisioner, render_changes

DESCRIPTION = ("Show what 'apply' would do to the project's network, volume, containers, credential and nodes: "
               "create, update, remove or unchanged. Builds nothing, starts nothing, registers nothing.")


def add_arguments(p) -> None:
    pass


def run(args, ctx):
    changes = Provisioner(ctx.config).plan()
    return {"changes": [c.to_dict() for c in changes],
            "pending": sum(1 for c in changes if c.action != "unchanged")}


def render(result) -> str:
    return render_changes(result["changes"])
