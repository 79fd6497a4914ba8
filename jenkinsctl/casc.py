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

import dataclasses
import os
import pathlib
import re
import subprocess
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

from jenkinsctl import __version__
from jenkinsctl.agent_image import AGENT_USER, node_remote_fs
from jenkinsctl.controller_image import pinned_versions
from jenkinsctl.errors import ConfigError
from jenkinsctl.jenkins_api import credential_marker
from jenkinsctl.names import AGENT_CREDENTIAL_ID, agent_container_name, casc_node_description
from jenkinsctl.resources import resource_path

if TYPE_CHECKING:
    from jenkinsctl.config import Config
    from jenkinsctl.keys import KeyStore

# Paths inside the controller container; the provisioner provides the files.
SECRETS_DIR = "/run/secrets"
ADMIN_PASSWORD_FILE = f"{SECRETS_DIR}/jenkins-admin-password"
AGENT_KEY_FILE = f"{SECRETS_DIR}/jenkins-agent-key"
CASC_FILE = "/run/jenkinsctl/casc/jenkins.yaml"  # CASC_JENKINS_CONFIG in the Dockerfile

LIBRARY_NAME = "jenkinsctl"


def _pins():
    return pinned_versions()


# Plugin -> what needs it, in plugins.txt order.  The names and versions
# live in resources/controller/versions.json; plugins.txt is generated from
# it and pinned by a test, so the generated YAML never uses a plugin the
# image lacks.
PLUGINS: dict[str, str] = _pins().purposes

SSH_LAUNCH_TIMEOUT = 60
SSH_MAX_RETRIES = 10
SSH_RETRY_WAIT = 15

