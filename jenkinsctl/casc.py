"""Configuration-as-Code for the controller jenkinsctl runs, and its plugins.

The controller image (resources/controller) installs plugins.txt and reads
the YAML from CASC_JENKINS_CONFIG.  The YAML names secrets only as
``${readFile:/run/secrets/...}``: the admin password and the agents' SSH
private key are files the provisioner puts in the container, never values in
the YAML, an environment variable or ``docker inspect``.

``render_casc`` is pure (config, host keys, library source in; text out), so
golden files pin it.  ``casc_for`` wires it to a KeyStore.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

import yaml

from jenkinsctl.resources import resource_path

if TYPE_CHECKING:
    from jenkinsctl.config import Config
    from jenkinsctl.keys import KeyStore

# Paths inside the controller container; the provisioner provides the files.
SECRETS_DIR = "/run/secrets"
ADMIN_PASSWORD_FILE = f"{SECRETS_DIR}/jenkins-admin-password"
AGENT_KEY_FILE = f"{SECRETS_DIR}/jenkins-agent-key"
CASC_FILE = "/run/jenkinsctl/casc/jenkins.yaml"  # CASC_JENKINS_CONFIG in the Dockerfile

AGENT_CREDENTIAL_ID = "jenkinsctl-agent-ssh"
AGENT_USER = "jenkins"
LIBRARY_NAME = "jenkinsctl"
DEFAULT_LIBRARY_URL = "https://github.com/jenkinsctl/jenkinsctl.git"
DEFAULT_LIBRARY_VERSION = "main"

# Plugin -> what needs it.  plugins.txt is generated from this and pinned by
# a test, so the generated YAML never uses a plugin the image lacks.
PLUGINS: dict[str, str] = {
    "configuration-as-code": "reads the generated jenkins.yaml",
    "credentials": "the system credential store",
    "ssh-credentials": "basicSSHUserPrivateKey, the agents' SSH credential",
    "ssh-slaves": "launcher.ssh and manuallyProvidedKeyVerificationStrategy",
    "workflow-aggregator": "Pipeline",
    "pipeline-groovy-lib": "globalLibraries: @Library('jenkinsctl')",
    "git": "the library's SCM (retriever.modernSCM.scm.git)",
    "matrix-auth": "authorizationStrategy.globalMatrix",
}

SSH_LAUNCH_TIMEOUT = 60
SSH_MAX_RETRIES = 10
SSH_RETRY_WAIT = 15


@dataclass(frozen=True)
class LibrarySource:
    """Where the controller fetches this shared library from."""

    url: str = DEFAULT_LIBRARY_URL
    version: str = DEFAULT_LIBRARY_VERSION


def library_source(environ: Mapping[str, str] | None = None) -> LibrarySource:
    """JENKINSCTL_LIBRARY_URL / _VERSION, else the checkout's ``origin``
    remote when it is a URL a controller can clone, else the default."""
    env = os.environ if environ is None else environ
    version = env.get("JENKINSCTL_LIBRARY_VERSION") or DEFAULT_LIBRARY_VERSION
    if env.get("JENKINSCTL_LIBRARY_URL"):
        return LibrarySource(env["JENKINSCTL_LIBRARY_URL"], version)
    root = pathlib.Path(__file__).resolve().parent.parent
    if (root / ".git").exists():
        try:
            url = subprocess.run(["git", "-C", str(root), "config", "--get", "remote.origin.url"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            url = ""
        if url.startswith(("https://", "http://", "ssh://", "git@")):
            return LibrarySource(url, version)
    return LibrarySource(DEFAULT_LIBRARY_URL, version)


def default_agent_host(cfg: "Config", node: str) -> str:
    """The agent's address as the controller sees it: its container name on
    the project network."""
    return f"{cfg.project}-{node}"


def casc_document(cfg: "Config", host_keys: Mapping[str, str], *, library: LibrarySource | None = None,
                  agent_host: Callable[["Config", str], str] = default_agent_host,
                  credential_description: str = "jenkinsctl: the controller's SSH key for its agents") -> dict:
    """The CasC document.  ``host_keys`` maps node name -> "ALGORITHM BASE64"
    (KeyPair.host_key_entry); every configured node needs one."""
    from jenkinsctl.agent_image import node_remote_fs

    library = library or library_source()
    nodes = []
    for group in cfg.agents:
        for node in group.node_names():
            nodes.append({"permanent": {
                "name": node,
                "nodeDescription": f"jenkinsctl agent, group {group.name}",
                "remoteFS": node_remote_fs(group, node),
                "labelString": " ".join(group.labels),
                "numExecutors": group.executors,
                "mode": "NORMAL",
                "retentionStrategy": "always",
                "launcher": {"ssh": {
                    "host": agent_host(cfg, node),
                    "port": group.ssh_port,
                    "credentialsId": AGENT_CREDENTIAL_ID,
                    "launchTimeoutSeconds": SSH_LAUNCH_TIMEOUT,
                    "maxNumRetries": SSH_MAX_RETRIES,
                    "retryWaitTime": SSH_RETRY_WAIT,
                    # Never non-verifying: the key jenkinsctl generated for
                    # this agent, so a different agent on that address is refused.
                    "sshHostKeyVerificationStrategy": {
                        "manuallyProvidedKeyVerificationStrategy": {"key": host_keys[node]}},
                }},
            }})
    admin = cfg.controller.username
    return {
        "jenkins": {
            "systemMessage": f"Managed by jenkinsctl (project {cfg.project}): configuration-as-code "
                             "overwrites changes made here.",
            "numExecutors": 0,
            "mode": "EXCLUSIVE",
            # Agents connect over SSH: no inbound TCP agent port.
            "slaveAgentPort": -1,
            "securityRealm": {"local": {
                "allowsSignup": False,
                "users": [{"id": admin, "password": f"${{readFile:{ADMIN_PASSWORD_FILE}}}"}],
            }},
            "authorizationStrategy": {"globalMatrix": {"entries": [
                {"user": {"name": admin, "permissions": ["Overall/Administer"]}},
            ]}},
            # The default crumb issuer.  It takes no attributes since Jenkins
            # 2.543: excludeClientIPFromCrumb would fail the boot.
            "crumbIssuer": "standard",
            "nodes": nodes,
        },
        "credentials": {"system": {"domainCredentials": [{"credentials": [{"basicSSHUserPrivateKey": {
            "scope": "SYSTEM",
            "id": AGENT_CREDENTIAL_ID,
            "username": AGENT_USER,
            # apply compares this description to tell whether the stored key
            # is the current one (the controller never returns the key).
            "description": credential_description,
            "privateKeySource": {"directEntry": {"privateKey": f"${{readFile:{AGENT_KEY_FILE}}}"}},
        }}]}]}},
        "unclassified": {"globalLibraries": {"libraries": [{
            "name": LIBRARY_NAME,
            "defaultVersion": library.version,
            "implicit": False,
            "allowVersionOverride": True,
            "includeInChangesets": False,
            "retriever": {"modernSCM": {"scm": {"git": {"remote": library.url}}}},
        }]}},
    }


def render_casc(cfg: "Config", host_keys: Mapping[str, str], *, library: LibrarySource | None = None,
                agent_host: Callable[["Config", str], str] = default_agent_host, **kwargs) -> str:
    doc = casc_document(cfg, host_keys, library=library, agent_host=agent_host, **kwargs)
    head = ("# Generated by jenkinsctl; do not edit: 'jenkinsctl apply' rewrites it.\n"
            f"# Secrets are read from files under {SECRETS_DIR}, never written here.\n")
    return head + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)


def casc_for(cfg: "Config", keystore: "KeyStore", **kwargs) -> str:
    """The CasC YAML for ``cfg`` with the host keys from ``keystore``
    (created on first use)."""
    from jenkinsctl.jenkins_api import credential_marker

    keys = {n: keystore.host_key(n).host_key_entry for g in cfg.agents for n in g.node_names()}
    # The same description apply's REST path writes, so a controller that
    # re-applies this file after a restart does not look changed to apply.
    kwargs.setdefault("credential_description",
                      credential_marker(AGENT_USER, keystore.client_key().private_key()))
    return render_casc(cfg, keys, **kwargs)


def render_plugins_txt() -> str:
    lines = ["# Generated from jenkinsctl/casc.py PLUGINS; a test keeps the two equal.",
             "# Installed with jenkins-plugin-cli, which picks each plugin's latest version",
             "# compatible with the image's Jenkins core; pin NAME:VERSION to freeze them."]
    for name, why in PLUGINS.items():
        # Comments on their own lines: every plugin-file parser skips those.
        lines += [f"# {why}", name]
    return "\n".join(lines) + "\n"


def plugins_txt_path() -> pathlib.Path:
    return resource_path("controller/plugins.txt")
