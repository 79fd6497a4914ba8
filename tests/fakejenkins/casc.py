"""Configuration-as-Code as the pinned configuration-as-code plugin applies it.

What is modelled (each from the sources cited in README.md):

* ``CASC_JENKINS_CONFIG``: a file, or a directory searched recursively for
  ``*.yml``/``*.yaml`` (hidden paths skipped, sorted), or a comma-separated
  list of those (``ConfigurationAsCode.configs``); a missing path fails boot.
* ``${...}`` in every scalar, resolved like ``SecretSourceResolver``:
  ``readFile:``/``file:``, ``base64:``, ``readFileBase64:``/``fileBase64:``,
  ``decodeBase64:``, ``trim:``, ``sysProp:`` then the secret sources
  (environment, then ``/run/secrets/NAME`` or ``$SECRETS/NAME``),
  ``${x:-default}``, ``^${`` as an escape.  A file that cannot be read logs
  the plugin's two warnings and becomes the empty string;
  ``CASC_STRICT_SECRET_RESOLUTION=true`` makes that a failure instead.
* Each configurator's attributes, in ``CONFIGURATORS`` below, derived from
  the classes' ``@DataBoundConstructor``/``@DataBoundSetter``s and the
  plugin's own configurators.  An attribute or symbol not in the table fails
  with the plugin's ``UnknownAttributesException`` text.  Attributes that
  the real class has but the emulator does not model fail too, with a
  message that says so (stricter than real, listed in README.md).
"""
from __future__ import annotations

import base64
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

CASC = "io.jenkins.plugins.casc."


class ConfiguratorError(Exception):
    """``io.jenkins.plugins.casc.ConfiguratorException`` and its subclasses.

    ``str()`` is ``getMessage()``; ``error_message``, ``target``,
    ``invalid`` and ``valid`` are what ``error.jelly`` shows."""

    def __init__(self, message: str, *, java_class: str = CASC + "ConfiguratorException",
                 configurator: Optional[str] = None, error_message: Optional[str] = None,
                 invalid: Optional[str] = None, valid: tuple = ()):
        self.java_class = java_class
        self.configurator = configurator
        self.base_message = message
        self.error_message = error_message if error_message is not None else message
        self.invalid = invalid
        self.valid = tuple(valid)
        super().__init__(f"{configurator}: {message}" if configurator else message)

    @property
    def java_text(self) -> str:
        return f"{self.java_class}: {self}"


def _unknown(configurator: str, target: str, invalid: list, valid: list) -> ConfiguratorError:
    """``BaseConfigurator.handleUnknown`` (unknown attributes)."""
    base = "Invalid configuration elements for type: "
    joined = ",".join(invalid)
    message = f"{base}class {target} : {joined}.\nAvailable attributes : {', '.join(valid)}"
    return ConfiguratorError(message, java_class=CASC + "UnknownAttributesException", configurator=configurator,
                             error_message=base, invalid=joined, valid=valid)


# --- the schema ---------------------------------------------------------------------------


class NotModelled:
    """An attribute or implementation the real plugin has and the emulator
    does not apply: using it fails boot (stricter than real)."""


NM = NotModelled()


@dataclass
class Scalar:
    kind: str  # str | int | bool | secret
    values: tuple = ()  # enums


@dataclass
class Seq:
    of: Any


@dataclass
class Obj:
    target: str  # the Java class
    attrs: dict
    names: tuple = ()  # symbols; names[0] is the configurator's name

    @property
    def name(self) -> str:
        return self.names[0] if self.names else self.target.rsplit(".", 1)[-1].rsplit("$", 1)[-1][0].lower() + \
            self.target.rsplit(".", 1)[-1].rsplit("$", 1)[-1][1:]


@dataclass
class Hetero:
    base: str  # the Describable base class
    impls: dict  # symbol -> Obj | NM

    @property
    def name(self) -> str:
        simple = self.base.rsplit(".", 1)[-1]
        return simple[0].lower() + simple[1:]


S, I, B = Scalar("str"), Scalar("int"), Scalar("bool")
SECRET = Scalar("secret")

# jenkinsci/jenkins 2.555.3 core/src/main/java/hudson/security/csrf/DefaultCrumbIssuer.java:
# the @DataBoundConstructor takes nothing since 2.543 (excludeClientIPFromCrumb is gone).
DEFAULT_CRUMB_ISSUER = Obj("hudson.security.csrf.DefaultCrumbIssuer", {}, ("standard",))
CRUMB_ISSUER = Hetero("hudson.security.csrf.CrumbIssuer", {"standard": DEFAULT_CRUMB_ISSUER})

