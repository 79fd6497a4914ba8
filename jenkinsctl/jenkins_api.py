"""A thin, safe layer over python-jenkins.

python-jenkins is the client every Jenkins user already trusts, but it has
traps (REFERENCE.md section 2) that this module closes:

* no timeout by default: every call here has one, and a controller that
  accepts and never answers becomes :class:`Timeout` after ``timeout`` s;
* 401, 403 and 500 all become one ``JenkinsException``: here 401 and 403 are
  :class:`JenkinsAuthError` (never retried, the secret never in the text),
  and a 403 for a stale CSRF crumb fetches a fresh crumb once;
* ``node_exists`` answers False on *any* error, so ``create_node`` after an
  auth error or a timeout would POST blindly: nodes are looked up here with
  a lookup that tells "missing" from "failed";
* ``create_node`` is not idempotent and mutates ``launcher_params``: here
  :meth:`JenkinsAPI.ensure_node` compares first, builds a fresh dict per call,
  and treats a concurrent creator's 400 "already exists" as a race it lost;
* ``enable_node``/``disable_node`` decide from ``offline``: here they decide
  from ``temporarilyOffline``, so a disconnected node can still be disabled;
* names are percent-encoded with ``quote(safe='')`` (python-jenkins keeps
  ``/``, so ``../x`` would walk out of ``computer/``), and validated before
  anything is created.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import quote

from jenkinsctl.errors import ConfigError, JenkinsAuthError, JenkinsError, JenkinsNotFound, Timeout
from jenkinsctl.names import validate_node_name
from jenkinsctl.poll import wait_for
from jenkinsctl.secrets import display_url, redact, sensitive, sensitive_url

log = logging.getLogger("jenkinsctl.jenkins")

SSH_LAUNCHER = "hudson.plugins.sshslaves.SSHLauncher"
MANUAL_KEY_STRATEGY = "hudson.plugins.sshslaves.verifiers.ManuallyProvidedKeyVerificationStrategy"
NON_VERIFYING_STRATEGY = "hudson.plugins.sshslaves.verifiers.NonVerifyingKeyVerificationStrategy"
SSH_CREDENTIAL_CLASS = "com.cloudbees.jenkins.plugins.sshcredentials.impl.BasicSSHUserPrivateKey"
DIRECT_KEY_SOURCE = SSH_CREDENTIAL_CLASS + "$DirectEntryPrivateKeySource"
SYSTEM_STORE = "credentials/store/system/domain/_"

_CRUMB_ERROR = "No valid crumb"
_SSH_KEY_ALGORITHMS = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                       "ecdsa-sha2-nistp521")


def _display_url(url: str) -> str:
    """The URL for messages (see secrets.display_url), without its final slash."""
    return display_url(url).rstrip("/")


# --- specs --------------------------------------------------------------------


@dataclass(frozen=True)
class HostKey:
    """An SSH host public key as ManuallyProvidedKeyVerificationStrategy pins it."""

    algorithm: str  # e.g. ssh-ed25519
    key: str  # base64 of the public key blob

    @classmethod
    def parse(cls, line: str) -> "HostKey":
        parts = line.split()
        if len(parts) < 2 or parts[0] not in _SSH_KEY_ALGORITHMS:
            raise ConfigError(f"not an SSH public key line: {line[:40]!r}...",
                              hint="expected 'ALGORITHM BASE64', as in an ssh_host_*_key.pub file")
        return cls(parts[0], parts[1])

    def __str__(self) -> str:
        return f"{self.algorithm} {self.key}"


@dataclass(frozen=True)
class NodeSpec:
    """A permanent SSH agent as jenkinsctl wants it in the controller."""

    name: str
    host: str
    credentials_id: str
    host_key: HostKey
    remote_fs: str
    port: int = 22
    labels: tuple[str, ...] = ()
    executors: int = 1
    description: str = ""
    exclusive: bool = False
    java_path: str = ""
    jvm_options: str = ""
    launch_timeout: int = 60
    max_retries: int = 10
    retry_wait: int = 15

    def label_string(self) -> str:
        return " ".join(self.labels)

    def comparable(self) -> dict[str, Any]:
        """The fields :func:`node_fields` reads back from config.xml."""
        return {
            "description": self.description,
            "remoteFS": self.remote_fs,
            "numExecutors": str(self.executors),
            "mode": "EXCLUSIVE" if self.exclusive else "NORMAL",
            "labels": tuple(sorted(self.labels)),
            "launcher": SSH_LAUNCHER,
            "host": self.host,
            "port": str(self.port),
            "credentialsId": self.credentials_id,
            "javaPath": self.java_path,
            "jvmOptions": self.jvm_options,
            # Not managed, so always empty: a command someone put around the
            # agent's start would run on every launch.
            "prefixStartSlaveCmd": "",
            "suffixStartSlaveCmd": "",
            "launchTimeoutSeconds": str(self.launch_timeout),
            "maxNumRetries": str(self.max_retries),
            "retryWaitTime": str(self.retry_wait),
            "strategy": MANUAL_KEY_STRATEGY,
            "keyAlgorithm": self.host_key.algorithm,
            "key": self.host_key.key,
        }

    def launcher_params(self) -> dict[str, Any]:
        """A *fresh* dict for python-jenkins' create_node, which mutates it.

        The host-key strategy is always given: without it Jenkins falls back
        to non-verifying.  The form binds ManuallyProvidedKeyVerificationStrategy
        through its @DataBoundConstructor(String key), i.e. "ALGORITHM BASE64".
        """
        return {
            "$class": SSH_LAUNCHER,
            "host": self.host,
            "port": self.port,
            "credentialsId": self.credentials_id,
            "javaPath": self.java_path,
            "jvmOptions": self.jvm_options,
            "prefixStartSlaveCmd": "",
            "suffixStartSlaveCmd": "",
            "launchTimeoutSeconds": self.launch_timeout,
            "maxNumRetries": self.max_retries,
            "retryWaitTime": self.retry_wait,
            "sshHostKeyVerificationStrategy": {
                "stapler-class": MANUAL_KEY_STRATEGY,
                "$class": MANUAL_KEY_STRATEGY,
                "key": str(self.host_key),
            },
        }


# Optional tuning fields: a controller that does not echo them back in
# config.xml is not "different" because of them.
_OPTIONAL_FIELDS = ("javaPath", "jvmOptions", "prefixStartSlaveCmd", "suffixStartSlaveCmd", "launchTimeoutSeconds",
                    "maxNumRetries", "retryWaitTime")
# Fields the SSH launcher reads only when it connects: a change to one of
# them needs a reconnect, because a controller keeps an online agent's
# connection when its configuration changes.
_CONNECTION_FIELDS = ("launcher", "host", "port", "credentialsId", "javaPath", "jvmOptions", "prefixStartSlaveCmd",
                      "suffixStartSlaveCmd", "strategy", "keyAlgorithm", "key", "remoteFS")


def node_fields(config_xml: str) -> dict[str, Any]:
    """The comparable fields of a node's config.xml (see NodeSpec.comparable)."""
    try:
        root = ET.fromstring(config_xml.encode("utf-8") if isinstance(config_xml, str) else config_xml)
    except ET.ParseError as exc:
        raise JenkinsError(f"the controller returned a node config.xml that is not XML: {exc}") from None

    def text(el: ET.Element | None, path: str) -> str | None:
        if el is None:
            return None
        found = el.find(path)
        if found is None:
            return None
        return (found.text or "").strip()

    launcher = root.find("launcher")
    strategy = launcher.find("sshHostKeyVerificationStrategy") if launcher is not None else None
    out: dict[str, Any] = {
        "description": text(root, "description") or "",
        "remoteFS": text(root, "remoteFS"),
        "numExecutors": text(root, "numExecutors"),
        "mode": text(root, "mode") or "NORMAL",
        "labels": tuple(sorted((text(root, "label") or "").split())),
        "launcher": launcher.get("class") if launcher is not None else None,
        "host": text(launcher, "host"),
        "port": text(launcher, "port"),
        "credentialsId": text(launcher, "credentialsId"),
        "strategy": strategy.get("class") if strategy is not None else None,
        "keyAlgorithm": text(strategy, "key/algorithm"),
        "key": text(strategy, "key/key"),
    }
    for name in _OPTIONAL_FIELDS:
        value = text(launcher, name)
        if value is not None:
            out[name] = value
    if out["key"] is None and strategy is not None:
        # Some versions store only the raw "ALGORITHM BASE64" string.
        raw = text(strategy, "key") or text(strategy, "rawKey")
        if raw and len(raw.split()) >= 2:
            out["keyAlgorithm"], out["key"] = raw.split()[:2]
    return out