# Every key the generated YAML sets, by the object that owns it, with the
# source that defines it at the versions pinned in versions.json.  A test
# walks the generated document and fails on a key missing here, so a new key
# comes with its citation.  Symbols without @Symbol are the class name as
# JCasC derives it (configuration-as-code-plugin
# plugin/src/main/java/io/jenkins/plugins/casc/impl/attributes/DescribableAttribute.java:
# SomeFooExtensionPoint -> "someFoo", else the simple class name).
CORE = "jenkinsci/jenkins jenkins-2.568.2"
CASC_KEY_SOURCES: dict[str, tuple[tuple[str, ...], str]] = {
    "": (("jenkins", "credentials", "unclassified"), "configuration-as-code 2117: root configurators"),
    "jenkins": (("systemMessage", "numExecutors", "mode", "slaveAgentPort", "markupFormatter", "securityRealm",
                 "authorizationStrategy", "crumbIssuer", "nodes"),
                f"{CORE} core/src/main/java/jenkins/model/Jenkins.java: setSystemMessage, setNumExecutors, setMode, "
                "setSlaveAgentPort, setMarkupFormatter, setSecurityRealm, setAuthorizationStrategy, setCrumbIssuer, "
                "setNodes"),
    "jenkins.markupFormatter": (("rawHtml",), "antisamy-markup-formatter 173.v680e3a_b_69ff3 "
                                "src/main/java/hudson/markup/RawHtmlMarkupFormatter.java (RawHtml+MarkupFormatter); "
                                "src/test/resources/hudson/markup/configuration-as-code.yaml"),
    "jenkins.markupFormatter.rawHtml": (("disableSyntaxHighlighting",),
                                        "RawHtmlMarkupFormatter @DataBoundConstructor(boolean disableSyntaxHighlighting)"),
    "jenkins.securityRealm": (("local",), f"{CORE} core/src/main/java/hudson/security/HudsonPrivateSecurityRealm.java "
                              "@Symbol(\"local\")"),
    "jenkins.securityRealm.local": (("allowsSignup", "users"),
                                    "HudsonPrivateSecurityRealm @DataBoundConstructor(allowsSignup, ...); users: "
                                    "configuration-as-code 2117 plugin/src/main/java/io/jenkins/plugins/casc/core/"
                                    "HudsonPrivateSecurityRealmConfigurator.java"),
    "jenkins.securityRealm.local.users[]": (("id", "password"), "HudsonPrivateSecurityRealmConfigurator.UserWithPassword(id, password)"),
    "jenkins.authorizationStrategy": (("globalMatrix",), "matrix-auth 3.2.8 src/main/java/hudson/security/"
                                      "GlobalMatrixAuthorizationStrategy.java (GlobalMatrix+AuthorizationStrategy)"),
    "jenkins.authorizationStrategy.globalMatrix": (("entries",), "matrix-auth 3.2.8 src/main/java/org/jenkinsci/plugins/"
                                                   "matrixauth/integrations/casc/MatrixAuthorizationStrategyConfigurator.java "
                                                   "(\"entries\"; \"permissions\" is the refused 2.x form)"),
    "jenkins.authorizationStrategy.globalMatrix.entries[]": (("user",), "matrix-auth 3.2.8 .../casc/DefinitionEntry.java "
                                                             "(user | group | userOrGroup)"),
    "jenkins.authorizationStrategy.globalMatrix.entries[].user": (("name", "permissions"),
                                                                  "DefinitionEntry.Child(name, permissions)"),
    "jenkins.crumbIssuer": (("standard",), f"{CORE} core/src/main/java/hudson/security/csrf/DefaultCrumbIssuer.java "
                            "@Symbol(\"standard\"), a no-argument @DataBoundConstructor: excludeClientIPFromCrumb is "
                            "gone since 2.543 (jenkinsci/jenkins#25918)"),
    "jenkins.nodes[]": (("permanent",), f"{CORE} core/src/main/java/hudson/slaves/DumbSlave.java @Symbol(\"permanent\")"),
    "jenkins.nodes[].permanent": (("name", "nodeDescription", "remoteFS", "labelString", "numExecutors", "mode",
                                   "retentionStrategy", "launcher"),
                                  "DumbSlave(name, remoteFS, launcher); core/src/main/java/hudson/model/Slave.java "
                                  "@DataBoundSetter setNodeDescription, setNumExecutors, setMode, setLabelString, "
                                  "setRetentionStrategy"),
    "jenkins.nodes[].permanent.retentionStrategy": (("always",), f"{CORE} core/src/main/java/hudson/slaves/"
                                                    "RetentionStrategy.java Always @Symbol(\"always\")"),
    "jenkins.nodes[].permanent.launcher": (("ssh",), "ssh-slaves 3.1097.v868116049892 src/main/java/hudson/plugins/"
                                           "sshslaves/SSHLauncher.java @Symbol({\"ssh\", \"sSHLauncher\"})"),
    "jenkins.nodes[].permanent.launcher.ssh": (("host", "port", "credentialsId", "launchTimeoutSeconds", "maxNumRetries",
                                                "retryWaitTime", "sshHostKeyVerificationStrategy"),
                                               "SSHLauncher @DataBoundConstructor(host, port, credentialsId); "
                                               "@DataBoundSetter setLaunchTimeoutSeconds, setMaxNumRetries, "
                                               "setRetryWaitTime, setSshHostKeyVerificationStrategy"),
    "jenkins.nodes[].permanent.launcher.ssh.sshHostKeyVerificationStrategy": (
        ("manuallyProvidedKeyVerificationStrategy",),
        "ssh-slaves 3.1097.v868116049892 src/main/java/hudson/plugins/sshslaves/verifiers/"
        "ManuallyProvidedKeyVerificationStrategy.java (no @Symbol: the class name)"),
    "jenkins.nodes[].permanent.launcher.ssh.sshHostKeyVerificationStrategy.manuallyProvidedKeyVerificationStrategy": (
        ("key",), "ManuallyProvidedKeyVerificationStrategy @DataBoundConstructor(String key)"),
    "credentials": (("system",), "credentials 1502.v5c95e620ddfe src/main/java/com/cloudbees/plugins/credentials/casc/"
                    "CredentialsRootConfigurator.java"),
    "credentials.system": (("domainCredentials",), "credentials 1502.v5c95e620ddfe .../casc/"
                           "SystemCredentialsProviderConfigurator.java"),
    "credentials.system.domainCredentials[]": (("credentials",), "credentials 1502.v5c95e620ddfe "
                                               "src/main/java/com/cloudbees/plugins/credentials/domains/DomainCredentials.java"),
    "credentials.system.domainCredentials[].credentials[]": (
        ("basicSSHUserPrivateKey",), "ssh-credentials 361.vb_f6760818e8c src/test/resources/com/cloudbees/jenkins/"
        "plugins/sshcredentials/jcasc/configuration-as-code.yaml"),
    "credentials.system.domainCredentials[].credentials[].basicSSHUserPrivateKey": (
        ("scope", "id", "username", "description", "privateKeySource"),
        "ssh-credentials 361.vb_f6760818e8c src/main/java/com/cloudbees/jenkins/plugins/sshcredentials/impl/"
        "BasicSSHUserPrivateKey.java @DataBoundConstructor(scope, id, username, privateKeySource, passphrase, "
        "description)"),
    "credentials.system.domainCredentials[].credentials[].basicSSHUserPrivateKey.privateKeySource": (
        ("directEntry",), "BasicSSHUserPrivateKey.DirectEntryPrivateKeySource (DirectEntry+PrivateKeySource)"),
    "credentials.system.domainCredentials[].credentials[].basicSSHUserPrivateKey.privateKeySource.directEntry": (
        ("privateKey",), "DirectEntryPrivateKeySource @DataBoundConstructor(Secret privateKey)"),
    "unclassified": (("globalLibraries",), "pipeline-groovy-lib 798.v5cc688825312 src/main/java/org/jenkinsci/plugins/"
                     "workflow/libs/GlobalLibraries.java (a GlobalConfiguration: the class name)"),
    "unclassified.globalLibraries": (("libraries",), "pipeline-groovy-lib 798.v5cc688825312 .../libs/"
                                     "AbstractGlobalLibraries.java setLibraries"),
    "unclassified.globalLibraries.libraries[]": (
        ("name", "defaultVersion", "implicit", "allowVersionOverride", "includeInChangesets", "retriever"),
        "pipeline-groovy-lib 798.v5cc688825312 .../libs/LibraryConfiguration.java @DataBoundConstructor(name, "
        "retriever); @DataBoundSetter setDefaultVersion, setImplicit, setAllowVersionOverride, setIncludeInChangesets"),
    "unclassified.globalLibraries.libraries[].retriever": (("modernSCM",), "pipeline-groovy-lib 798.v5cc688825312 "
                                                          ".../libs/SCMSourceRetriever.java @Symbol(\"modernSCM\")"),
    "unclassified.globalLibraries.libraries[].retriever.modernSCM": (("scm",), "SCMSourceRetriever @DataBoundConstructor(SCMSource scm)"),
    "unclassified.globalLibraries.libraries[].retriever.modernSCM.scm": (
        ("git",), "git 5.10.1 src/main/java/jenkins/plugins/git/GitSCMSource.java @Symbol({\"gitSource\", \"git\"})"),
    "unclassified.globalLibraries.libraries[].retriever.modernSCM.scm.git": (
        ("remote", "credentialsId"), "GitSCMSource @DataBoundConstructor(String remote); @DataBoundSetter setCredentialsId"),
}


