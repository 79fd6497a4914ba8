"""Nodes and credentials as a Jenkins controller stores them.

Three ways in and out, each as strict as the real controller (or stricter,
where being lax would hide a client bug; every such place says so):

* the ``json`` form field of ``computer/doCreateItem`` (Stapler form binding
  of ``DumbSlave`` / ``SSHLauncher`` / the host-key strategies);
* the DumbSlave ``config.xml`` (XStream), read and written;
* the credentials plugin's XML for ``UsernamePasswordCredentialsImpl`` and
  ``BasicSSHUserPrivateKey``.
"""
from __future__ import annotations

import base64
import binascii
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Optional


class HttpError(Exception):
    """An answer other than success.  ``x_error`` adds the ``X-Error`` header
    that Jenkins' ``Failure`` pages carry."""

    def __init__(self, status: int, message: str, *, x_error: bool = False, headers: Optional[dict] = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        if x_error:
            self.headers["X-Error"] = message


def failure(message: str) -> HttpError:
    """``hudson.model.Failure``: 400 with the message in ``X-Error``."""
    return HttpError(400, message, x_error=True)


def xstream_error(message: str) -> HttpError:
    """An exception out of XStream or a constructor: Jenkins' oops page, 500."""
    return HttpError(500, message)


# --- class names -------------------------------------------------------------

SSH_LAUNCHER = "hudson.plugins.sshslaves.SSHLauncher"
JNLP_LAUNCHER = "hudson.slaves.JNLPLauncher"
COMMAND_LAUNCHER = "hudson.slaves.CommandLauncher"
_V = "hudson.plugins.sshslaves.verifiers."
NON_VERIFYING = _V + "NonVerifyingKeyVerificationStrategy"
MANUALLY_PROVIDED = _V + "ManuallyProvidedKeyVerificationStrategy"
MANUALLY_TRUSTED = _V + "ManuallyTrustedKeyVerificationStrategy"
KNOWN_HOSTS_FILE = _V + "KnownHostsFileKeyVerificationStrategy"
STRATEGIES = (NON_VERIFYING, MANUALLY_PROVIDED, MANUALLY_TRUSTED, KNOWN_HOSTS_FILE)
RETENTION_ALWAYS = "hudson.slaves.RetentionStrategy$Always"
NODE_TYPES = ("hudson.slaves.DumbSlave$DescriptorImpl", "hudson.slaves.DumbSlave")

SSH_PLUGIN = "ssh-slaves@3.1031.v72c6b_883b_869"
CREDENTIALS_PLUGIN = "credentials@1389.vd7a_b_f5fa_50a_2"
SSH_CREDENTIALS_PLUGIN = "ssh-credentials@343.v884f71d78167"

USERNAME_PASSWORD = "com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl"
SSH_PRIVATE_KEY = "com.cloudbees.jenkins.plugins.sshcredentials.impl.BasicSSHUserPrivateKey"
DIRECT_ENTRY = SSH_PRIVATE_KEY + "$DirectEntryPrivateKeySource"

# SSHLauncher defaults (ssh-slaves plugin)
DEFAULT_LAUNCH_TIMEOUT = 60
DEFAULT_MAX_RETRIES = 10
DEFAULT_RETRY_WAIT = 15

# --- names -----------------------------------------------------------------

_UNSAFE = "?*/\\%!@#$^&|<>[]:;"
# Stricter than Jenkins (the brief for this emulator asks for it): a real
# controller accepts quotes in node names and trims surrounding blanks.  A
# client that sends either has a bug, so the emulator rejects them.
_EMULATOR_UNSAFE = "'\""


def check_good_name(raw: Optional[str]) -> str:
    """``ComputerSet.checkName`` + ``Jenkins.checkGoodName`` (2.479)."""
    # doDoCreateItem: checkName(Util.fixEmptyAndTrim(name)), so an empty or
    # blank name is the same as none.
    if raw is None or raw.strip() == "":
        raise failure("Query parameter 'name' is required")
    if raw != raw.strip():
        raise failure(f"‘{raw}’ has leading or trailing blanks (the emulator rejects what Jenkins would silently trim)")
    name = raw
    if name in (".", ".."):
        raise failure(f"“{name}” is not an allowed name")
    for ch in name:
        if ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F:  # Character.isISOControl
            raise failure(f"No control code is allowed: {name!r}")
        if ch in _UNSAFE or ch in _EMULATOR_UNSAFE:
            raise failure(f"‘{ch}’ is an unsafe character")
    if name.endswith("."):
        raise failure("A name cannot end with ‘.’")
    return name


# --- nodes -------------------------------------------------------------------


@dataclass
class HostKeyStrategy:
    cls: str
    algorithm: Optional[str] = None  # ManuallyProvided
    key: Optional[bytes] = None  # ManuallyProvided: the public key blob
    require_initial_manual_trust: bool = False  # ManuallyTrusted

    @property
    def short(self) -> str:
        return self.cls.rsplit(".", 1)[-1]

    @property
    def raw_key(self) -> Optional[str]:
        if self.algorithm is None or self.key is None:
            return None
        return f"{self.algorithm} {base64.b64encode(self.key).decode()}"


@dataclass
class Launcher:
    cls: str
    host: Optional[str] = None
    port: int = 22
    credentials_id: Optional[str] = None
    java_path: Optional[str] = None
    jvm_options: Optional[str] = None
    prefix_start_slave_cmd: Optional[str] = None
    suffix_start_slave_cmd: Optional[str] = None
    launch_timeout_seconds: int = DEFAULT_LAUNCH_TIMEOUT
    max_num_retries: int = DEFAULT_MAX_RETRIES
    retry_wait_time: int = DEFAULT_RETRY_WAIT
    strategy: Optional[HostKeyStrategy] = None
    tcp_no_delay: bool = True
    work_dir: Optional[str] = None
    command: Optional[str] = None  # CommandLauncher
    web_socket: bool = False  # JNLPLauncher


@dataclass
class NodeConfig:
    name: str
    remote_fs: str
    launcher: Launcher
    description: Optional[str] = None
    num_executors: int = 1
    mode: str = "NORMAL"
    label: str = ""
    retention: str = RETENTION_ALWAYS
    user_id: Optional[str] = None
    # Node.temporaryOfflineCause (persisted in config.xml): (class, userId, message, timestamp ms)
    temp_offline: Optional[tuple] = None

    @property
    def labels(self) -> list[str]:
        return sorted(set(self.label.split()) | {self.name})


# --- JSON form binding (doCreateItem) --------------------------------------


def _check_keys(obj: dict, allowed: set[str], where: str) -> None:
    # Stricter than Stapler, which silently drops keys it does not know.  A
    # misspelt "sshHostKeyVerificationStrategy" would then quietly fall back to
    # the non-verifying strategy on a real controller; here it is an error.
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise failure(f"Unknown field(s) {', '.join(unknown)} in {where}; known fields: {', '.join(sorted(allowed))}")


def _class_of(obj: Any, where: str) -> str:
    if not isinstance(obj, dict):
        raise failure(f"{where} must be a JSON object with a stapler-class, got {type(obj).__name__}")
    a, b = obj.get("stapler-class"), obj.get("$class")
    if a is None and b is None:
        raise failure(f"{where} has neither stapler-class nor $class")
    if a is not None and b is not None and a != b:
        raise failure(f"{where}: stapler-class {a!r} and $class {b!r} disagree")
    cls = a if a is not None else b
    if not isinstance(cls, str):
        raise failure(f"{where}: stapler-class must be a string")
    return cls


def _opt_str(obj: dict, key: str, where: str) -> Optional[str]:
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise failure(f"{where}.{key} must be a string or null, got {type(v).__name__} {v!r}")
    return v


def _int(obj: dict, key: str, where: str, *, default: Optional[int], minimum: int = 0, maximum: Optional[int] = None) -> int:
    """Stapler converts JSON numbers and numeric strings; a boxed Integer that
    is missing, null or "" takes the default."""
    v = obj.get(key)
    if v is None or v == "":
        if default is None:
            raise failure(f"{where}.{key} is required")
        return default
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise failure(f"{where}.{key} must be an integer, got {type(v).__name__} {v!r}")
    if isinstance(v, str):
        if not re.fullmatch(r"[+-]?\d+", v.strip()):
            raise failure(f"{where}.{key} must be an integer, got {v!r}")
        v = int(v.strip())
    if v < minimum or (maximum is not None and v > maximum):
        hi = f" and {maximum}" if maximum is not None else ""
        raise failure(f"{where}.{key} must be between {minimum}{hi}, got {v}")
    return v


# Algorithms Trilead's KeyAlgorithmManager knows (RSA, DSA, ECDSA 256/384/521, Ed25519).
TRILEAD_ALGORITHMS = ("ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                      "ssh-ed25519")
_B64 = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def java_base64_decode(text: str) -> bytes:
    """``java.util.Base64.getDecoder().decode(String)``: strict RFC 4648, no
    line breaks or blanks; its IllegalArgumentException messages."""
    body = text.rstrip("=")
    for ch in body:
        if ch not in _B64:
            raise ValueError(f"Illegal base64 character {ord(ch):x}")
    pad = len(text) - len(body)
    if pad > 2 or (pad and len(text) % 4) or len(body) % 4 == 1:
        raise ValueError("Input byte array has wrong 4-byte ending unit" if len(body) % 4 == 1
                         else "Input byte array has incorrect ending byte")
    return base64.b64decode(body + "=" * (-len(body) % 4))


def parse_host_key(text: Any, where: str) -> tuple[str, bytes]:
    """``new ManuallyProvidedKeyVerificationStrategy(String key)`` (ssh-slaves
    3.1097): ``parseKey`` splits on spaces only (a tab is no separator),
    decodes the second token with ``java.util.Base64`` (a trailing newline is
    an illegal character) and asks Trilead to decode the key for the named
    algorithm.  Every failure escapes the constructor: a 500."""
    if not isinstance(text, str):
        # A JSON object such as {"algorithm": ..., "key": ...} is the *XML*
        # shape of the stored key, not the form field: Stapler cannot bind an
        # object to the String constructor argument and the controller fails.
        raise xstream_error(
            f"{where}: the key must be a string \"ALGORITHM BASE64\" (e.g. the host's ssh_host_ed25519_key.pub), "
            f"got {type(text).__name__}; java.lang.IllegalArgumentException: Key should be 2 parts: algorithm and Base 64 encoded key value."
        )
    if " " not in text:
        raise xstream_error(
            f"{where}: java.lang.IllegalArgumentException: Key should be 2 parts: algorithm and Base 64 encoded key value."
        )
    tokens = [t for t in text.split(" ") if t]  # java.util.StringTokenizer(key, " ")
    if len(tokens) < 2:
        raise xstream_error(f"{where}: java.util.NoSuchElementException")
    algorithm, b64 = tokens[0], tokens[1]
    try:
        blob = java_base64_decode(b64)
    except ValueError as exc:
        raise xstream_error(f"{where}: java.lang.IllegalArgumentException: {exc}") from None
    if algorithm not in TRILEAD_ALGORITHMS:
        raise xstream_error(f"{where}: java.lang.IllegalArgumentException: Invalid key: Unexpected key algorithm: {algorithm}")
    _check_blob(algorithm, blob, where)
    return algorithm, blob


def _check_blob(algorithm: str, blob: bytes, where: str) -> None:
    # The blob starts with its own algorithm name (RFC 4253 string).
    # Trilead's decodePublicKey reads the blob's own type first: a mismatch
    # is "Key value does not parse into a valid ALGORITHM key".
    n = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else -1
    inner = blob[4 : 4 + n].decode("ascii", "replace") if n >= 0 else None
    if inner != algorithm:
        raise xstream_error(f"{where}: java.lang.IllegalArgumentException: Invalid key: Key value does not parse "
                            f"into a valid {algorithm} key")


def _bind_strategy(obj: Any) -> HostKeyStrategy:
    where = "launcher.sshHostKeyVerificationStrategy"
    cls = _class_of(obj, where)
    base = {"stapler-class", "$class"}
    if cls == NON_VERIFYING or cls == KNOWN_HOSTS_FILE:
        _check_keys(obj, base, where)
        return HostKeyStrategy(cls)
    if cls == MANUALLY_PROVIDED:
        _check_keys(obj, base | {"key"}, where)
        if obj.get("key") is None:
            raise xstream_error(f"{where}.key is required: java.lang.NullPointerException")
        algorithm, blob = parse_host_key(obj["key"], where + ".key")
        return HostKeyStrategy(cls, algorithm=algorithm, key=blob)
    if cls == MANUALLY_TRUSTED:
        _check_keys(obj, base | {"requireInitialManualTrust"}, where)
        v = obj.get("requireInitialManualTrust", False)
        if not isinstance(v, bool):
            raise failure(f"{where}.requireInitialManualTrust must be a boolean, got {v!r}")
        return HostKeyStrategy(cls, require_initial_manual_trust=v)
    raise xstream_error(f"{where}: java.lang.ClassNotFoundException: {cls}")


def _bind_launcher(obj: Any) -> Launcher:
    where = "launcher"
    cls = _class_of(obj, where)
    base = {"stapler-class", "$class"}
    if cls == SSH_LAUNCHER:
        _check_keys(
            obj,
            base
            | {
                "host", "port", "credentialsId", "javaPath", "jvmOptions", "prefixStartSlaveCmd",
                "suffixStartSlaveCmd", "launchTimeoutSeconds", "maxNumRetries", "retryWaitTime",
                "sshHostKeyVerificationStrategy", "tcpNoDelay", "workDir",
            },
            where,
        )
        host = (_opt_str(obj, "host", where) or "").strip()
        if not host:
            raise failure("launcher.host is required: the SSH launcher needs the agent's host name")
        cred = _opt_str(obj, "credentialsId", where)
        if not cred:
            raise failure("launcher.credentialsId is required: the SSH launcher needs a credential to log in with")
        port = _int(obj, "port", where, default=22, minimum=0, maximum=65535) or 22
        strategy = None
        if obj.get("sshHostKeyVerificationStrategy") is not None:
            strategy = _bind_strategy(obj["sshHostKeyVerificationStrategy"])
        tcp = obj.get("tcpNoDelay", True)
        if not isinstance(tcp, bool):
            raise failure(f"launcher.tcpNoDelay must be a boolean, got {tcp!r}")
        return Launcher(
            cls,
            host=host,
            port=port,
            credentials_id=cred,
            java_path=_opt_str(obj, "javaPath", where) or None,
            jvm_options=_opt_str(obj, "jvmOptions", where) or None,
            prefix_start_slave_cmd=_opt_str(obj, "prefixStartSlaveCmd", where) or None,
            suffix_start_slave_cmd=_opt_str(obj, "suffixStartSlaveCmd", where) or None,
            launch_timeout_seconds=_int(obj, "launchTimeoutSeconds", where, default=DEFAULT_LAUNCH_TIMEOUT, minimum=1),
            max_num_retries=_int(obj, "maxNumRetries", where, default=DEFAULT_MAX_RETRIES, minimum=0),
            retry_wait_time=_int(obj, "retryWaitTime", where, default=DEFAULT_RETRY_WAIT, minimum=0),
            strategy=strategy,
            tcp_no_delay=tcp,
            work_dir=_opt_str(obj, "workDir", where) or None,
        )
    if cls == JNLP_LAUNCHER:
        _check_keys(obj, base | {"webSocket", "workDirSettings", "tunnel", "vmargs"}, where)
        ws = obj.get("webSocket", False)
        if not isinstance(ws, bool):
            raise failure(f"launcher.webSocket must be a boolean, got {ws!r}")
        return Launcher(cls, web_socket=ws)
    if cls == COMMAND_LAUNCHER:
        _check_keys(obj, base | {"command"}, where)
        cmd = _opt_str(obj, "command", where)
        if not cmd:
            raise failure("launcher.command is required for the command launcher")
        return Launcher(cls, command=cmd)
    raise xstream_error(f"launcher: java.lang.ClassNotFoundException: {cls} (plugin not installed)")


def bind_node_form(name: str, data: Any, user_id: Optional[str]) -> NodeConfig:
    """``DumbSlave`` from the submitted ``json`` form field."""
    if not isinstance(data, dict):
        raise failure("the json form field must be a JSON object")
    _check_keys(
        data,
        {"name", "nodeDescription", "numExecutors", "remoteFS", "labelString", "mode", "retentionStrategy",
         "nodeProperties", "launcher", "stapler-class", "$class"},
        "the node form",
    )
    where = "node"
    desc = _opt_str(data, "nodeDescription", where)
    remote_fs = _opt_str(data, "remoteFS", where)
    if not remote_fs or not remote_fs.strip():
        # Stricter than Jenkins, which only warns in the UI.
        raise failure("remoteFS is required: the agent's remote root directory")
    num = _int(data, "numExecutors", where, default=None, minimum=-(2**31))
    if num <= 0:
        raise failure(f"Invalid agent configuration for {name}. Invalid # of executors.")
    label = _opt_str(data, "labelString", where) or ""
    mode = data.get("mode", "NORMAL")
    if mode not in ("NORMAL", "EXCLUSIVE"):
        raise xstream_error(f"java.lang.IllegalArgumentException: No enum constant hudson.model.Node.Mode.{mode}")
    retention = data.get("retentionStrategy")
    if retention is None:
        raise failure("retentionStrategy is required")
    rcls = _class_of(retention, "retentionStrategy")
    _check_keys(retention, {"stapler-class", "$class"}, "retentionStrategy")
    if rcls != RETENTION_ALWAYS:
        raise xstream_error(f"retentionStrategy: the emulator supports only {RETENTION_ALWAYS}, got {rcls}")
    props = data.get("nodeProperties", {"stapler-class-bag": "true"})
    if not isinstance(props, dict) or set(props) - {"stapler-class-bag"}:
        raise failure("nodeProperties: the emulator supports only an empty property bag {\"stapler-class-bag\": \"true\"}")
    if "launcher" not in data or data["launcher"] is None:
        raise failure("launcher is required")
    launcher = _bind_launcher(data["launcher"])
    return NodeConfig(
        name=name, remote_fs=remote_fs, launcher=launcher, description=desc, num_executors=num,
        mode=mode, label=" ".join(label.split()), retention=rcls, user_id=user_id,
    )


# --- XML -----------------------------------------------------------------------


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attr(text: str) -> str:
    return _esc(text).replace('"', "&quot;")


def render_xml(elem: ET.Element) -> str:
    """XStream's layout: two-space indent, ``<x/>`` for empty elements."""
    out: list[str] = ["<?xml version='1.1' encoding='UTF-8'?>\n"]

    def walk(e: ET.Element, depth: int) -> None:
        pad = "  " * depth
        attrs = "".join(f' {k}="{_attr(v)}"' for k, v in e.attrib.items())
        children = list(e)
        if children:
            out.append(f"{pad}<{e.tag}{attrs}>\n")
            for c in children:
                walk(c, depth + 1)
            out.append(f"{pad}</{e.tag}>\n")
        elif e.text is None:
            out.append(f"{pad}<{e.tag}{attrs}/>\n")
        else:
            out.append(f"{pad}<{e.tag}{attrs}>{_esc(e.text)}</{e.tag}>\n")

    walk(elem, 0)
    return "".join(out)


def _sub(parent: ET.Element, tag: str, text: Optional[str] = None, **attrib: str) -> ET.Element:
    e = ET.SubElement(parent, tag, attrib)
    e.text = text
    return e


def node_to_xml(cfg: NodeConfig) -> str:
    root = ET.Element("slave")
    if cfg.temp_offline is not None:
        # Node's own field, so XStream writes it before Slave's fields.
        cls, user, message, ts = cfg.temp_offline
        te = _sub(root, "temporaryOfflineCause", **{"class": cls})
        _sub(te, "timestamp", str(ts))
        de = _sub(te, "description")
        _sub(_sub(de, "holder"), "owner", "hudson.slaves.Messages")
        _sub(de, "key", "SlaveComputer.DisconnectedBy")
        args = _sub(de, "args")
        _sub(args, "string", user or "anonymous")
        _sub(args, "string", f" : {message}" if message else "")
        if user is not None:
            _sub(te, "userId", user)
        if message is not None:
            _sub(te, "message", message)
    _sub(root, "name", cfg.name)
    if cfg.description is not None:
        _sub(root, "description", cfg.description)
    _sub(root, "remoteFS", cfg.remote_fs)
    _sub(root, "numExecutors", str(cfg.num_executors))
    _sub(root, "mode", cfg.mode)
    _sub(root, "retentionStrategy", **{"class": cfg.retention})
    la = cfg.launcher
    if la.cls == SSH_LAUNCHER:
        le = _sub(root, "launcher", **{"class": la.cls, "plugin": SSH_PLUGIN})
        _sub(le, "host", la.host)
        _sub(le, "port", str(la.port))
        _sub(le, "credentialsId", la.credentials_id)
        for tag, val in (("javaPath", la.java_path), ("jvmOptions", la.jvm_options),
                         ("prefixStartSlaveCmd", la.prefix_start_slave_cmd),
                         ("suffixStartSlaveCmd", la.suffix_start_slave_cmd)):
            if val is not None:
                _sub(le, tag, val)
        _sub(le, "launchTimeoutSeconds", str(la.launch_timeout_seconds))
        _sub(le, "maxNumRetries", str(la.max_num_retries))
        _sub(le, "retryWaitTime", str(la.retry_wait_time))
        st = la.strategy
        if st is not None:
            se = _sub(le, "sshHostKeyVerificationStrategy", **{"class": st.cls})
            if st.cls == MANUALLY_PROVIDED:
                ke = _sub(se, "key")
                _sub(ke, "algorithm", st.algorithm)
                _sub(ke, "key", base64.b64encode(st.key or b"").decode())
                _sub(se, "rawKey", st.raw_key)
            elif st.cls == MANUALLY_TRUSTED:
                _sub(se, "requireInitialManualTrust", "true" if st.require_initial_manual_trust else "false")
        _sub(le, "tcpNoDelay", "true" if la.tcp_no_delay else "false")
        if la.work_dir is not None:
            _sub(le, "workDir", la.work_dir)
    elif la.cls == JNLP_LAUNCHER:
        le = _sub(root, "launcher", **{"class": la.cls})
        wd = _sub(le, "workDirSettings")
        _sub(wd, "disabled", "false")
        _sub(wd, "internalDir", "remoting")
        _sub(wd, "failIfWorkDirIsMissing", "false")
        _sub(le, "webSocket", "true" if la.web_socket else "false")
    else:
        le = _sub(root, "launcher", **{"class": la.cls})
        _sub(le, "agentCommand", la.command)
    _sub(root, "label", cfg.label)
    _sub(root, "nodeProperties")
    if cfg.user_id is not None:
        _sub(root, "userId", cfg.user_id)
    return render_xml(root)


def parse_xml(body: bytes, what: str) -> ET.Element:
    if not body.strip():
        raise xstream_error(f"{what}: com.thoughtworks.xstream.io.StreamException: empty document")
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise xstream_error(f"{what}: com.thoughtworks.xstream.io.StreamException: {exc}") from None


def _children(e: ET.Element, allowed: set[str], where: str) -> dict[str, ET.Element]:
    seen: dict[str, ET.Element] = {}
    for c in e:
        if c.tag not in allowed:
            # XStream: com.thoughtworks.xstream.converters.reflection.AbstractReflectionConverter$UnknownFieldException
            raise xstream_error(f"{where}: No such field {c.tag!r} (UnknownFieldException)")
        if c.tag in seen:
            raise xstream_error(f"{where}: Duplicate field {c.tag!r}")
        seen[c.tag] = c
    return seen


def _text(e: Optional[ET.Element]) -> Optional[str]:
    if e is None:
        return None
    return e.text or ""


def _xml_int(e: Optional[ET.Element], where: str, default: Optional[int]) -> int:
    t = _text(e)
    if t is None or t.strip() == "":
        if default is None:
            raise xstream_error(f"{where} is required")
        return default
    if not re.fullmatch(r"[+-]?\d+", t.strip()):
        raise xstream_error(f"{where}: java.lang.NumberFormatException: For input string: \"{t}\"")
    return int(t.strip())


def _xml_bool(e: Optional[ET.Element], where: str, default: bool) -> bool:
    t = _text(e)
    if t is None:
        return default
    if t.strip() not in ("true", "false"):
        raise xstream_error(f"{where}: expected true or false, got {t!r}")
    return t.strip() == "true"


def node_from_xml(body: bytes) -> NodeConfig:
    root = parse_xml(body, "config.xml")
    if root.tag not in ("slave", "hudson.slaves.DumbSlave"):
        raise xstream_error(f"config.xml: com.thoughtworks.xstream.mapper.CannotResolveClassException: {root.tag}")
    f = _children(
        root,
        {"name", "description", "remoteFS", "numExecutors", "mode", "retentionStrategy", "launcher", "label",
         "nodeProperties", "userId", "temporaryOfflineCause"},
        "slave",
    )
    temp = None
    if "temporaryOfflineCause" in f:
        te = f["temporaryOfflineCause"]
        ts = _xml_int(te.find("timestamp"), "temporaryOfflineCause/timestamp", 0)
        temp = (te.get("class") or "hudson.slaves.OfflineCause$UserCause", _text(te.find("userId")),
                _text(te.find("message")), ts)
    name = _text(f.get("name"))
    if not name:
        raise failure("Invalid agent configuration. Name is empty")
    remote_fs = _text(f.get("remoteFS"))
    if not remote_fs or not remote_fs.strip():
        raise failure("remoteFS is required: the agent's remote root directory")
    num = _xml_int(f.get("numExecutors"), "slave/numExecutors", 1)
    if num <= 0:
        raise failure(f"Invalid agent configuration for {name}. Invalid # of executors.")
    mode = (_text(f.get("mode")) or "NORMAL").strip()
    if mode not in ("NORMAL", "EXCLUSIVE"):
        raise xstream_error(f"java.lang.IllegalArgumentException: No enum constant hudson.model.Node.Mode.{mode}")
    retention = RETENTION_ALWAYS
    if "retentionStrategy" in f:
        retention = f["retentionStrategy"].get("class", "")
        if retention != RETENTION_ALWAYS:
            raise xstream_error(f"retentionStrategy: the emulator supports only {RETENTION_ALWAYS}, got {retention!r}")
    if len(list(f.get("nodeProperties", ET.Element("x")))):
        raise xstream_error("nodeProperties: the emulator supports only an empty <nodeProperties/>")
    if "launcher" not in f:
        raise failure("launcher is required")
    launcher = _launcher_from_xml(f["launcher"])
    return NodeConfig(
        name=name, remote_fs=remote_fs, launcher=launcher, description=_text(f.get("description")),
        num_executors=num, mode=mode, label=" ".join((_text(f.get("label")) or "").split()),
        retention=retention, user_id=_text(f.get("userId")), temp_offline=temp,
    )


def _launcher_from_xml(le: ET.Element) -> Launcher:
    cls = le.get("class")
    if cls == SSH_LAUNCHER:
        f = _children(
            le,
            {"host", "port", "credentialsId", "javaPath", "jvmOptions", "prefixStartSlaveCmd", "suffixStartSlaveCmd",
             "launchTimeoutSeconds", "maxNumRetries", "retryWaitTime", "sshHostKeyVerificationStrategy",
             "tcpNoDelay", "workDir"},
            "launcher",
        )
        host = (_text(f.get("host")) or "").strip()
        if not host:
            raise failure("launcher/host is required: the SSH launcher needs the agent's host name")
        cred = _text(f.get("credentialsId"))
        if not cred:
            raise failure("launcher/credentialsId is required")
        port = _xml_int(f.get("port"), "launcher/port", 22)
        if not 0 <= port <= 65535:
            raise failure(f"launcher/port must be between 0 and 65535, got {port}")
        strategy = None
        if "sshHostKeyVerificationStrategy" in f:
            strategy = _strategy_from_xml(f["sshHostKeyVerificationStrategy"])
        return Launcher(
            cls, host=host, port=port or 22, credentials_id=cred,
            java_path=_text(f.get("javaPath")) or None, jvm_options=_text(f.get("jvmOptions")) or None,
            prefix_start_slave_cmd=_text(f.get("prefixStartSlaveCmd")) or None,
            suffix_start_slave_cmd=_text(f.get("suffixStartSlaveCmd")) or None,
            launch_timeout_seconds=_xml_int(f.get("launchTimeoutSeconds"), "launcher/launchTimeoutSeconds", DEFAULT_LAUNCH_TIMEOUT),
            max_num_retries=_xml_int(f.get("maxNumRetries"), "launcher/maxNumRetries", DEFAULT_MAX_RETRIES),
            retry_wait_time=_xml_int(f.get("retryWaitTime"), "launcher/retryWaitTime", DEFAULT_RETRY_WAIT),
            strategy=strategy, tcp_no_delay=_xml_bool(f.get("tcpNoDelay"), "launcher/tcpNoDelay", True),
            work_dir=_text(f.get("workDir")) or None,
        )
    if cls == JNLP_LAUNCHER:
        f = _children(le, {"workDirSettings", "webSocket", "tunnel", "vmargs"}, "launcher")
        return Launcher(cls, web_socket=_xml_bool(f.get("webSocket"), "launcher/webSocket", False))
    if cls == COMMAND_LAUNCHER:
        f = _children(le, {"agentCommand"}, "launcher")
        cmd = _text(f.get("agentCommand"))
        if not cmd:
            raise failure("launcher/agentCommand is required")
        return Launcher(cls, command=cmd)
    raise xstream_error(f"launcher: com.thoughtworks.xstream.mapper.CannotResolveClassException: {cls}")


def _strategy_from_xml(se: ET.Element) -> HostKeyStrategy:
    cls = se.get("class")
    where = "sshHostKeyVerificationStrategy"
    if cls in (NON_VERIFYING, KNOWN_HOSTS_FILE):
        _children(se, set(), where)
        return HostKeyStrategy(cls)
    if cls == MANUALLY_TRUSTED:
        f = _children(se, {"requireInitialManualTrust"}, where)
        return HostKeyStrategy(cls, require_initial_manual_trust=_xml_bool(f.get("requireInitialManualTrust"), where, False))
    if cls == MANUALLY_PROVIDED:
        f = _children(se, {"key", "rawKey"}, where)
        if "key" not in f:
            raise xstream_error(f"{where}: <key> with <algorithm> and <key> is required")
        k = _children(f["key"], {"algorithm", "key"}, where + "/key")
        algorithm = (_text(k.get("algorithm")) or "").strip()
        b64 = "".join((_text(k.get("key")) or "").split())
        if not algorithm or not b64:
            raise xstream_error(f"{where}/key needs both <algorithm> and <key>")
        try:
            blob = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise xstream_error(f"{where}/key/key is not Base 64") from None
        _check_blob(algorithm, blob, where)
        raw = _text(f.get("rawKey"))
        if raw is not None and raw.split()[:2] != [algorithm, base64.b64encode(blob).decode()]:
            raise xstream_error(f"{where}: <rawKey> does not match <key>")
        return HostKeyStrategy(cls, algorithm=algorithm, key=blob)
    raise xstream_error(f"{where}: com.thoughtworks.xstream.mapper.CannotResolveClassException: {cls}")


# --- credentials -------------------------------------------------------------

_ID_RE = re.compile(r"[a-zA-Z0-9_.-]+")
REDACTED = "secret-redacted"


@dataclass
class Credential:
    cls: str
    id: str
    username: str
    scope: str = "GLOBAL"
    description: str = ""
    password: Optional[str] = None
    private_key: Optional[str] = None
    passphrase: Optional[str] = None
    username_secret: bool = False

    @property
    def type_name(self) -> str:
        return "Username with password" if self.cls == USERNAME_PASSWORD else "SSH Username with private key"

    @property
    def display_name(self) -> str:
        base = f"{self.username}/******" if self.cls == USERNAME_PASSWORD else self.username
        return f"{base} ({self.description})" if self.description else base

    def api_json(self) -> dict:
        # Never the secret: the credentials plugin exports only these.
        return {
            "_class": "com.cloudbees.plugins.credentials.CredentialsStoreAction$CredentialsWrapper",
            "description": self.description,
            "displayName": self.display_name,
            "fingerprint": None,
            "fullName": f"system/_/{self.id}",
            "id": self.id,
            "typeName": self.type_name,
        }

    def to_xml(self) -> str:
        """``config.xml`` as the plugin serves it: secrets redacted."""
        plugin = CREDENTIALS_PLUGIN if self.cls == USERNAME_PASSWORD else SSH_CREDENTIALS_PLUGIN
        root = ET.Element(self.cls, {"plugin": plugin})
        _sub(root, "scope", self.scope)
        _sub(root, "id", self.id)
        _sub(root, "description", self.description)
        _sub(root, "username", self.username)
        _sub(root, "usernameSecret", "true" if self.username_secret else "false")
        if self.cls == USERNAME_PASSWORD:
            _sub(_sub(root, "password"), REDACTED)
        else:
            src = _sub(root, "privateKeySource", **{"class": DIRECT_ENTRY})
            _sub(_sub(src, "privateKey"), REDACTED)
            if self.passphrase:
                _sub(_sub(root, "passphrase"), REDACTED)
        return render_xml(root)


def credential_from_xml(body: bytes) -> Credential:
    root = parse_xml(body, "credential")
    where = root.tag
    if root.tag == USERNAME_PASSWORD:
        f = _children(root, {"scope", "id", "description", "username", "password", "usernameSecret"}, where)
    elif root.tag == SSH_PRIVATE_KEY:
        f = _children(root, {"scope", "id", "description", "username", "privateKeySource", "passphrase", "usernameSecret"}, where)
    else:
        raise xstream_error(f"com.thoughtworks.xstream.mapper.CannotResolveClassException: {root.tag}")
    for tag in ("password", "passphrase"):
        if tag in f and f[tag].find(REDACTED) is not None:
            raise failure(f"<{tag}> still holds <{REDACTED}/>: send the secret itself")
    cid = (_text(f.get("id")) or "").strip() or str(uuid.uuid4())
    if not _ID_RE.fullmatch(cid):
        raise failure(f"Unacceptable characters in credential id ‘{cid}’")
    scope = (_text(f.get("scope")) or "GLOBAL").strip()
    if scope not in ("GLOBAL", "SYSTEM"):
        raise xstream_error(f"java.lang.IllegalArgumentException: No enum constant CredentialsScope.{scope}")
    username = _text(f.get("username")) or ""
    cred = Credential(
        cls=root.tag, id=cid, username=username, scope=scope, description=_text(f.get("description")) or "",
        username_secret=_xml_bool(f.get("usernameSecret"), "usernameSecret", False),
    )
    if root.tag == USERNAME_PASSWORD:
        cred.password = _text(f.get("password")) or ""
    else:
        if not username:
            raise failure("username is required for an SSH private key credential")
        src = f.get("privateKeySource")
        if src is None or src.get("class") != DIRECT_ENTRY:
            raise xstream_error(f"privateKeySource must be class=\"{DIRECT_ENTRY}\"")
        sf = _children(src, {"privateKey"}, "privateKeySource")
        pk = sf.get("privateKey")
        if pk is None or pk.find(REDACTED) is not None or not (pk.text or "").strip():
            raise failure("privateKeySource/privateKey must hold the private key")
        cred.private_key = pk.text.strip() + "\n"
        cred.passphrase = _text(f.get("passphrase")) or None
    return cred