def node_diff(spec: NodeSpec, config_xml: str) -> dict[str, tuple[Any, Any]]:
    """Fields whose value in the controller differs from ``spec``: {field: (have, want)}."""
    have = node_fields(config_xml)
    want = spec.comparable()
    diff = {}
    for key, value in want.items():
        if key in _OPTIONAL_FIELDS and key not in have:
            continue
        if have.get(key) != value:
            diff[key] = (have.get(key), value)
    return diff


def render_node_xml(spec: NodeSpec, base_xml: str | None = None) -> str:
    """config.xml for ``spec``; fields jenkinsctl does not manage (node
    properties, retention strategy...) are kept from ``base_xml``."""
    if base_xml:
        root = ET.fromstring(base_xml.encode("utf-8") if isinstance(base_xml, str) else base_xml)
    else:
        root = ET.Element("slave")

    def put(parent: ET.Element, tag: str, value: str) -> ET.Element:
        el = parent.find(tag)
        if el is None:
            el = ET.SubElement(parent, tag)
        el.text = value
        return el

    put(root, "name", spec.name)
    put(root, "description", spec.description)
    put(root, "remoteFS", spec.remote_fs)
    put(root, "numExecutors", str(spec.executors))
    put(root, "mode", "EXCLUSIVE" if spec.exclusive else "NORMAL")
    if root.find("retentionStrategy") is None:
        ET.SubElement(root, "retentionStrategy", {"class": "hudson.slaves.RetentionStrategy$Always"})
    launcher = root.find("launcher")
    if launcher is not None and launcher.get("class") != SSH_LAUNCHER:
        root.remove(launcher)
        launcher = None
    if launcher is None:
        launcher = ET.SubElement(root, "launcher", {"class": SSH_LAUNCHER})
    put(launcher, "host", spec.host)
    put(launcher, "port", str(spec.port))
    put(launcher, "credentialsId", spec.credentials_id)
    put(launcher, "javaPath", spec.java_path)
    put(launcher, "jvmOptions", spec.jvm_options)
    put(launcher, "prefixStartSlaveCmd", "")
    put(launcher, "suffixStartSlaveCmd", "")
    put(launcher, "launchTimeoutSeconds", str(spec.launch_timeout))
    put(launcher, "maxNumRetries", str(spec.max_retries))
    put(launcher, "retryWaitTime", str(spec.retry_wait))
    old = launcher.find("sshHostKeyVerificationStrategy")
    if old is not None:
        launcher.remove(old)
    strategy = ET.SubElement(launcher, "sshHostKeyVerificationStrategy", {"class": MANUAL_KEY_STRATEGY})
    key = ET.SubElement(strategy, "key")
    ET.SubElement(key, "algorithm").text = spec.host_key.algorithm
    ET.SubElement(key, "key").text = spec.host_key.key
    put(root, "label", spec.label_string())
    if root.find("nodeProperties") is None:
        ET.SubElement(root, "nodeProperties")
    return "<?xml version='1.1' encoding='UTF-8'?>\n" + ET.tostring(root, encoding="unicode")