def release_tag(version: str | None = None) -> str:
    """The library's git tag for a jenkinsctl version: v0.1.0 for 0.1.0."""
    return f"v{version or __version__}"


@dataclass(frozen=True)
class LibrarySource:
    """Where the controller fetches this shared library from, and which
    version pipelines get.  The controller runs it *trusted* (outside the
    Groovy sandbox), so there is no default URL and no override by default."""

    url: str
    version: str = dataclasses.field(default_factory=release_tag)
    allow_version_override: bool = False
    credentials_id: str | None = None


def strip_credentials(url: str) -> str:
    """``url`` without a password or token: https://oauth2:TOKEN@host/x.git
    -> https://host/x.git.  An ssh:// user name is kept (it names the
    account, e.g. git@), its password is not; scp-like git@host:path has
    none.  The controller authenticates with controller.library.credentials_id."""
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0] if parts.scheme == "ssh" else ""
    netloc = f"{user}@{hostport}" if user else hostport
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def checkout_origin(checkout: pathlib.Path | None = None) -> str:
    """The ``origin`` remote of the checkout jenkinsctl runs from, or ""
    (an installed wheel has none)."""
    root = checkout or pathlib.Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return ""
    try:
        return subprocess.run(["git", "-C", str(root), "config", "--get", "remote.origin.url"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


_CLONABLE = re.compile(r"^(https://[^/\s@]+/\S+|ssh://\S+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:\S+)$")
_HINT = ("set controller.library.url in jenkinsctl.yaml (or JENKINSCTL_LIBRARY_URL) to the https:// or ssh:// git "
         "URL of your copy of this library, with a tag {tag}; add controller.library.credentials_id for a private "
         "repository.  There is no default: the controller runs the library trusted, outside the sandbox")


def library_source(cfg: "Config | None" = None, environ: Mapping[str, str] | None = None, *,
                   checkout: pathlib.Path | None = None) -> LibrarySource:
    """The library the CasC registers.  URL: JENKINSCTL_LIBRARY_URL, else
    controller.library.url, else the checkout's ``origin``; none of these is
    an error.  Version: JENKINSCTL_LIBRARY_VERSION, else
    controller.library.version, else the release tag of this jenkinsctl.
    Credentials in the URL are dropped before it reaches the CasC."""
    env = os.environ if environ is None else environ
    lib = ((cfg.document.get("controller") or {}).get("library") or {}) if cfg is not None else {}
    version = env.get("JENKINSCTL_LIBRARY_VERSION") or lib.get("version") or release_tag()
    candidates = (("JENKINSCTL_LIBRARY_URL", lambda: env.get("JENKINSCTL_LIBRARY_URL")),
                  ("controller.library.url", lambda: lib.get("url")),
                  ("the checkout's git origin", lambda: checkout_origin(checkout)))
    for where, read in candidates:
        url = (read() or "").strip()
        if not url:
            continue
        clean = strip_credentials(url)
        if not _CLONABLE.match(clean):
            raise ConfigError(f"the shared library URL from {where} ({clean}) is not an https:// or ssh:// git URL "
                              "the controller can clone safely", hint=_HINT.format(tag=version),
                              key="controller.library.url")
        return LibrarySource(clean, version, bool(lib.get("allow_version_override", False)),
                             lib.get("credentials_id") or None)
    raise ConfigError("no URL for the jenkinsctl shared library: controller.library.url is not set and this "
                      "jenkinsctl does not run from a git checkout with an origin", hint=_HINT.format(tag=version),
                      key="controller.library.url")


# The agent's address as the controller sees it: its container name on the
# project network.
default_agent_host = agent_container_name


def casc_document(cfg: "Config", host_keys: Mapping[str, str], *, library: LibrarySource | None = None,
                  agent_host: Callable[["Config", str], str] = default_agent_host,
                  credential_description: str = "jenkinsctl: the controller's SSH key for its agents") -> dict:
    """The CasC document.  ``host_keys`` maps node name -> "ALGORITHM BASE64"
    (KeyPair.host_key_entry); every configured node needs one."""
    library = library or library_source(cfg)
    nodes = []
    for group in cfg.agents:
        for node in group.node_names():
            nodes.append({"permanent": {
                "name": node,
                "nodeDescription": casc_node_description(group),
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
    git = {"remote": library.url}
    if library.credentials_id:
        git["credentialsId"] = library.credentials_id
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
            # The default crumb issuer, with no attribute: excludeClientIPFromCrumb
            # was removed in 2.543 and an unknown key stops JCasC from booting.
            "crumbIssuer": "standard",
            # Safe HTML (OWASP AntiSamy), so the vars/*.txt help pages render as
            # HTML instead of escaped tags; no syntax-highlighting script.
            "markupFormatter": {"rawHtml": {"disableSyntaxHighlighting": True}},
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
            # Trusted code in the controller's JVM: pipelines get the pinned
            # release unless the config allows @Library('jenkinsctl@other').
            "allowVersionOverride": library.allow_version_override,
            "includeInChangesets": False,
            "retriever": {"modernSCM": {"scm": {"git": git}}},
        }]}},
    }


