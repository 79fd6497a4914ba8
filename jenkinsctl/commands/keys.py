"""jenkinsctl keys list | rotate: the controller's SSH client key and the
agents' host keys, kept in the state directory.  Only fingerprints are ever
shown."""

from __future__ import annotations

import logging

from jenkinsctl import provision
from jenkinsctl.errors import UsageError
from jenkinsctl.keys import KeyStore

DESCRIPTION = ("Manage the SSH keys in the state directory: the controller's client key (its credential on every "
               "agent) and one host key per agent, which Jenkins pins. 'list' shows fingerprints; 'rotate' "
               "replaces keys and re-registers the agents. Key material is never printed.")

log = logging.getLogger("jenkinsctl.keys")


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="show the keys' fingerprints")
    r = sub.add_parser("rotate", help="replace keys, then re-register the agents")
    r.add_argument("--client", action="store_true", help="rotate the controller's client key")
    r.add_argument("--node", action="append", default=[], metavar="NODE",
                   help="rotate this agent's host key (repeatable)")
    r.add_argument("--no-reregister", action="store_true",
                   help="only replace the key files; the next 'jenkinsctl apply' re-registers")
    r.epilog = "With neither --client nor --node, every key rotates: the client key and each configured agent's."


def run(args, ctx):
    cfg = ctx.config
    store = KeyStore(cfg.state_dir)
    if args.action == "list":
        return {"state_dir": str(store.root), "keys": store.fingerprints()}
    configured = [n for g in cfg.agents for n in g.node_names()]
    unknown = [n for n in args.node if n not in configured and store.existing_host_key(n) is None]
    if unknown:
        raise UsageError(f"no agent named {', '.join(unknown)}",
                         hint=f"configured agents: {', '.join(configured) or 'none'}")
    everything = not args.client and not args.node
    nodes = sorted(set(configured) | set(store.host_nodes())) if everything else args.node
    rotated = store.rotate(client=everything or args.client, nodes=nodes)
    result = {"state_dir": str(store.root), "rotated": rotated, "keys": store.fingerprints()}
    # Re-registration (credential update, agents recreated with the new host
    # keys, nodes' pinned keys updated) belongs to the provisioner.
    if args.no_reregister:
        result["reregistered"] = False
        log.warning("keys rotated; run 'jenkinsctl apply' to recreate the agents and re-register them")
    else:
        result["reregistered"] = True
        result["reregistration"] = provision.reregister(cfg)
    return result


def render(result) -> str:
    rows = [("KIND", "NAME", "ALGORITHM", "FINGERPRINT", "CREATED")]
    rows += [(k["kind"], k["name"], k["algorithm"], k["fingerprint"], k["created"]) for k in result["keys"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if "rotated" in result:
        lines.insert(0, f"rotated: {', '.join(result['rotated']) or 'nothing'}")
    if len(rows) == 1:
        lines.append(f"(no keys yet in {result['state_dir']}; apply generates them)")
    return "\n".join(lines)
