"""The names of a project's Docker resources, nodes and credential, and the rules they obey.

Provisioning, the generated CasC and the key store all name the same things;
they take the names from here, so a rename or a new rule happens once.
The project and group names are checked by the config schema; what is
checked here is what only their combination can break.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

from jenkinsctl.errors import ConfigError

if TYPE_CHECKING:
    from jenkinsctl.config import AgentGroup, Config

# The credential id of the CasC jenkinsctl writes for a controller it runs.
AGENT_CREDENTIAL_ID = "jenkinsctl-agent-ssh"
# How the nodes of a controller jenkinsctl runs describe themselves: what the
# CasC writes, so a restart (which re-applies the CasC) changes nothing.
CASC_NODE_MARKER = "jenkinsctl agent"

# Docker's own rule for container names (daemon/names.RestrictedNamePattern).
_DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
MAX_DOCKER_NAME = 128
# A container name is the host name the controller resolves: one DNS label.
MAX_HOST_NAME = 63
# A node name that is safe as a single directory in the state dir.
_PATH_SAFE_NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Jenkins.checkGoodName rejects these characters in node names.
_UNSAFE_NAME_CHARS = set('?*/\\%!@#$^&|<>[]:;"\'`')
MAX_NODE_NAME = 100


def network_name(cfg: Config) -> str:
    return f"{cfg.project}-net"


def volume_name(cfg: Config) -> str:
    return f"{cfg.project}-jenkins-home"


def controller_name(cfg: Config) -> str:
    return f"{cfg.project}-controller"


def agent_container_name(cfg: Config, node: str) -> str:
    """The agent's container, and its host name on the project network."""
    return f"{cfg.project}-{node}"


def credential_id(cfg: Config) -> str:
    """The id the generated CasC uses for a controller jenkinsctl runs; one
    per project in an external controller, which projects may share."""
    if cfg.controller.external:
        return f"jenkinsctl-{cfg.project}-agent-ssh"
    return AGENT_CREDENTIAL_ID


def node_marker(cfg: Config) -> str:
    """The start of our nodes' descriptions: how down and orphan removal
    find them.  In a controller jenkinsctl runs it is what the generated
    CasC writes; in an external controller it names the project."""
    if cfg.controller.external:
        return f"managed by jenkinsctl (project {cfg.project})"
    return CASC_NODE_MARKER


def node_description(cfg: Config, group: AgentGroup) -> str:
    return f"{node_marker(cfg)}, group {group.name}"


def casc_node_description(group: AgentGroup) -> str:
    """The description the generated CasC gives a node: node_description of
    a controller jenkinsctl runs, which is the only kind that reads it."""
    return f"{CASC_NODE_MARKER}, group {group.name}"


def is_our_node(cfg: Config, description: str) -> bool:
    return description.startswith(node_marker(cfg) + ", group ")


def check_container_name(name: str) -> str:
    """``name`` if Docker takes it as a container name and the controller
    can resolve it as a host name, else ConfigError."""
    if not _DOCKER_NAME.match(name) or len(name) > MAX_DOCKER_NAME:
        raise ConfigError(f"container name '{name}' is not valid for Docker",
                          hint="use a shorter project or group name made of letters, digits and '-'")
    if len(name) > MAX_HOST_NAME:
        raise ConfigError(f"container name '{name}' is longer than {MAX_HOST_NAME} characters, so the controller "
                          "could not resolve it as a host name", hint="shorten the project or group name")
    return name


def check_path_safe_node(node: str) -> str:
    """``node`` if it names one directory under the state dir (no path
    separator, no leading dot), else ConfigError."""
    if not _PATH_SAFE_NODE.match(node):
        raise ConfigError(f"'{node}' is not a valid node name for a key",
                          hint="use letters, digits, '.', '_' and '-'")
    return node


def validate_node_name(name: str) -> str:
    """Return ``name`` if Jenkins can store it as a node, else raise ConfigError.

    Jenkins keeps a node in ``nodes/NAME/``, so it refuses path separators,
    ``.``/``..`` and the characters of ``Jenkins.checkGoodName``.  Spaces,
    ``+`` and unicode are valid and are percent-encoded in URLs.  Names are
    capped at 100 characters so every file-system path stays short.
    """
    problem = None
    if not isinstance(name, str) or not name:
        problem = "is empty"
    elif name != name.strip():
        problem = "starts or ends with whitespace (Jenkins would silently trim it)"
    elif name in (".", "..") or name.startswith("../") or "/.." in name:
        problem = "is a relative path"
    elif len(name) > MAX_NODE_NAME:
        problem = f"is {len(name)} characters long; the limit is {MAX_NODE_NAME}"
    else:
        bad = sorted({c for c in name if c in _UNSAFE_NAME_CHARS})
        ctrl = any(unicodedata.category(c).startswith("C") for c in name)
        if bad:
            problem = "contains " + " ".join(repr(c) for c in bad)
        elif ctrl:
            problem = "contains control characters"
    if problem:
        raise ConfigError(f"node name {name!r} {problem}",
                          hint="use letters, digits, '-', '_', '.', spaces or '+' (no / \\ ? * % : ; | < > [ ])",
                          node=name if isinstance(name, str) else None)
    return name