# matrix-auth 3.2.8 integrations/casc/{MatrixAuthorizationStrategyConfigurator,DefinitionEntry}.java
_MA = "org.jenkinsci.plugins.matrixauth.integrations.casc."
CHILD = Obj(_MA + "DefinitionEntry$Child", {"name": S, "permissions": Seq(S)})
DEFINITION_ENTRY = Obj(_MA + "DefinitionEntry", {"user": CHILD, "group": NM, "userOrGroup": NM})
GLOBAL_MATRIX = Obj("hudson.security.GlobalMatrixAuthorizationStrategy",
                    {"entries": Seq(DEFINITION_ENTRY), "permissions": NM, "grantedPermissions": NM},
                    ("globalMatrix",))
AUTHORIZATION = Hetero("hudson.security.AuthorizationStrategy", {
    "globalMatrix": GLOBAL_MATRIX, "projectMatrix": NM, "unsecured": NM, "loggedInUsersCanDoAnything": NM})

# configuration-as-code core/HudsonPrivateSecurityRealmConfigurator.java (UserWithPassword);
# jenkins 2.555.3 HudsonPrivateSecurityRealm(boolean allowsSignup, boolean enableCaptcha, CaptchaSupport)
USER = Obj(CASC + "core.HudsonPrivateSecurityRealmConfigurator$UserWithPassword",
           {"id": S, "password": SECRET, "name": S, "description": S, "properties": NM})
LOCAL_REALM = Obj("hudson.security.HudsonPrivateSecurityRealm",
                  {"allowsSignup": B, "enableCaptcha": B, "captchaSupport": NM, "users": Seq(USER)}, ("local",))
SECURITY_REALM = Hetero("hudson.security.SecurityRealm", {"local": LOCAL_REALM, "none": NM, "legacy": NM})

# ssh-slaves 3.1097.v868116049892 verifiers/*.java: no @Symbol, so the decapitalized class name.
_V = "hudson.plugins.sshslaves.verifiers."
MANUALLY_PROVIDED = Obj(_V + "ManuallyProvidedKeyVerificationStrategy", {"key": S},
                        ("manuallyProvidedKeyVerificationStrategy",))
STRATEGY = Hetero(_V + "SshHostKeyVerificationStrategy", {
    "manuallyProvidedKeyVerificationStrategy": MANUALLY_PROVIDED,
    "nonVerifyingKeyVerificationStrategy": Obj(_V + "NonVerifyingKeyVerificationStrategy", {},
                                               ("nonVerifyingKeyVerificationStrategy",)),
    "knownHostsFileKeyVerificationStrategy": Obj(_V + "KnownHostsFileKeyVerificationStrategy", {},
                                                 ("knownHostsFileKeyVerificationStrategy",)),
    "manuallyTrustedKeyVerificationStrategy": Obj(_V + "ManuallyTrustedKeyVerificationStrategy",
                                                  {"requireInitialManualTrust": B},
                                                  ("manuallyTrustedKeyVerificationStrategy",)),
})
# ssh-slaves SSHLauncher.java: @DataBoundConstructor(host, port, credentialsId) + @DataBoundSetters
SSH_LAUNCHER = Obj("hudson.plugins.sshslaves.SSHLauncher", {
    "host": S, "port": I, "credentialsId": S, "javaPath": S, "jvmOptions": S, "prefixStartSlaveCmd": S,
    "suffixStartSlaveCmd": S, "launchTimeoutSeconds": I, "maxNumRetries": I, "retryWaitTime": I,
    "sshHostKeyVerificationStrategy": STRATEGY, "tcpNoDelay": B, "workDir": S}, ("ssh", "sSHLauncher"))
LAUNCHER = Hetero("hudson.slaves.ComputerLauncher", {"ssh": SSH_LAUNCHER, "sSHLauncher": SSH_LAUNCHER,
                                                     "inbound": NM, "jnlp": NM, "command": NM})
RETENTION = Hetero("hudson.slaves.RetentionStrategy", {
    "always": Obj("hudson.slaves.RetentionStrategy$Always", {}, ("always",)), "demand": NM, "schedule": NM})
