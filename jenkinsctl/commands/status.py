"""jenkinsctl status: the controller and each agent, container and node."""

from __future__ import annotations

from jenkinsctl.provision import Provisioner, render_status

DESCRIPTION = ("Show the controller and each agent: container state, node online or offline and why, labels "
               "and executors. --output json gives the same data.")


def add_arguments(p) -> None:
    pass


def run(args, ctx):
    return Provisioner(ctx.config).status()


def render(result) -> str:
    return render_status(result)