def credential_marker(username: str, private_key: str) -> str:
    """A description that identifies the key without revealing it.

    The controller never returns a stored private key (config.xml shows it
    redacted), so "is it the same key?" is answered by a salted digest kept
    in the credential's description.
    """
    digest = hashlib.sha256(b"jenkinsctl-credential\0" + username.encode() + b"\0"
                            + private_key.strip().encode()).hexdigest()[:16]
    return f"managed by jenkinsctl; key {digest}"


def render_credential_xml(cred_id: str, username: str, private_key: str, description: str) -> str:
    root = ET.Element(SSH_CREDENTIAL_CLASS)
    # SYSTEM: the controller may use it to launch agents, jobs may not.
    ET.SubElement(root, "scope").text = "SYSTEM"
    ET.SubElement(root, "id").text = cred_id
    ET.SubElement(root, "description").text = description
    ET.SubElement(root, "username").text = username
    ET.SubElement(root, "usernameSecret").text = "false"
    source = ET.SubElement(root, "privateKeySource", {"class": DIRECT_KEY_SOURCE})
    ET.SubElement(source, "privateKey").text = private_key.strip() + "\n"
    return "<?xml version='1.1' encoding='UTF-8'?>\n" + ET.tostring(root, encoding="unicode")


# --- the python-jenkins subclass -------------------------------------------------