# jenkins 2.555.3 DumbSlave(name, remoteFS, launcher) + Slave's setters; @Symbol permanent, dumb, slave
DUMB_SLAVE = Obj("hudson.slaves.DumbSlave", {
    "name": S, "remoteFS": S, "launcher": LAUNCHER, "nodeDescription": S, "numExecutors": I,
    "mode": Scalar("enum", ("NORMAL", "EXCLUSIVE")), "labelString": S, "retentionStrategy": RETENTION,
    "nodeProperties": NM}, ("permanent", "dumb", "slave"))
NODE = Hetero("hudson.model.Node", {"permanent": DUMB_SLAVE, "dumb": DUMB_SLAVE, "slave": DUMB_SLAVE})

# antisamy-markup-formatter 173.v680e3a_b_69ff3 hudson/markup/RawHtmlMarkupFormatter.java:
# @DataBoundConstructor(boolean disableSyntaxHighlighting), no @Symbol; configuration-as-code's
# DescribableAttribute.getSymbols adds the simple name decapitalized and, with the base
# type's simple name cut off, "rawHtml" (the plugin's JCasCCompatibilityTest uses it).
RAW_HTML = Obj("hudson.markup.RawHtmlMarkupFormatter", {"disableSyntaxHighlighting": B},
               ("rawHtml", "rawHtmlMarkupFormatter"))
MARKUP_FORMATTER = Hetero("hudson.markup.MarkupFormatter", {
    "rawHtml": RAW_HTML, "rawHtmlMarkupFormatter": RAW_HTML, "plainText": NM, "escaped": NM})

# jenkins 2.555.3 Jenkins.java (+ AbstractCIBase, Node): public setX with a getX/isX, the
# public PersistedList fields/getters, plus the attributes JenkinsConfigurator adds
# (remotingSecurity, updateCenter, labelAtoms, proxy, nodeMonitors), minus installState.
JENKINS = Obj("jenkins.model.Jenkins", {
    "agentProtocols": NM, "authorizationStrategy": AUTHORIZATION, "clouds": NM, "crumbIssuer": CRUMB_ISSUER,
    "disableRememberMe": NM, "disabledAdministrativeMonitors": NM, "globalNodeProperties": NM, "jDKs": NM,
    "labelAtoms": NM, "labelString": S, "log": NM, "markupFormatter": MARKUP_FORMATTER, "mode": Scalar("enum", ("NORMAL", "EXCLUSIVE")),
    "myViewsTabBar": NM, "noUsageStatistics": NM, "nodeMonitors": NM, "nodeName": NM, "nodeProperties": NM,
    "nodes": Seq(NODE), "numExecutors": I, "primaryView": NM, "projectNamingStrategy": NM, "proxy": NM,
    "quietPeriod": NM, "rawBuildsDir": NM, "remotingSecurity": NM, "scmCheckoutRetryCount": NM,
    "securityRealm": SECURITY_REALM, "slaveAgentPort": I, "systemMessage": S, "temporaryOfflineCause": NM,
    "updateCenter": NM, "views": NM, "viewsTabBar": NM}, ("jenkins",))

# ssh-credentials 361.vb_f6760818e8c BasicSSHUserPrivateKey(scope, id, username, privateKeySource,
# passphrase, description) + setUsernameSecret; DirectEntryPrivateKeySource(Secret privateKey)
_SC = "com.cloudbees.jenkins.plugins.sshcredentials.impl.BasicSSHUserPrivateKey"
SCOPE = Scalar("enum", ("GLOBAL", "SYSTEM", "USER"))
DIRECT_ENTRY = Obj(_SC + "$DirectEntryPrivateKeySource", {"privateKey": SECRET}, ("directEntry",))
KEY_SOURCE = Hetero(_SC + "$PrivateKeySource", {"directEntry": DIRECT_ENTRY})
BASIC_SSH = Obj(_SC, {"scope": SCOPE, "id": S, "username": S, "privateKeySource": KEY_SOURCE, "passphrase": SECRET,
                      "description": S, "usernameSecret": B}, ("basicSSHUserPrivateKey",))
# credentials 1502.v5c95e620ddfe UsernamePasswordCredentialsImpl(scope, id, description, username, password)
USERNAME_PASSWORD = Obj("com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl", {
    "scope": SCOPE, "id": S, "description": S, "username": S, "password": SECRET, "usernameSecret": B},
    ("usernamePassword",))
