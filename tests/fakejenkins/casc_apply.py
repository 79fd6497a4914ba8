"""Apply a bound Configuration-as-Code document to the emulator.

Everything is built first and swapped in under the lock at the end, so a
document that fails anywhere changes nothing (a real controller's boot
failure leaves nothing half-applied either: it does not start).
"""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from . import model
from .casc import Bound, ConfiguratorError, bind
from .model import HttpError

if TYPE_CHECKING:
    from .server import FakeJenkins, User

# Permission names as globalMatrix takes them (PermissionDefinition: group/title).
_ROLE_OF = {frozenset({"Overall/Administer"}): "admin", frozenset({"Overall/Read"}): "read",
            frozenset({"Overall/Administer", "Overall/Read"}): "admin"}


def _fail(where: str, exc: HttpError) -> ConfiguratorError:
    # An exception out of a constructor or setter: "Failed to configure ..."
    return ConfiguratorError(f"{where}: {exc.message}")


def _users(emu: "FakeJenkins", realm: Bound) -> dict:
    from .server import User

    users = dict(emu.users)
    for u in realm.get("users", []):
        uid = u.get("id") or ""
        if not uid:
            raise ConfiguratorError("local: a user needs an id")
        password = u.get("password")
        old = users.get(uid)
        if password and password.strip():
            # HudsonPrivateSecurityRealm.createAccount(id, password)
            users[uid] = User(uid, password, tokens=old.tokens if old else (), role=old.role if old else "none",
                              full_name=u.get("name") or None)
        else:
            # HudsonPrivateSecurityRealmConfigurator.createAccount with a blank
            # password: User.getById(id, true), no password set.  A new user
            # then has no password at all: every password is refused.
            users[uid] = User(uid, old.password if old else None, tokens=old.tokens if old else (),
                              role=old.role if old else "none", full_name=u.get("name") or None)
    return users


def _matrix(users: dict, strategy: Bound) -> dict:
    from .server import User

    roles: dict[str, str] = {}
    for entry in strategy.get("entries", []):
        child = entry.get("user")
        if child is None:
            continue
        perms = frozenset(child.get("permissions", []))
        role = _ROLE_OF.get(perms)
        if role is None:
            raise ConfiguratorError(
                f"globalMatrix: the emulator models only Overall/Administer and Overall/Read, got "
                f"{', '.join(sorted(perms))} for {child.get('name')} (stricter than real; see README.md)",
                java_class="fakejenkins.NotModelled")
        roles[child.get("name")] = role
    out = {}
    for name, u in users.items():
        out[name] = User(u.name, u.password, tokens=u.tokens, role=roles.get(name, "none"), full_name=u.full_name)
    for name, role in roles.items():
        if name not in out:
            # A matrix entry for a user the realm does not have yet: no password.
            out[name] = User(name, None, role=role)
    return out


def _strategy(b: Bound | None) -> model.HostKeyStrategy | None:
    if b is None:
        return None
    cls = b.obj.target
    if cls == model.MANUALLY_PROVIDED:
        algorithm, blob = model.parse_host_key(b.get("key", ""), "manuallyProvidedKeyVerificationStrategy.key")
        return model.HostKeyStrategy(cls, algorithm=algorithm, key=blob)
    if cls == model.MANUALLY_TRUSTED:
        return model.HostKeyStrategy(cls, require_initial_manual_trust=bool(b.get("requireInitialManualTrust")))
    return model.HostKeyStrategy(cls)


def _node(b: Bound, user_id: str | None) -> model.NodeConfig:
    name = b.get("name") or ""
    where = f"permanent {name!r}"
    try:
        model.check_good_name(name)
        launcher = b.get("launcher")
        if launcher is None:
            raise model.failure("launcher is required")
        la = launcher
        host = (la.get("host") or "").strip()
        if not host:
            raise model.failure("launcher.host is required: the SSH launcher needs the agent's host name")
        if not la.get("credentialsId"):
            raise model.failure("launcher.credentialsId is required")
        port = la.get("port", 22)
        num = b.get("numExecutors", 1)
        if num <= 0:
            raise model.failure(f"Invalid agent configuration for {name}. Invalid # of executors.")
        remote_fs = b.get("remoteFS") or ""
        if not remote_fs.strip():
            raise model.failure("remoteFS is required: the agent's remote root directory")
        cfg = model.NodeConfig(
            name=name, remote_fs=remote_fs, description=b.get("nodeDescription"), num_executors=num,
            mode=b.get("mode", "NORMAL"), label=" ".join((b.get("labelString") or "").split()), user_id=user_id,
            launcher=model.Launcher(
                model.SSH_LAUNCHER, host=host, port=port or 22, credentials_id=la.get("credentialsId"),
                java_path=la.get("javaPath") or None, jvm_options=la.get("jvmOptions") or None,
                prefix_start_slave_cmd=la.get("prefixStartSlaveCmd") or None,
                suffix_start_slave_cmd=la.get("suffixStartSlaveCmd") or None,
                launch_timeout_seconds=la.get("launchTimeoutSeconds", model.DEFAULT_LAUNCH_TIMEOUT),
                max_num_retries=la.get("maxNumRetries", model.DEFAULT_MAX_RETRIES),
                retry_wait_time=la.get("retryWaitTime", model.DEFAULT_RETRY_WAIT),
                strategy=_strategy(la.get("sshHostKeyVerificationStrategy")),
                tcp_no_delay=la.get("tcpNoDelay", True), work_dir=la.get("workDir") or None))
    except HttpError as exc:
        raise _fail(where, exc) from None
    return cfg