def _client_class():
    """Defined lazily so importing this module does not import python-jenkins."""
    import jenkins
    import requests

    class _NotFound(JenkinsNotFound, jenkins.NotFoundException):
        """The one form a 404 takes.  Callers in jenkinsctl catch JenkinsNotFound;
        it is also python-jenkins' NotFoundException because python-jenkins'
        own methods rely on that: maybe_add_crumb reads a 404 from the crumb
        issuer as "CSRF protection is off", and create_node's node_exists
        reads one as "no such node yet"."""

    class _Client(jenkins.Jenkins):
        """python-jenkins with typed errors, one crumb refresh and strict URL encoding."""

        def __init__(self, url: str, username: str | None, password: str | None, timeout: float) -> None:
            super().__init__(url, username=username, password=password, timeout=timeout)
            self._display = _display_url(url)
            self._username = username or "anonymous"
            # Registered for the CLI's redaction, and refused with a clean
            # error if it would make an invalid Authorization header.
            self._secret = sensitive(password, "the controller password") or ""
            sensitive_url(url)
            self._crumb_lock = threading.RLock()
            self.requests = 0  # count of HTTP requests sent, for tests and benchmarks

        # URL building: python-jenkins quotes with safe='/', so a name like
        # "../x" would escape computer/.  Node names and messages get safe=''.
        def _get_encoded_params(self, params):
            strict = {k: quote(str(params[k]), safe="") for k in ("name", "msg") if k in params}
            rest = {k: v for k, v in params.items() if k not in strict}
            out = super()._get_encoded_params(rest)
            out.update(strict)
            return out

        def maybe_add_crumb(self, req):
            with self._crumb_lock:
                super().maybe_add_crumb(req)

        def _request(self, req, stream=None):
            self.requests += 1
            try:
                return super()._request(req, stream)
            except requests.exceptions.Timeout:
                raise Timeout(f"the Jenkins controller at {self._display} did not answer {req.method} "
                              f"{self._path(req.url)} within {self.timeout:g}s",
                              hint="check that the controller is healthy, or raise controller.timeout",
                              url=self._display) from None
            except requests.exceptions.ConnectionError as exc:
                raise JenkinsError(f"cannot connect to the Jenkins controller at {self._display}: "
                                   f"{_connect_reason(exc)}",
                                   hint="check controller.external / controller.port, and that the controller runs",
                                   url=self._display, unreachable=True) from None

        def jenkins_request(self, req, add_crumb=True, resolve_auth=True, stream=None):
            for attempt in (1, 2):
                if resolve_auth:
                    self._maybe_add_auth()
                if add_crumb:
                    self.maybe_add_crumb(req)
                resp = self._request(req, stream)
                if resp.status_code < 400:
                    return resp
                if (resp.status_code == 403 and add_crumb and attempt == 1 and _CRUMB_ERROR in _body(resp)):
                    # The crumb is bound to a web session that may have
                    # expired; fetch a fresh one once, then report.
                    log.debug("crumb rejected for %s %s; fetching a new one", req.method, req.url)
                    with self._crumb_lock:
                        if self.crumb:
                            req.headers.pop(self.crumb.get("crumbRequestField", "Jenkins-Crumb"), None)
                        self.crumb = None
                    continue
                raise self._http_error(req, resp, crumb_retried=attempt == 2)
            raise AssertionError("unreachable")

        def _path(self, url: str) -> str:
            path = url[len(self.server):] if url.startswith(self.server) else url
            return "/" + path

        def _http_error(self, req, resp, crumb_retried: bool) -> Exception:
            status = resp.status_code
            where = f"{req.method} {self._path(req.url)}"
            detail = self._redact(_short_detail(resp))
            if status == 401:
                return JenkinsAuthError(
                    f"the Jenkins controller at {self._display} rejected the credentials of user "
                    f"'{self._username}' (401 on {where})",
                    hint="check controller.username and the password or API token that controller.password "
                         "points to", status=401, url=self._display)
            if status == 403:
                if _CRUMB_ERROR in _body(resp):
                    return JenkinsError(f"{where} was refused for a missing CSRF crumb "
                                        f"{'even with a freshly fetched crumb ' if crumb_retried else ''}(403)",
                                        hint="a proxy may be dropping the session cookie or the crumb header",
                                        status=403, url=self._display)
                if "Authentication required" in detail or self._username == "anonymous":
                    return JenkinsAuthError(f"the Jenkins controller at {self._display} requires authentication "
                                            f"(403 on {where})",
                                            hint="set controller.username and controller.password", status=403,
                                            url=self._display)
                return JenkinsAuthError(f"user '{self._username}' may not {where} on {self._display} (403): "
                                        f"{detail}",
                                        hint="grant the user Overall/Administer, or the Computer and Credentials "
                                             "permissions", status=403, url=self._display)
            if status == 404:
                return _NotFound(f"{where} on {self._display}: not found (404)", status=404, url=self._display)
            if status == 503 and _CASC_ERROR in _body(resp):
                # A BootFailure of configuration-as-code: the controller will
                # not get ready however long we wait.
                return JenkinsError(f"the Jenkins controller at {self._display} did not start: its "
                                    f"configuration-as-code was rejected: {_casc_error(_body(resp))}",
                                    hint="the controller's log (docker logs) has the whole error; an attribute "
                                         "the controller does not know usually means its core or plugins differ "
                                         "from the versions resources/controller pins",
                                    status=503, url=self._display, casc_failure=True)
            if status == 503:
                return JenkinsError(f"the Jenkins controller at {self._display} is not ready (503 on {where})"
                                    + (f": {detail}" if detail else ""),
                                    hint="it is probably starting; wait and try again", status=503,
                                    url=self._display, starting=True)
            x_error = resp.headers.get("X-Error")
            return JenkinsError(f"{where} failed on {self._display}: {status} {resp.reason}"
                                + (f": {detail}" if detail else ""), status=status,
                                x_error=self._redact(x_error) if x_error else None, url=self._display)

        def _redact(self, text: str) -> str:
            return redact(text, self._secret)

    return _Client