CREDENTIAL = Hetero("com.cloudbees.plugins.credentials.Credentials", {
    "basicSSHUserPrivateKey": BASIC_SSH, "usernamePassword": USERNAME_PASSWORD, "string": NM, "file": NM,
    "certificate": NM})
DOMAIN_CREDENTIALS = Obj("com.cloudbees.plugins.credentials.domains.DomainCredentials",
                         {"domain": NM, "credentials": Seq(CREDENTIAL)})
SYSTEM_PROVIDER = Obj("com.cloudbees.plugins.credentials.SystemCredentialsProvider",
                      {"domainCredentials": Seq(DOMAIN_CREDENTIALS)}, ("system",))
CREDENTIALS_ROOT = Obj("com.cloudbees.plugins.credentials.GlobalCredentialsConfiguration",
                       {"system": SYSTEM_PROVIDER}, ("credentials",))

# pipeline-groovy-lib 798.v5cc688825312 LibraryConfiguration(name, retriever) + setters,
# SCMSourceRetriever(scm) @Symbol modernSCM; git 5.10.1 GitSCMSource(remote) + setters, @Symbol gitSource, git
GIT_SOURCE = Obj("jenkins.plugins.git.GitSCMSource", {"remote": S, "credentialsId": S, "id": S, "traits": NM,
                                                      "browser": NM, "gitTool": S, "extensions": NM},
                 ("gitSource", "git"))
SCM_SOURCE = Hetero("jenkins.scm.api.SCMSource", {"git": GIT_SOURCE, "gitSource": GIT_SOURCE})
RETRIEVER = Hetero("org.jenkinsci.plugins.workflow.libs.LibraryRetriever", {
    "modernSCM": Obj("org.jenkinsci.plugins.workflow.libs.SCMSourceRetriever", {"scm": SCM_SOURCE}, ("modernSCM",)),
    "legacySCM": NM})
LIBRARY = Obj("org.jenkinsci.plugins.workflow.libs.LibraryConfiguration", {
    "name": S, "retriever": RETRIEVER, "defaultVersion": S, "implicit": B, "allowVersionOverride": B,
    "includeInChangesets": B, "cachingConfiguration": NM})
GLOBAL_LIBRARIES = Obj("org.jenkinsci.plugins.workflow.libs.GlobalLibraries", {"libraries": Seq(LIBRARY)},
                       ("globalLibraries",))
UNCLASSIFIED = Obj("jenkins.model.GlobalConfigurationCategory$Unclassified",
                   {"globalLibraries": GLOBAL_LIBRARIES, "location": NM, "mailer": NM, "gitSCM": NM},
                   ("unclassified",))

ROOTS = {"jenkins": JENKINS, "credentials": CREDENTIALS_ROOT, "unclassified": UNCLASSIFIED,
         "security": NM, "tool": NM, "appearance": NM}
CONFIGURATORS = [JENKINS, CREDENTIALS_ROOT, UNCLASSIFIED]  # for the README's table


# --- reading the sources ------------------------------------------------------------------


def config_files(parameter: str) -> list[Path]:
    """``ConfigurationAsCode.inputToCandidateSources`` + ``configs(path)``."""
    out: list[Path] = []
    for part in [p.strip() for p in parameter.split(",") if p.strip()]:
        root = Path(part)
        if not root.exists():
            raise ConfiguratorError(f"Invalid configuration: '{part}' isn't a valid path.")
        if root.is_file() and os.access(root, os.R_OK):
            out.append(root)
            continue
        found = []
        for p in root.rglob("*"):
            rel = p.relative_to(root)
            if p.is_dir() or any(s.startswith(".") for s in rel.parts):
                continue
            if p.suffix in (".yml", ".yaml", ".YAML", ".YML"):
                found.append(p)
        out.extend(sorted(found))
    return out


class _Loader(yaml.SafeLoader):
    pass


def load(files: list[Path]) -> dict:
    """Parse and merge the files; a key defined twice fails (the default
    ``errorOnConflict`` merge strategy)."""
    merged: dict = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfiguratorError(f"Failed to read {path}: {exc}") from None
        try:
            doc = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            raise ConfiguratorError(f"Failed to parse {path}: {exc}") from None
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ConfiguratorError(f"{path}: a configuration-as-code file must be a mapping")
        _merge(merged, doc, str(path))
    return merged