def render_casc(cfg: "Config", host_keys: Mapping[str, str], *, library: LibrarySource | None = None,
                agent_host: Callable[["Config", str], str] = default_agent_host, **kwargs) -> str:
    import yaml

    doc = casc_document(cfg, host_keys, library=library, agent_host=agent_host, **kwargs)
    head = ("# Generated by jenkinsctl; do not edit: 'jenkinsctl apply' rewrites it.\n"
            f"# Secrets are read from files under {SECRETS_DIR}, never written here.\n")
    return head + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)


def casc_for(cfg: "Config", keystore: "KeyStore", **kwargs) -> str:
    """The CasC YAML for ``cfg`` with the host keys from ``keystore``
    (created on first use)."""
    keys = {n: keystore.host_key(n).host_key_entry for g in cfg.agents for n in g.node_names()}
    # The same description apply's REST path writes, so a controller that
    # re-applies this file after a restart does not look changed to apply.
    kwargs.setdefault("credential_description",
                      credential_marker(AGENT_USER, keystore.client_key().private_key()))
    return render_casc(cfg, keys, **kwargs)


def render_plugins_txt() -> str:
    pins = _pins()
    lines = ["# Generated from resources/controller/versions.json; a test keeps the two equal.",
             f"# Pinned for Jenkins {pins.core} (jenkins/jenkins:{pins.core}-jdk{pins.java}); bump both there.",
             "# jenkins-plugin-cli installs exactly these and the dependencies they need."]
    for name, version in pins.plugins.items():
        # Comments on their own lines: every plugin-file parser skips those.
        lines += [f"# {pins.purposes[name]}", f"{name}:{version}"]
    return "\n".join(lines) + "\n"


def render_dockerfile(text: str) -> str:
    """The controller Dockerfile ``text`` with its JENKINS_VERSION default
    set to the pinned core."""
    return re.sub(r"^ARG JENKINS_VERSION=.*$", f"ARG JENKINS_VERSION={_pins().core}", text, count=1, flags=re.M)


def dockerfile_path() -> pathlib.Path:
    return resource_path("controller/Dockerfile")


def plugins_txt_path() -> pathlib.Path:
    return resource_path("controller/plugins.txt")