def _credentials(root: Bound) -> dict:
    creds: dict[str, model.Credential] = {}
    system = root.get("system")
    if system is None:
        return creds
    for dc in system.get("domainCredentials", []):
        for c in dc.get("credentials", []):
            cid = c.get("id") or str(uuid.uuid4())
            common = dict(id=cid, username=c.get("username") or "", scope=c.get("scope", "GLOBAL"),
                          description=c.get("description") or "", username_secret=bool(c.get("usernameSecret")))
            if c.obj.target == model.SSH_PRIVATE_KEY:
                src = c.get("privateKeySource")
                key = src.get("privateKey") if src is not None else ""
                creds[cid] = model.Credential(model.SSH_PRIVATE_KEY, private_key=key or "",
                                              passphrase=c.get("passphrase") or None, **common)
            else:
                creds[cid] = model.Credential(model.USERNAME_PASSWORD, password=c.get("password") or "", **common)
    return creds


def _libraries(root: Bound) -> list:
    out = []
    gl = root.get("globalLibraries")
    for lib in (gl.get("libraries", []) if gl is not None else []):
        retriever = lib.get("retriever")
        scm = retriever.get("scm") if retriever is not None else None
        out.append({"name": lib.get("name"), "defaultVersion": lib.get("defaultVersion"),
                    "implicit": lib.get("implicit", False), "allowVersionOverride": lib.get("allowVersionOverride", True),
                    "includeInChangesets": lib.get("includeInChangesets", True),
                    "retriever": retriever.symbol if retriever is not None else None,
                    "remote": scm.get("remote") if scm is not None else None})
    return out


def configure(emu: "FakeJenkins") -> None:
    def warn(text: str) -> None:
        emu.log("WARNING", "i.j.p.casc.SecretSourceResolver#lookup", text)

    doc = bind(emu.casc, {**emu.environ}, warn)
    jenkins = doc.get("jenkins")
    users = dict(emu.users)
    crumbs, nodes, settings = emu.crumbs, None, {}
    if jenkins is not None:
        realm = jenkins.get("securityRealm")
        if realm is not None:
            users = _users(emu, realm)
        strategy = jenkins.get("authorizationStrategy")
        if strategy is not None:
            users = _matrix(users, strategy)
        if jenkins.get("crumbIssuer") is not None:
            crumbs = True
        formatter = jenkins.get("markupFormatter")
        if formatter is not None:
            # The Global Variables Reference renders vars/*.txt through it.
            settings["markupFormatter"] = formatter.symbol
        for key in ("numExecutors", "mode", "systemMessage", "slaveAgentPort"):
            if key in jenkins.values:
                settings[key] = jenkins.get(key)
        if settings.get("numExecutors", 0) < 0:
            raise ConfiguratorError("jenkins: Failed to set attribute 'numExecutors': "
                                    "java.lang.IllegalArgumentException: Incorrect field \"# of executors\" passed: "
                                    f"{settings['numExecutors']}; It should be > 0")
        if "nodes" in jenkins.values:
            nodes = [_node(b, None) for b in jenkins.get("nodes")]
            seen = set()
            for n in nodes:
                if n.name in seen:
                    raise ConfiguratorError(f"jenkins: Failed to set attribute 'nodes': two nodes are named {n.name}")
                seen.add(n.name)
    creds = _credentials(doc["credentials"]) if "credentials" in doc else None
    libraries = _libraries(doc["unclassified"]) if "unclassified" in doc else None

    with emu.lock:
        emu.users = users
        emu.crumbs = crumbs
        emu.num_executors = settings.get("numExecutors", emu.num_executors)
        emu.markup_formatter = settings.get("markupFormatter", emu.markup_formatter)
        emu.mode = settings.get("mode", emu.mode)
        emu.system_message = settings.get("systemMessage", emu.system_message)
        emu.slave_agent_port = settings.get("slaveAgentPort", emu.slave_agent_port)
        if creds is not None:
            # SystemCredentialsProviderConfigurator: setDomainCredentialsMap replaces the store.
            emu.credentials = creds
        if libraries is not None:
            emu.libraries = libraries
        if nodes is not None:
            _replace_nodes(emu, nodes)
        emu.changed.notify_all()


def _replace_nodes(emu: "FakeJenkins", nodes: list) -> None:
    """JenkinsConfigurator's ``nodes`` setter: Jenkins.setNodes(configured),
    so a node not in the YAML is gone.  Jenkins.updateComputerList keeps the
    Computer of a node that stays (a connected agent stays connected, with
    its old connection); RetentionStrategy.Always launches the rest."""
    from .server import Computer

    wanted = {n.name for n in nodes}
    for name in [n for n in emu.computers if n not in wanted]:
        c = emu.computers.pop(name)
        c.generation += 1
    for cfg in nodes:
        c = emu.computers.get(cfg.name)
        if c is None:
            emu.computers[cfg.name] = Computer(cfg)
            emu._launch(cfg.name)
            continue
        c.config = cfg
        if not c.connected and not c.launching:
            emu._launch(cfg.name)