def _merge(into: dict, doc: dict, source: str) -> None:
    for k, v in doc.items():
        if k not in into:
            into[k] = v
        elif isinstance(into[k], dict) and isinstance(v, dict):
            _merge(into[k], v, source)
        elif isinstance(into[k], list) and isinstance(v, list):
            into[k] = into[k] + v
        else:
            raise ConfiguratorError(f"Found conflicting configuration at {source} (key {k!r})")


# --- ${...} ------------------------------------------------------------------------------


class Resolver:
    """``SecretSourceResolver``: ``warn(text)`` receives the plugin's warnings."""

    def __init__(self, environ: dict, warn: Callable[[str], None]):
        self.env = environ
        self.warn = warn
        self.strict = str(environ.get("CASC_STRICT_SECRET_RESOLUTION", "")).lower() == "true"

    def _read(self, key: str, as_b64: bool) -> Optional[str]:
        try:
            data = Path(key).read_bytes()
        except (OSError, ValueError) as exc:
            what = "with UTF-8 encoding" if not as_b64 else "for Base64 encoding"
            kind = "java.nio.file.AccessDeniedException" if isinstance(exc, PermissionError) else \
                "java.nio.file.NoSuchFileException"
            self.warn(f"Configuration import: Error looking up file '{key}' {what}. Will default to empty string\n"
                      f"{kind}: {key}")
            return None
        return base64.b64encode(data).decode() if as_b64 else data.decode("utf-8", "replace")

    def lookup(self, key: str) -> Optional[str]:
        prefix, sep, rest = key.partition(":")
        if sep:
            if prefix in ("readFile", "file"):
                return self._read(rest, False)
            if prefix in ("readFileBase64", "fileBase64"):
                return self._read(rest, True)
            if prefix == "base64":
                return base64.b64encode(rest.encode()).decode()
            if prefix == "decodeBase64":
                return base64.b64decode(rest).decode("utf-8", "replace")
            if prefix == "trim":
                return rest.strip()
            if prefix == "sysProp":
                self.warn(f"Configuration import: System Properties did not contain the specified key '{rest}'. "
                          "Will default to empty string.")
                return ""
        # The secret sources: EnvSecretSource, then DockerSecretSource.
        if key in self.env:
            return self.env[key]
        secret = Path(self.env.get("SECRETS") or "/run/secrets/") / key
        try:
            if secret.is_file():
                return secret.read_text()
        except OSError:
            pass
        return None

    def resolve(self, text: str) -> str:
        if not text or "${" not in text:
            return text
        out, i = [], 0
        while i < len(text):
            if text.startswith("^${", i):
                # An escaped variable stays literal, caret removed.
                end = _matching(text, i + 1)
                out.append(text[i + 1:end + 1] if end >= 0 else text[i + 1:])
                i = end + 1 if end >= 0 else len(text)
                continue
            if text.startswith("${", i):
                end = _matching(text, i)
                if end < 0:
                    out.append(text[i:])
                    break
                inner = self.resolve(text[i + 2:end])  # variables inside variable names
                name, dsep, default = inner.partition(":-")
                value = self.lookup(name if dsep else inner)
                if value is None:
                    if dsep:
                        value = default
                    elif self.strict:
                        raise ConfiguratorError(f"Unable to resolve variable '{inner}'. Aborting configuration reload.",
                                                java_class="java.lang.IllegalStateException")
                    else:
                        self.warn(f"Configuration import: Found unresolved variable '{inner}'. "
                                  "Will default to empty string")
                        value = ""
                out.append(value)
                i = end + 1
                continue
            out.append(text[i])
            i += 1
        return "".join(out)


def _matching(text: str, start: int) -> int:
    depth, i = 0, start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


# --- binding -------------------------------------------------------------------------------


@dataclass
class Bound:
    """A configured object: its configurator and its attributes' values."""

    obj: Obj
    symbol: str
    values: dict = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


