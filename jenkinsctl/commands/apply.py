"""jenkinsctl apply: converge the controller and agents to the config."""

from __future__ import annotations

from jenkinsctl.provision import Provisioner, render_changes
from jenkinsctl.signals import interruptible

DESCRIPTION = ("Create or update the project's network, controller, agent containers, SSH credential and "
               "nodes so they match the config, then wait for the nodes to come online. Only what differs "
               "is touched; a second apply changes nothing. Two applies at once run one after the other.")


def add_arguments(p) -> None:
    p.add_argument("--no-wait", action="store_true", help="do not wait for the nodes to come online")
    p.add_argument("--wait-timeout", type=float, default=180.0, metavar="SECONDS",
                   help="how long to wait for the nodes to come online (default 180)")


def run(args, ctx):
    with interruptible():
        return Provisioner(ctx.config).apply(wait=not args.no_wait, wait_timeout=args.wait_timeout)


def render(result) -> str:
    changed = [c for c in result["changes"] if c["action"] != "unchanged"]
    online = sum(1 for n in result["nodes"].values() if n.get("online"))
    text = render_changes(changed) if changed else "no changes: everything matches the config"
    if result["nodes"]:
        text += f"\n{online}/{len(result['nodes'])} nodes online"
    return text