def _body(resp) -> str:
    try:
        return resp.text or ""
    except Exception:  # noqa: BLE001 - a broken body is not worth a second error
        return ""


def _short_detail(resp) -> str:
    """One line that says why: X-Error, else the text without HTML, capped."""
    x_error = resp.headers.get("X-Error")
    if x_error:
        return x_error
    text = _body(resp)
    if "<" in text:
        title = re.search(r"<title>(.*?)</title>", text, re.S | re.I)
        h = re.search(r"<h[12][^>]*>(.*?)</h[12]>", text, re.S | re.I)
        text = " ".join(x.group(1) for x in (h, title) if x) or re.sub(r"<[^>]+>", " ", text)
    text = " ".join(text.split())
    return text[:200]


_CASC_ERROR = "Error loading configuration"


def _casc_error(page: str) -> str:
    """The message of configuration-as-code's error.jelly, on one line:
    the error, the configurator, the attribute and the valid ones."""
    def text(html: str) -> str:
        return " ".join(re.sub(r"<[^>]+>", " ", html).split())

    body = page.split("</h1>", 1)[-1] if "</h1>" in page else page
    codes = [text(c) for c in re.findall(r"<code>(.*?)</code>", body, re.S)]
    first = re.search(r"<p>(.*?)<pre>", body, re.S)
    out = text(first.group(1)) if first else ""
    if codes:
        out += f" {codes[0]}"
    if len(codes) > 1:
        out += f" (attribute: {codes[1]})"
    valid = [text(li) for li in re.findall(r"<li>(.*?)</li>", body, re.S)]
    out += f"; valid: {', '.join(valid)}" if valid else ""
    return out.strip()[:600] or text(body)[:600]


def _connect_reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host",
                   "Temporary failure in name resolution", "Connection reset"):
        if marker in text:
            return marker.lower()
    return text.split("(Caused by ")[-1].rstrip(")")[:200] if "Caused by" in text else text[:200]


# --- the public API -------------------------------------------------------------------


@dataclass
class NodeState:
    """What status shows about one node."""

    name: str
    online: bool
    temporarily_offline: bool
    offline_reason: str
    labels: tuple[str, ...]
    executors: int | None
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "NodeState":
        labels = tuple(sorted(x.get("name", "") for x in data.get("assignedLabels") or []
                              if x.get("name") and x.get("name") != data.get("displayName")))
        reason = data.get("offlineCauseReason") or ""
        cause = data.get("offlineCause")
        if not reason and isinstance(cause, dict):
            reason = cause.get("description") or ""
        return cls(name=data.get("displayName", ""), online=not data.get("offline", True),
                   temporarily_offline=bool(data.get("temporarilyOffline")), offline_reason=reason,
                   labels=labels, executors=data.get("numExecutors"), description=data.get("description") or "",
                   raw=dict(data))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "online": self.online, "temporarily_offline": self.temporarily_offline,
                "offline_reason": self.offline_reason, "labels": list(self.labels), "executors": self.executors}