class Binder:
    def __init__(self, resolver: Resolver):
        self.r = resolver

    def root(self, doc: dict) -> dict:
        unknown = [k for k in doc if k not in ROOTS]
        if unknown:
            names = ", ".join(unknown)
            raise ConfiguratorError(
                f"No configurator found for the following root {'elements' if len(unknown) > 1 else 'element'}: "
                f"{names}. This may indicate that the required plugin is not installed or failed to load. Verify "
                "that the plugin is installed and check the Jenkins startup logs for plugin loading errors.",
                java_class=CASC + "UnknownConfiguratorException", error_message=names)
        out = {}
        for k, v in doc.items():
            spec = ROOTS[k]
            if spec is NM:
                raise _not_modelled(k, "the root element")
            out[k] = self.obj(spec, v if v is not None else {}, k)
        return out

    def value(self, spec: Any, node: Any, where: str) -> Any:
        if isinstance(spec, Seq):
            items = node if isinstance(node, list) else [node]
            return [self.value(spec.of, x, f"{where}[{i}]") for i, x in enumerate(items)]
        if isinstance(spec, Obj):
            return self.obj(spec, node, where)
        if isinstance(spec, Hetero):
            return self.hetero(spec, node, where)
        return self.scalar(spec, node, where)

    def scalar(self, spec: Scalar, node: Any, where: str) -> Any:
        if isinstance(node, (dict, list)):
            raise ConfiguratorError(f"Item isn't a Scalar: {where}", java_class=CASC + "ConfiguratorException")
        text = "" if node is None else ("true" if node is True else "false" if node is False else str(node))
        text = self.r.resolve(text)
        if spec.kind in ("str", "secret"):
            return text
        if spec.kind == "int":
            if not re.fullmatch(r"[+-]?\d+", text.strip()):
                raise ConfiguratorError(f"{where}: java.lang.NumberFormatException: For input string: \"{text}\"")
            return int(text.strip())
        if spec.kind == "bool":
            # Stapler's boolean conversion: anything but "true" (any case) is false.
            return text.strip().lower() == "true"
        if spec.kind == "enum":
            if text not in spec.values:
                raise ConfiguratorError(f"{where}: No enum constant {text}; valid: {', '.join(spec.values)}")
            return text
        raise AssertionError(spec.kind)

    def obj(self, spec: Obj, node: Any, where: str, symbol: str = "") -> Bound:
        if node is None:
            node = {}
        if not isinstance(node, dict):
            raise ConfiguratorError(f"Item isn't a Mapping: {where}")
        unknown = [k for k in node if k not in spec.attrs]
        if unknown:
            raise _unknown(spec.name, spec.target, unknown, sorted(spec.attrs))
        b = Bound(spec, symbol or spec.name)
        for k, v in node.items():
            sub = spec.attrs[k]
            if sub is NM:
                raise _not_modelled(k, f"class {spec.target}")
            b.values[k] = self.value(sub, v, f"{where}.{k}")
        return b

    def hetero(self, spec: Hetero, node: Any, where: str) -> Bound:
        if isinstance(node, str):
            symbol, body = node, {}
        elif isinstance(node, dict) and len(node) == 1:
            symbol, body = next(iter(node.items()))
        elif isinstance(node, dict):
            raise ConfiguratorError(f"Single entry map expected to configure a {spec.base} but found multiple "
                                    f"entries: [{', '.join(node)}]", java_class="java.lang.IllegalArgumentException")
        else:
            raise ConfiguratorError(f"Unexpected configuration type {node!r}",
                                    java_class="java.lang.IllegalArgumentException")
        impl = spec.impls.get(symbol)
        if impl is None:
            valid = sorted(spec.impls)
            return _raise(ConfiguratorError(f"No {spec.base} implementation found for {symbol}",
                                            java_class=CASC + "UnknownAttributesException", configurator=spec.name,
                                            error_message="No implementation found for:", invalid=symbol, valid=valid))
        if impl is NM:
            raise _not_modelled(symbol, f"the implementations of {spec.base}")
        return self.obj(impl, body, f"{where}.{symbol}", symbol)


def _raise(exc: Exception):
    raise exc


def _not_modelled(name: str, where: str) -> ConfiguratorError:
    return ConfiguratorError(f"'{name}' is valid in {where}, but the emulator does not model it "
                             "(it would be applied by a real controller); see tests/fakejenkins/README.md",
                             java_class="fakejenkins.NotModelled", invalid=name)


def bind(parameter: str, environ: dict, warn: Callable[[str], None]) -> dict:
    """Read, resolve and check the configuration; nothing is applied yet."""
    return Binder(Resolver(environ, warn)).root(load(config_files(parameter)))


def log_line(level: str, where: str, message: str) -> str:
    """A line as Jenkins' console log formats it."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()) + ".000+0000"
    return f"{stamp} [id=1]\t{level}\t{where}: {message}"