class JenkinsAPI:
    """Idempotent operations on one controller; safe to share across threads."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None, *,
                 timeout: float = 30.0, ready_timeout: float = 300.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if not re.match(r"^https?://", url or ""):
            raise ConfigError(f"controller URL {url!r} must start with http:// or https://")
        self.url = _display_url(url)
        self.timeout = float(timeout)
        self.ready_timeout = float(ready_timeout)
        self._clock = clock
        self._sleep = sleep
        self.server = _client_class()(url, username, password, self.timeout)

    @classmethod
    def from_config(cls, controller, environ: Mapping[str, str] | None = None, url: str | None = None) -> "JenkinsAPI":
        """From a ControllerConfig; the password comes from its SecretRef."""
        password = controller.password.resolve(environ) if controller.password else None
        if password is None:
            where = controller.password.describe() if controller.password else {}
            raise ConfigError(f"the controller password is not set ({_describe_ref(where)})",
                              hint="export the variable or create the file that controller.password names")
        return cls(url or controller.url, controller.username, password, timeout=controller.timeout,
                   ready_timeout=controller.ready_timeout)

    @property
    def requests(self) -> int:
        return self.server.requests

    # --- plumbing ---------------------------------------------------------

    def _req(self, method: str, path: str, *, data: Any = None, headers: Mapping[str, str] | None = None,
             params: Mapping[str, Any] | None = None):
        import requests

        req = requests.Request(method, self.server.server + path, data=data, headers=dict(headers or {}),
                               params=params)
        return self.server.jenkins_request(req)

    def _get_json(self, path: str) -> Any:
        resp = self._req("GET", path)
        try:
            return resp.json()
        except ValueError:
            raise JenkinsError(f"GET /{path} on {self.url} did not return JSON",
                               hint="is this URL a Jenkins controller?") from None

    # --- readiness ----------------------------------------------------------

    def wait_ready(self, timeout: float | None = None, *, starting: bool = False) -> str:
        """Wait until the controller serves its API; return its version.

        A 503 ("getting ready to work") is waited out for ``timeout`` s (default
        ready_timeout).  A refused connection is waited out too when
        ``starting`` (jenkinsctl just started the container), else it fails
        at once.  A 401 fails at once, and a read timeout is a
        :class:`Timeout` after one call's timeout: a starting Jenkins
        answers 503 quickly, a hung one never does.

        python-jenkins' own ``wait_for_normal_op`` cannot be used as is: it
        swallows 401 (and waits the whole time for a typo), and lets a
        refused connection escape as a raw requests error.
        """
        limit = self.ready_timeout if timeout is None else timeout

        def look() -> tuple[str | None, str]:
            """(the version once ready, else None; why it is not ready)."""
            try:
                resp = self._req("GET", "api/json")
                info = resp.json()
                if "mode" in info:
                    # Fetch the crumb now, single-threaded, before parallel work.
                    self.server.maybe_add_crumb(_Dummy())
                    return resp.headers.get("X-Jenkins", ""), ""
                return None, "the API answered without 'mode'"
            except JenkinsAuthError:
                raise
            except JenkinsNotFound:
                return None, "the API is not there yet (404 or not JSON)"
            except JenkinsError as exc:
                if exc.details.get("starting") or (starting and exc.details.get("unreachable")):
                    return None, exc.message
                raise
            except ValueError:
                return None, "the API is not there yet (404 or not JSON)"

        out = wait_for(look, lambda r: r[0] is not None, timeout=limit, interval=1.0,
                       clock=self._clock, sleep=self._sleep)
        version, last = out.last
        if version is None:
            raise Timeout(f"the Jenkins controller at {self.url} was not ready within {limit:g}s: {last}",
                          hint="see the controller's log (docker logs); raise controller.ready_timeout if it "
                               "is just slow", url=self.url)
        return version

    def whoami(self) -> dict[str, Any]:
        return self._get_json("me/api/json?depth=0")

    # --- nodes ----------------------------------------------------------------

    def list_nodes(self) -> list[NodeState]:
        data = self._get_json("computer/api/json?depth=0")
        return [NodeState.from_json(c) for c in data.get("computer", [])]

    def get_node(self, name: str) -> NodeState | None:
        validate_node_name(name)
        try:
            return NodeState.from_json(self._get_json(f"computer/{quote(name, safe='')}/api/json?depth=0"))
        except JenkinsNotFound:
            return None

    def node_config(self, name: str) -> str | None:
        validate_node_name(name)
        try:
            return self.server.get_node_config(name)
        except JenkinsNotFound:
            return None

    def plan_node(self, spec: NodeSpec) -> tuple[str, dict[str, tuple[Any, Any]]]:
        """("create" | "update" | "unchanged", differing fields); read-only."""
        current = self.node_config(spec.name)
        if current is None:
            return "create", {}
        diff = node_diff(spec, current)
        return ("update" if diff else "unchanged"), diff

    def ensure_node(self, spec: NodeSpec) -> str:
        """Make the node match ``spec``: "created", "updated" or "unchanged".

        Unchanged costs one GET and no POST.
        """
        import jenkins

        validate_node_name(spec.name)
        action, diff = self.plan_node(spec)
        if action == "unchanged":
            return "unchanged"
        if action == "update":
            return self._reconfigure(spec, diff)
        try:
            # fresh launcher_params: python-jenkins writes into the dict.
            self.server.create_node(spec.name, numExecutors=spec.executors, nodeDescription=spec.description,
                                    remoteFS=spec.remote_fs, labels=spec.label_string(), exclusive=spec.exclusive,
                                    launcher=SSH_LAUNCHER, launcher_params=spec.launcher_params())
        except JenkinsError as exc:
            lost_answer = bool(exc.details.get("unreachable")) and self.node_config(spec.name) is not None
            if lost_answer or (exc.details.get("status") == 400
                               and "already exists" in (exc.details.get("x_error") or exc.message)):
                # A concurrent creator won the race (or our POST worked and
                # only its answer was lost): make sure the node is what we want.
                log.info("node %s was created concurrently; comparing its config", spec.name)
                action, diff = self.plan_node(spec)
                return "unchanged" if action == "unchanged" else self._reconfigure(spec, diff)
            raise
        except jenkins.JenkinsException as exc:
            # Not an HTTP error (those are JenkinsError, caught above) but
            # python-jenkins' own checks around the POST: "node[x] already
            # exists" before it, "create[x] failed" after it.
            if "already exists" in str(exc):
                action, diff = self.plan_node(spec)
                return "unchanged" if action == "unchanged" else self._reconfigure(spec, diff)
            raise JenkinsError(f"creating node {spec.name} on {self.url} failed: {exc}") from None
        self._check_pinned(spec)
        return "created"

    def _check_pinned(self, spec: NodeSpec) -> None:
        """Read the new node back: a controller whose ssh-slaves plugin did not
        bind the host-key strategy (an unknown class, a form it ignores) falls
        back to non-verifying.  Such a node is deleted, not left to connect."""
        fields = node_fields(self.node_config(spec.name) or "<slave/>")
        if (fields.get("strategy"), fields.get("keyAlgorithm"), fields.get("key")) == \
                (MANUAL_KEY_STRATEGY, spec.host_key.algorithm, spec.host_key.key):
            return
        self.delete_node(spec.name)
        raise JenkinsError(f"the controller at {self.url} created node {spec.name} without the pinned host key "
                           f"(it stored strategy {fields.get('strategy') or 'none'}); the node was deleted again, "
                           "so it never connects unverified",
                           hint="check that the controller's ssh-slaves plugin is installed and current",
                           node=spec.name)

    def _reconfigure(self, spec: NodeSpec, diff: Mapping[str, Any]) -> str:
        current = self.node_config(spec.name)
        if current is None:  # deleted under our feet: create it
            return self.ensure_node(spec)
        log.info("node %s differs in %s; reconfiguring", spec.name, ", ".join(sorted(diff)))
        self.server.reconfig_node(spec.name, render_node_xml(spec, current))
        if any(k in _CONNECTION_FIELDS for k in diff):
            # The controller keeps the old connection (SlaveComputer.setNode):
            # connect again so the new host, port or pinned key is used now.
            self.reconnect(spec.name)
        return "updated"

    def disconnect(self, name: str, message: str = "") -> None:
        """computer/NAME/doDisconnect: close the agent's channel (nothing
        happens to a node that is not connected)."""
        validate_node_name(name)
        self._req("POST", f"computer/{quote(name, safe='')}/doDisconnect", params={"offlineMessage": message})

    def reconnect(self, name: str, timeout: float = 15.0) -> None:
        """Disconnect, wait until the controller shows the node offline (it
        closes the channel on another thread), then launch it again."""
        self.disconnect(name, "jenkinsctl: reconnecting with the changed configuration")
        # Timing out is not an error: the launch below connects it again anyway.
        wait_for(lambda: self.get_node(name), lambda node: node is None or not node.online, timeout=timeout,
                 interval=0.1, clock=self._clock, sleep=self._sleep)
        self.relaunch(name)

    def delete_node(self, name: str) -> bool:
        """Delete a node; False when it was not there."""
        validate_node_name(name)
        try:
            self._req("POST", f"computer/{quote(name, safe='')}/doDelete")
        except JenkinsNotFound:
            return False
        return True

    def disable_node(self, name: str, message: str = "") -> bool:
        """Mark temporarily offline; True if it changed.  Decided from
        temporarilyOffline: a disconnected node is offline but not disabled."""
        node = self._must_node(name)
        if node.temporarily_offline:
            return False
        self._req("POST", f"computer/{quote(name, safe='')}/toggleOffline",
                  params={"offlineMessage": message})
        return True

    def enable_node(self, name: str) -> bool:
        node = self._must_node(name)
        if not node.temporarily_offline:
            return False
        self._req("POST", f"computer/{quote(name, safe='')}/toggleOffline", params={"offlineMessage": ""})
        return True

    def relaunch(self, name: str) -> None:
        """Ask the controller to connect the agent now (Launch agent)."""
        validate_node_name(name)
        try:
            self._req("POST", f"computer/{quote(name, safe='')}/launchSlaveAgent")
        except JenkinsNotFound:
            # The answer redirects to the node's log page; a 404 there (some
            # controllers or proxies hide it) is not a failed launch.
            if self.get_node(name) is None:
                raise

    def _must_node(self, name: str) -> NodeState:
        node = self.get_node(name)
        if node is None:
            raise JenkinsError(f"no node named '{name}' on {self.url}", node=name)
        return node

    def node_log(self, name: str, lines: int = 5) -> list[str]:
        """The last lines of the node's launch log, when the controller has one."""
        try:
            text = self._req("GET", f"computer/{quote(name, safe='')}/logText/progressiveText",
                             params={"start": 0}).text
        except JenkinsError:  # no log yet (404) or none for us: a message without lines, not a second error
            return []
        return [line for line in text.splitlines() if line.strip()][-lines:]

    def wait_online(self, name: str, timeout: float, *, poll: float = 0.5) -> NodeState:
        """Wait until the node is connected; on timeout the Timeout carries the
        node's offlineCauseReason (and the last launch-log lines)."""
        out = wait_for(lambda: self.get_node(name), lambda n: n is not None and n.online, timeout=timeout,
                       interval=poll, clock=self._clock, sleep=self._sleep)
        node = out.last
        if node is not None and out.done:
            return node
        reason = "the node does not exist" if node is None else (node.offline_reason or "no reason given")
        if node is not None and node.temporarily_offline:
            reason = f"it is marked temporarily offline: {reason}"
        tail = self.node_log(name) if node is not None else []
        raise Timeout(f"node {name} did not come online within {timeout:g}s: {reason}",
                      hint="see the node's log in the controller (Manage Jenkins > Nodes > "
                           f"{name} > Log)" + ("; last lines: " + " | ".join(tail) if tail else ""),
                      node=name, offline_reason=reason, log=tail)

    # --- credentials --------------------------------------------------------------

    def _cred_path(self, cred_id: str) -> str:
        return f"{SYSTEM_STORE}/credential/{quote(cred_id, safe='')}"

    def credential_config(self, cred_id: str) -> str | None:
        try:
            return self._req("GET", self._cred_path(cred_id) + "/config.xml").text
        except JenkinsNotFound:
            return None

    def plan_credential(self, cred_id: str, username: str, private_key: str) -> str:
        current = self.credential_config(cred_id)
        if current is None:
            return "create"
        return "unchanged" if self._credential_same(current, username, private_key) else "update"

    @staticmethod
    def _credential_same(config_xml: str, username: str, private_key: str) -> bool:
        try:
            root = ET.fromstring(config_xml.encode("utf-8"))
        except ET.ParseError:
            return False
        have_user = (root.findtext("username") or "").strip()
        have_desc = (root.findtext("description") or "").strip()
        return (root.tag == SSH_CREDENTIAL_CLASS and have_user == username
                and have_desc == credential_marker(username, private_key))

    def ensure_credential(self, cred_id: str, username: str, private_key: str) -> str:
        """An SSH private-key credential in the system store: "created",
        "updated" or "unchanged".  The key is never logged or returned."""
        if not re.match(r"^[A-Za-z0-9_.-]{1,100}$", cred_id or ""):
            raise ConfigError(f"credential id {cred_id!r} is not valid",
                              hint="use letters, digits, '-', '_' and '.'")
        action = self.plan_credential(cred_id, username, private_key)
        if action == "unchanged":
            return action
        xml = render_credential_xml(cred_id, username, private_key, credential_marker(username, private_key))
        headers = {"Content-Type": "application/xml; charset=utf-8"}
        if action == "create":
            try:
                self._req("POST", f"{SYSTEM_STORE}/createCredentials", data=xml.encode("utf-8"), headers=headers)
                return "created"
            except JenkinsError as exc:
                if exc.details.get("status") != 409:
                    raise
                # Someone created it meanwhile: compare, and update if needed.
                if self.plan_credential(cred_id, username, private_key) == "unchanged":
                    return "unchanged"
        self._req("POST", self._cred_path(cred_id) + "/config.xml", data=xml.encode("utf-8"), headers=headers)
        return "updated"

    def delete_credential(self, cred_id: str) -> bool:
        try:
            self._req("POST", self._cred_path(cred_id) + "/doDelete")
        except JenkinsNotFound:
            return False
        return True


class _Dummy:
    """A stand-in request for fetching the crumb ahead of time."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}


def _describe_ref(ref: Mapping[str, str]) -> str:
    if "env" in ref:
        return f"environment variable {ref['env']} is empty or unset"
    if "file" in ref:
        return f"file {ref['file']}"
    if "credentials" in ref:
        return f"Jenkins credentials '{ref['credentials']}' are only bound inside a pipeline"
    return "controller.password is not configured"


def wait_all_online(api: JenkinsAPI, names: Iterable[str], timeout: float, *, poll: float = 0.5) -> dict[str, Any]:
    """Wait for many nodes with one shared deadline; {name: NodeState | Timeout}."""
    pending = set(names)
    result: dict[str, Any] = {}

    def look() -> set[str]:
        # One list call per round for all nodes, not one call per node.
        for node in api.list_nodes():
            if node.name in pending and node.online:
                result[node.name] = node
                pending.discard(node.name)
        return pending

    if pending:
        wait_for(look, lambda left: not left, timeout=timeout, interval=poll, clock=api._clock, sleep=api._sleep)
    for name in sorted(pending):
        try:
            result[name] = api.wait_online(name, 0)
        except Timeout as exc:
            result[name] = Timeout(exc.message.replace("within 0s", f"within {timeout:g}s"), hint=exc.hint,
                                   **exc.details)
    return result
