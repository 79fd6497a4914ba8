"""A Jenkins controller emulator: the REST API that python-jenkins 1.8.3 uses.

Behaviour follows ``shared/REFERENCE.md`` section 3 and the Jenkins / plugin
sources it names.  The order of checks is the real one: start-up (503), the
basic-auth filter (401), the CSRF crumb filter for POSTs (403), the mandatory
Overall/Read check (403 "Authentication required" for anonymous), dispatch to
the object (404), then the action's own permission check (403 "... is
missing the X permission").
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

from . import model
from .model import HttpError, failure
from .version import PINNED

# The core version pinned for the controller jenkinsctl runs (version.py):
# the emulator is that Jenkins, with those plugins.
JENKINS_VERSION = PINNED.core
CRUMB_FIELD = "Jenkins-Crumb"

# Permission id -> title, as Jenkins words them in 403 answers.
READ = "hudson.model.Hudson.Read"
ADMINISTER = "hudson.model.Hudson.Administer"
COMPUTER_CREATE = "hudson.model.Computer.Create"
COMPUTER_DELETE = "hudson.model.Computer.Delete"
COMPUTER_CONFIGURE = "hudson.model.Computer.Configure"
COMPUTER_EXTENDED_READ = "hudson.model.Computer.ExtendedRead"
COMPUTER_CONNECT = "hudson.model.Computer.Connect"
COMPUTER_DISCONNECT = "hudson.model.Computer.Disconnect"
CRED_CREATE = "com.cloudbees.plugins.credentials.CredentialsProvider.Create"
CRED_UPDATE = "com.cloudbees.plugins.credentials.CredentialsProvider.Update"
CRED_VIEW = "com.cloudbees.plugins.credentials.CredentialsProvider.View"
CRED_DELETE = "com.cloudbees.plugins.credentials.CredentialsProvider.Delete"
PERMISSION_TITLES = {
    READ: "Overall/Read",
    ADMINISTER: "Overall/Administer",
    COMPUTER_CREATE: "Agent/Create",
    COMPUTER_DELETE: "Agent/Delete",
    COMPUTER_CONFIGURE: "Agent/Configure",
    COMPUTER_EXTENDED_READ: "Agent/ExtendedRead",
    COMPUTER_CONNECT: "Agent/Connect",
    COMPUTER_DISCONNECT: "Agent/Disconnect",
    CRED_CREATE: "Credentials/Create",
    CRED_UPDATE: "Credentials/Update",
    CRED_VIEW: "Credentials/View",
    CRED_DELETE: "Credentials/Delete",
}
ROLES = {"admin": set(PERMISSION_TITLES), "read": {READ}, "none": set()}

BUILT_IN_NAMES = ("(master)", "(built-in)", "")


@dataclass
class User:
    """A user of the Jenkins' own user database.  ``role`` is ``admin`` (may
    do anything) or ``read`` (Overall/Read only)."""

    name: str
    password: Optional[str] = None
    tokens: tuple = ()
    role: str = "admin"
    full_name: Optional[str] = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {sorted(ROLES)}, got {self.role!r}")
        self.tokens = tuple(self.tokens)


@dataclass
class Computer:
    """A node's configuration plus its runtime (connection) state."""

    config: model.NodeConfig
    connected: bool = False
    launching: bool = False
    temporarily_offline: bool = False
    user_offline_cause: Optional[dict] = None
    user_offline_reason: str = ""
    temp: Optional[tuple] = None
    launch_failure: Optional[str] = None
    generation: int = 0
    launch_attempts: int = 0  # SSH connection attempts, retries included
    launches: int = 0  # launches started (create, config change, relaunch)
    log: list = field(default_factory=list)
    security_warnings: list = field(default_factory=list)
    trusted_key: Optional[tuple] = None  # ManuallyTrusted: key seen on first connect
    channel: Optional[Any] = None  # launcher.Channel of an online SSH agent
    channel_broken: bool = False  # the channel ended by itself
    disconnect_cause: Optional[dict] = None  # doDisconnect's UserCause
    disconnect_reason: str = ""

    @property
    def offline(self) -> bool:
        return self.temporarily_offline or not self.connected

    def set_temp_offline(self, temp: Optional[tuple]) -> None:
        """Node.setTemporaryOfflineCause; ``temp`` is (class, userId, message, timestamp ms)."""
        self.temp = temp
        if temp is None:
            self.temporarily_offline = False
            self.user_offline_cause, self.user_offline_reason = None, ""
            return
        cls, user, msg, ts = temp
        self.temporarily_offline = True
        self.user_offline_cause = {"_class": cls, "description": f"Disconnected by {user or 'anonymous'}"
                                   + (f" : {msg}" if msg else ""), "timestamp": ts}
        # UserCause.getMessage(): Util.escape(message)
        self.user_offline_reason = _util_escape(msg or "")

    def offline_cause(self) -> tuple[Optional[dict], str]:
        if self.temporarily_offline and self.user_offline_cause is not None:
            return self.user_offline_cause, self.user_offline_reason
        if not self.connected and self.disconnect_cause is not None:
            return self.disconnect_cause, self.disconnect_reason
        if not self.connected and self.channel_broken:
            return {"_class": "hudson.slaves.OfflineCause$ChannelTermination",
                    "description": self.launch_failure}, self.launch_failure or ""
        if not self.connected and self.launch_failure is not None:
            # A real controller puts the details into the agent log and says
            # only "failed to launch"; the emulator repeats the actionable line.
            return {"_class": "hudson.slaves.OfflineCause$LaunchFailed"}, self.launch_failure
        return None, ""


class _Answer:
    def __init__(self, status: int = 200, body: Any = b"", ctype: str = "text/html;charset=utf-8",
                 headers: Optional[dict] = None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            ctype = "application/json;charset=utf-8"
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.status, self.body, self.ctype, self.headers = status, body, ctype, dict(headers or {})


def _page(title: str) -> _Answer:
    return _Answer(200, f"<!DOCTYPE html><html><head><title>{title} [Jenkins]</title></head><body>{title}</body></html>")


def _redirect(location: str) -> _Answer:
    return _Answer(302, b"", headers={"Location": location})


class FakeJenkins:
    """The emulator.  Use as a context manager, or ``start()`` / ``stop()``.

    ``time_scale`` multiplies the SSH launcher's ``retryWaitTime`` so tests
    need not wait 15 s between retries; the launch timeout is not scaled.
    """

    def __init__(
        self,
        users: Optional[list] = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        crumbs: bool = True,
        startup_seconds: float = 0,
        version: str = JENKINS_VERSION,
        time_scale: float = 1.0,
        known_hosts: Optional[str] = None,
        casc: Optional[str] = None,
        environ: Optional[dict] = None,
    ):
        self.users = {u.name: u for u in (users if users is not None else [User("admin", "admin")])}
        self.host, self.port = host, port
        self.crumbs = crumbs
        self.version = version
        self.time_scale = time_scale
        self.known_hosts = known_hosts
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.computers: dict[str, Computer] = {}
        self.credentials: dict[str, model.Credential] = {}
        self.requests: list[dict] = []
        self.security_warnings: list[dict] = []
        self.hanging = False
        self._stop = threading.Event()
        self._sessions: dict[str, str] = {}  # JSESSIONID value -> user
        self._crumb_salt = secrets.token_bytes(16)
        self._cookie_name = "JSESSIONID." + secrets.token_hex(4)
        self._instance = secrets.token_hex(4)
        self._ready_at = time.monotonic() + startup_seconds
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        # Configuration-as-Code: the CASC_JENKINS_CONFIG value, the
        # environment its ${...} see, and what the controller's log shows.
        self.casc = casc
        self.environ = dict(environ if environ is not None else {})
        self.log_lines: list[str] = []
        self.boot_failure = None  # a casc.ConfiguratorError: every page answers 503
        self.num_executors = 0
        self.mode = "NORMAL"
        self.system_message: Optional[str] = None
        self.slave_agent_port = -1
        self.libraries: list[dict] = []
        # hudson.markup.EscapedMarkupFormatter, core's default: escapes all HTML.
        self.markup_formatter = "plainText"

    # --- lifecycle -------------------------------------------------------

    def start(self) -> "FakeJenkins":
        if self.casc:
            # ConfigurationAsCode.init runs before Jenkins serves anything;
            # a failure is a BootFailure, answered on every URL.
            from .casc import ConfiguratorError

            try:
                self.configure()
            except ConfiguratorError as exc:
                self.boot_failure = exc
                self.log("SEVERE", "hudson.util.BootFailure#publish", "Failed to initialize Jenkins\n"
                         f"io.jenkins.plugins.casc.ConfigurationAsCodeBootFailure: {exc.java_text}")
        handler = type("Handler", (_Handler,), {"emu": self})
        self._httpd = ThreadingHTTPServer((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fakejenkins", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self.lock:
            for c in self.computers.values():
                c.generation += 1  # running launches give up
                if c.channel is not None:
                    c.channel.close()
                    c.channel = None
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeJenkins":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def serve_forever(self) -> None:
        self.start()
        try:
            while not self._stop.wait(3600):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/"

    def restart(self, startup_seconds: float) -> None:
        """Answer 503 again for ``startup_seconds``, as during a restart."""
        self._ready_at = time.monotonic() + startup_seconds

    @property
    def ready(self) -> bool:
        return time.monotonic() >= self._ready_at

    # --- Configuration-as-Code ------------------------------------------------

    def log(self, level: str, where: str, message: str) -> None:
        """A line of the controller's log (stderr too, so `docker logs` shows it)."""
        import sys

        from .casc import log_line

        line = log_line(level, where, message)
        with self.lock:
            self.log_lines.append(line)
        print(line, file=sys.stderr, flush=True)

    def configure(self) -> None:
        """ConfigurationAsCode.configure(): read, check, then apply; raises
        casc.ConfiguratorError and changes nothing when the files are bad."""
        from . import casc_apply

        casc_apply.configure(self)

    # --- request log -------------------------------------------------------

    def posts(self) -> list[dict]:
        """The mutating requests received so far (not the emulator's own endpoints)."""
        with self.lock:
            return [r for r in self.requests if r["method"] not in ("GET", "HEAD")]

    def clear_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    # --- state helpers for tests --------------------------------------------

    def computer(self, name: str) -> Computer:
        with self.lock:
            return self.computers[name]

    def wait_for_launch(self, name: str, timeout: float = 30) -> Computer:
        """Block until the node's launch (with its retries) has finished."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                c = self.computers.get(name)
                if c is None:
                    raise KeyError(f"no node {name!r}")
                if not c.launching:
                    return c
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"node {name!r} still launching after {timeout}s; log:\n" + "\n".join(c.log))
                self.changed.wait(left)

    def set_connected(self, name: str, connected: bool = True) -> None:
        """Pretend an agent (re)connected or dropped, without SSH; for tests of
        the API alone."""
        with self.lock:
            c = self.computers[name]
            c.generation += 1
            c.launching = False
            c.connected = connected
            c.launch_failure = None
            self.changed.notify_all()

    def state(self) -> dict:
        with self.lock:
            nodes = {}
            for name, c in self.computers.items():
                cause, reason = c.offline_cause()
                nodes[name] = {
                    "online": not c.offline, "connected": c.connected, "launching": c.launching,
                    "temporarilyOffline": c.temporarily_offline, "offlineCauseReason": reason,
                    "launchAttempts": c.launch_attempts, "securityWarnings": list(c.security_warnings),
                    "log": list(c.log),
                }
            return {"version": self.version, "ready": self.ready, "nodes": nodes,
                    "bootFailure": str(self.boot_failure) if self.boot_failure else None,
                    "users": {u.name: {"role": u.role, "hasPassword": u.password is not None}
                              for u in self.users.values()},
                    "numExecutors": self.num_executors, "mode": self.mode, "slaveAgentPort": self.slave_agent_port,
                    "systemMessage": self.system_message, "crumbs": self.crumbs, "libraries": list(self.libraries),
                    "markupFormatter": self.markup_formatter,
                    "log": list(self.log_lines),
                    "credentials": sorted(self.credentials), "securityWarnings": list(self.security_warnings)}

    # --- node lifecycle -------------------------------------------------------

    def add_node(self, cfg: model.NodeConfig) -> None:
        with self.lock:
            self.computers[cfg.name] = Computer(cfg)
            self._launch(cfg.name)

    def relaunch(self, name: str) -> bool:
        """``launchSlaveAgent``: connect(true); False when the agent is
        connected already (SlaveComputer.doLaunchSlaveAgent)."""
        with self.lock:
            return self._launch(name, force=True)

    def disconnect(self, name: str, cause: Optional[dict] = None, reason: str = "") -> None:
        """SlaveComputer.disconnect: close the channel; the node stays
        offline until it is launched again."""
        with self.lock:
            c = self.computers[name]
            c.generation += 1
            c.launching = False
            if c.channel is not None:
                c.channel.close()
                c.channel = None
            if c.connected:
                c.log.append(f"[{time.strftime('%m/%d/%y %H:%M:%S')}] [SSH] Connection closed.")
            c.connected = False
            c.disconnect_cause = cause
            c.disconnect_reason = reason
            self.changed.notify_all()

    def retention_check(self, name: str) -> None:
        """RetentionStrategy.Always.check (run by SlaveComputer.setNode after
        a configuration change): launch an offline node that is not
        connecting; a connected one keeps its connection."""
        with self.lock:
            c = self.computers[name]
            if not c.connected and not c.launching:
                self._launch(name)

    def _launch(self, name: str, force: bool = False) -> bool:
        from . import launcher

        c = self.computers[name]
        if c.connected:
            # SSHLauncher.launch with a live connection: Messages.SSHLauncher_alreadyConnected
            c.log.append("The Agent is connected, disconnect it before to try to connect it again.")
            return False
        if c.launching and not force:
            return True
        c.disconnect_cause = None
        c.channel_broken = False
        c.generation += 1
        c.launches += 1
        c.connected = False
        c.launch_failure = None
        c.security_warnings.clear()
        la = c.config.launcher
        if la.cls == model.SSH_LAUNCHER:
            c.launching = True
            gen = c.generation
            threading.Thread(target=launcher.launch, args=(self, name, gen), name=f"launch-{name}", daemon=True).start()
        elif la.cls == model.JNLP_LAUNCHER:
            c.log.append("Waiting for an inbound agent to connect (the emulator never connects one).")
        else:
            c.launch_failure = "The emulator does not run CommandLauncher commands on the controller."
            c.log.append(c.launch_failure)
        self.changed.notify_all()
        return True

    def launch_update(self, name: str, generation: int, fn: Callable[[Computer], None]) -> bool:
        """Apply ``fn`` to the node if the launch is still current; False if
        the node was deleted, changed or relaunched meanwhile."""
        with self.lock:
            c = self.computers.get(name)
            if c is None or c.generation != generation or self._stop.is_set():
                return False
            fn(c)
            self.changed.notify_all()
            return True

    # --- auth ---------------------------------------------------------------

    def _crumb(self, user: str, session: str) -> str:
        return hmac.new(self._crumb_salt, f"{user};{session}".encode(), hashlib.sha256).hexdigest()


class _Ctx:
    """One request: who asked, what, and with which session."""

    def __init__(self, handler: "_Handler", method: str):
        self.method = method
        raw = handler.path
        parsed = urllib.parse.urlsplit(raw)
        self.raw_path = raw
        self.segments = [urllib.parse.unquote(s) for s in parsed.path.split("/")[1:]]
        self.query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        if length and hasattr(socket, "TCP_QUICKACK"):
            # urllib3 sends a POST's headers and body in two writes; ACK the
            # first at once or the client's Nagle waits out our delayed ACK.
            try:
                handler.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            except OSError:
                pass
        self.body = handler.rfile.read(length) if length else b""
        self.headers = handler.headers
        self.user: Optional[str] = None
        self.auth = "anonymous"
        self.session: Optional[str] = None
        self._form: Optional[dict] = None

    @property
    def ctype(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def form(self) -> dict:
        if self._form is None:
            self._form = {}
            if self.ctype == "application/x-www-form-urlencoded":
                self._form = urllib.parse.parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return self._form

    def param(self, name: str) -> Optional[str]:
        for src in (self.query, self.form()):
            if name in src:
                return src[name][0]
        return None


class _Handler(BaseHTTPRequestHandler):
    emu: FakeJenkins
    protocol_version = "HTTP/1.1"
    server_version = "Jetty(12.0.16)"
    sys_version = ""

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if hasattr(socket, "TCP_QUICKACK"):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    def handle_one_request(self) -> None:
        if hasattr(socket, "TCP_QUICKACK"):  # the kernel clears it; see _Ctx
            try:
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            except OSError:
                pass
        super().handle_one_request()

    def send_header(self, keyword: str, value: str) -> None:
        # Jetty writes header values such as X-Error's ‘NAME’ as UTF-8 bytes;
        # http.server would refuse anything outside latin-1.
        if self.request_version != "HTTP/0.9":
            if not hasattr(self, "_headers_buffer"):
                self._headers_buffer = []
            # Jetty writes header values as ISO-8859-1 and replaces what it
            # cannot encode (X-Error's ‘NAME’ quotes) with spaces.
            value = "".join(ch if ord(ch) <= 0xFF else " " for ch in str(value))
            self._headers_buffer.append(f"{keyword}: {value}\r\n".encode("latin-1"))
        if keyword.lower() == "connection":
            if value.lower() == "close":
                self.close_connection = True
            elif value.lower() == "keep-alive":
                self.close_connection = False

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --- plumbing --------------------------------------------------------------

    def _send(self, ctx: _Ctx, ans: _Answer, log: bool = True) -> None:
        emu = self.emu
        if log:
            # Logged before the answer goes out, so a client that has its
            # answer always finds the request in the log.
            with emu.lock:
                emu.requests.append({"method": ctx.method, "path": ctx.raw_path, "user": ctx.user or "anonymous",
                                     "auth": ctx.auth, "status": ans.status, "time": time.time()})
        self.send_response(ans.status)
        self.send_header("X-Jenkins", emu.version)
        self.send_header("X-Hudson", "1.395")
        self.send_header("X-Jenkins-Session", emu._instance)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Type", ans.ctype)
        for k, v in ans.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(ans.body)))
        # Headers and body in one write: two small writes meet the client's
        # delayed ACK (Nagle) and cost 40 ms a request.
        self._headers_buffer.append(b"\r\n")
        if ctx.method != "HEAD":
            self._headers_buffer.append(ans.body)
        self.flush_headers()

    def _error(self, err: HttpError) -> _Answer:
        reason = self.responses.get(err.status, ("",))[0]
        body = (f"<html><head><title>Error {err.status} {reason}</title></head><body>"
                f"<h2>HTTP ERROR {err.status} {_html(err.message)}</h2></body></html>")
        return _Answer(err.status, body, headers=err.headers)

    def _dispatch(self, method: str) -> None:
        emu = self.emu
        ctx = _Ctx(self, method)
        if ctx.segments[:1] == ["_emulator"]:
            try:
                ans = self._emulator(ctx)
            except HttpError as err:
                ans = self._error(err)
            self._send(ctx, ans, log=False)
            return
        if emu.hanging:
            # Accept, read, never answer; drop the connection at shutdown.
            emu._stop.wait()
            self.close_connection = True
            return
        try:
            ans = self._handle(ctx)
        except HttpError as err:
            ans = self._error(err)
        except Exception as exc:  # an emulator bug must show, like Jenkins' oops page
            ans = self._error(HttpError(500, f"emulator error: {type(exc).__name__}: {exc}"))
        self._send(ctx, ans)

    # --- the checks, in the real order -------------------------------------------

    def _handle(self, ctx: _Ctx) -> _Answer:
        emu = self.emu
        if emu.boot_failure is not None:
            return _casc_error_page(emu.boot_failure, 503)
        if not emu.ready:
            return _Answer(503, "<html><head><title>Starting Jenkins</title></head><body>"
                                "<h1>Please wait while Jenkins is getting ready to work</h1>"
                                "<p>Your browser will reload automatically when Jenkins is ready.</p></body></html>",
                           headers={"Retry-After": "10"})
        self._authenticate(ctx)
        self._session(ctx)
        if ctx.method == "POST" and emu.crumbs and ctx.auth != "token":
            crumb = ctx.headers.get(CRUMB_FIELD) or ctx.param(CRUMB_FIELD)
            session_user = emu._sessions.get(ctx.session or "")
            good = (crumb is not None and ctx.session is not None and session_user == (ctx.user or "anonymous")
                    and hmac.compare_digest(crumb, emu._crumb(ctx.user or "anonymous", ctx.session)))
            if not good:
                raise HttpError(403, "No valid crumb was included in the request")
        if ctx.user is None:
            raise HttpError(403, "Authentication required", headers={
                "X-You-Are-Authenticated-As": "anonymous", "X-You-Are-In-Group-Disabled": "JENKINS-39402: use -Dhudson.security.AccessDeniedException2.REPORT_GROUP_HEADERS=true or use /whoAmI to diagnose",
                "X-Required-Permission": READ, "X-Permission-Implied-By": ADMINISTER})
        return self._route(ctx)

    def _authenticate(self, ctx: _Ctx) -> None:
        header = ctx.headers.get("Authorization")
        if not header:
            return
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return
        try:
            name, _, secret = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            raise HttpError(401, "Invalid authorization header") from None
        user = self.emu.users.get(name)
        if user is not None and secret in user.tokens:
            ctx.user, ctx.auth = name, "token"
        elif user is not None and user.password is not None and secret == user.password:
            ctx.user, ctx.auth = name, "password"
        else:
            ctx.user = None
            raise HttpError(401, f"Invalid password/token for user: {name}",
                            headers={"WWW-Authenticate": 'Basic realm="Jenkins"'})

    def _session(self, ctx: _Ctx) -> None:
        cookies = ctx.headers.get("Cookie") or ""
        for part in cookies.split(";"):
            k, _, v = part.strip().partition("=")
            if k == self.emu._cookie_name and v in self.emu._sessions:
                ctx.session = v

    def _require(self, ctx: _Ctx, perm: str) -> None:
        user = self.emu.users[ctx.user] if ctx.user else None
        if user is None or perm not in ROLES[user.role]:
            who = ctx.user or "anonymous"
            raise HttpError(403, f"{who} is missing the {PERMISSION_TITLES[perm]} permission", headers={
                "X-You-Are-Authenticated-As": who, "X-Required-Permission": perm,
                "X-Permission-Implied-By": ADMINISTER})

    # --- routes -----------------------------------------------------------------

    def _route(self, ctx: _Ctx) -> _Answer:
        seg = [s for s in ctx.segments]
        if seg and seg[-1] == "":
            seg = seg[:-1]
        get = ctx.method in ("GET", "HEAD")
        post = ctx.method == "POST"
        if seg and seg[0] == "manage" and seg[1:2] == ["credentials"]:
            seg = seg[1:]

        if not seg:
            return _page("Dashboard") if get else self._no_such(ctx)
        if seg == ["api", "json"] and get:
            self._require(ctx, READ)
            return _Answer(200, _tree(self._hudson_json(), ctx))
        if seg == ["me", "api", "json"] and get:
            u = self.emu.users[ctx.user]
            return _Answer(200, _tree({
                "_class": "hudson.model.User", "absoluteUrl": self.emu.url + "user/" + urllib.parse.quote(u.name),
                "description": None, "fullName": u.full_name or u.name, "id": u.name, "property": []}, ctx))
        if seg == ["crumbIssuer", "api", "json"] and get:
            return self._crumb_issuer(ctx)
        if seg[0] == "computer":
            return self._computers(ctx, seg[1:], get, post)
        if seg[:5] == ["credentials", "store", "system", "domain", "_"]:
            return self._credentials(ctx, seg[5:], get, post)
        if seg == ["configuration-as-code", "reload"]:
            return self._casc_reload(ctx, post)
        return self._no_such(ctx)

    def _casc_reload(self, ctx: _Ctx, post: bool) -> _Answer:
        """ConfigurationAsCode.doReload: @RequirePOST, Overall/Manage, then
        configure(); a failure is logged and shown on error.jelly."""
        from .casc import ConfiguratorError

        if not post:
            raise HttpError(405, "This URL requires POST")
        self._require(ctx, ADMINISTER)
        if not self.emu.casc:
            # Without CASC_JENKINS_CONFIG (or $JENKINS_HOME/jenkins.yaml) there is nothing to apply.
            return _redirect("")
        try:
            self.emu.configure()
        except ConfiguratorError as exc:
            self.emu.log("SEVERE", "io.jenkins.plugins.casc.ConfigurationAsCode#doReload",
                         f"Failed to reload configuration\n{exc.java_text}")
            return _casc_error_page(exc, 200)
        return _redirect("")

    def _no_such(self, ctx: _Ctx) -> _Answer:
        raise HttpError(404, "Not Found")

    def _hudson_json(self) -> dict:
        emu = self.emu
        return {
            "_class": "hudson.model.Hudson", "assignedLabels": [{"name": "built-in"}], "mode": emu.mode,
            "nodeDescription": "the Jenkins controller's built-in node", "nodeName": "",
            "numExecutors": emu.num_executors, "description": emu.system_message, "jobs": [], "overallLoad": {},
            "primaryView": {"_class": "hudson.model.AllView", "name": "all", "url": emu.url},
            "quietDownReason": None, "quietingDown": False, "slaveAgentPort": emu.slave_agent_port, "unlabeledLoad": {"_class": "jenkins.model.UnlabeledLoadStatistics"},
            "url": emu.url, "useCrumbs": emu.crumbs, "useSecurity": True,
            "views": [{"_class": "hudson.model.AllView", "name": "all", "url": emu.url}],
        }

    def _crumb_issuer(self, ctx: _Ctx) -> _Answer:
        emu = self.emu
        if not emu.crumbs:
            raise HttpError(404, "Not Found")
        headers = {}
        with emu.lock:
            if ctx.session is None or emu._sessions.get(ctx.session) != ctx.user:
                ctx.session = "node0" + secrets.token_hex(12) + ".node0"
                emu._sessions[ctx.session] = ctx.user or "anonymous"
                headers["Set-Cookie"] = f"{emu._cookie_name}={ctx.session}; Path=/; HttpOnly"
        body = {"_class": "hudson.security.csrf.DefaultCrumbIssuer",
                "crumb": emu._crumb(ctx.user or "anonymous", ctx.session), "crumbRequestField": CRUMB_FIELD}
        return _Answer(200, body, headers=headers)

    # --- computers -----------------------------------------------------------------

    def _master_json(self) -> dict:
        return {
            "_class": "hudson.model.Hudson$MasterComputer", "actions": [], "assignedLabels": [{"name": "built-in"}],
            "description": "the Jenkins controller's built-in node", "displayName": "Built-In Node", "executors": [],
            "icon": "symbol-computer", "iconClassName": "symbol-computer", "idle": True, "jnlpAgent": False,
            "launchSupported": True, "loadStatistics": {"_class": "hudson.model.Label$1"}, "manualLaunchAllowed": True,
            "monitorData": {}, "numExecutors": self.emu.num_executors, "offline": False, "offlineCause": None,
            "offlineCauseReason": "",
            "oneOffExecutors": [], "temporarilyOffline": False,
        }

    def _computer_json(self, c: Computer) -> dict:
        cfg = c.config
        cause, reason = c.offline_cause()
        icon = "symbol-computer-offline" if c.offline else "symbol-computer"
        jnlp = cfg.launcher.cls == model.JNLP_LAUNCHER
        return {
            "_class": "hudson.slaves.SlaveComputer", "actions": [],
            "assignedLabels": [{"name": n} for n in cfg.labels], "description": cfg.description,
            "displayName": cfg.name, "executors": [{}] * cfg.num_executors if c.connected else [],
            "icon": icon, "iconClassName": icon, "idle": True, "jnlpAgent": jnlp, "launchSupported": not jnlp,
            "loadStatistics": {"_class": "hudson.model.Label$1"}, "manualLaunchAllowed": True, "monitorData": {},
            "numExecutors": cfg.num_executors, "offline": c.offline, "offlineCause": cause,
            "offlineCauseReason": reason, "oneOffExecutors": [], "temporarilyOffline": c.temporarily_offline,
            "absoluteRemotePath": cfg.remote_fs if c.connected else None,
        }

    def _computers(self, ctx: _Ctx, seg: list, get: bool, post: bool) -> _Answer:
        emu = self.emu
        self._require(ctx, READ)
        if not seg:
            return _page("Nodes") if get else self._no_such(ctx)
        if seg == ["api", "json"] and get:
            with emu.lock:
                comps = [self._master_json()] + [self._computer_json(c) for c in emu.computers.values()]
                total = sum(c.config.num_executors for c in emu.computers.values() if not c.offline)
            return _Answer(200, _tree({"_class": "hudson.model.ComputerSet", "busyExecutors": 0, "computer": comps,
                                       "displayName": "Nodes", "totalExecutors": total}, ctx))
        if seg == ["doCreateItem"]:
            if not post:
                # ComputerSet.doDoCreateItem is @POST: other verbs find no action.
                raise HttpError(404, "Not Found")
            return self._create_node(ctx)
        name, rest = seg[0], seg[1:]
        if name in BUILT_IN_NAMES:
            if rest == ["api", "json"] and get:
                return _Answer(200, _tree(self._master_json(), ctx))
            if not rest and get:
                return _page("Built-In Node")
            return self._no_such(ctx)
        with emu.lock:
            c = emu.computers.get(name)
        if c is None:
            raise HttpError(404, "Not Found")
        if not rest:
            return _page(name) if get else self._no_such(ctx)
        if rest == ["api", "json"] and get:
            with emu.lock:
                return _Answer(200, _tree(self._computer_json(c), ctx))
        if rest == ["config.xml"]:
            if get:
                self._require(ctx, COMPUTER_EXTENDED_READ)
                import dataclasses

                with emu.lock:
                    cfg = dataclasses.replace(c.config, temp_offline=c.temp)
                    return _Answer(200, model.node_to_xml(cfg), ctype="application/xml;charset=utf-8")
            if post:
                self._require(ctx, COMPUTER_CONFIGURE)
                return self._reconfigure(ctx, name)
            return self._no_such(ctx)
        if rest == ["logText", "progressiveText"] and get:
            # AnnotatedLargeText.doProgressiveText: the bytes from ?start=,
            # X-Text-Size the total, so the next call continues there.
            with emu.lock:
                data = "".join(line + "\n" for line in c.log).encode()
                more = c.launching
            start = ctx.param("start") or "0"
            try:
                offset = max(0, int(start))
            except ValueError:
                offset = 0
            return _Answer(200, data[offset:], ctype="text/plain;charset=utf-8",
                           headers={"X-Text-Size": str(len(data)), "X-More-Data": "true" if more else "false"})
        actions = {"doDelete": self._delete_node, "toggleOffline": self._toggle_offline,
                   "launchSlaveAgent": self._launch_agent, "doDisconnect": self._disconnect}
        if len(rest) == 1 and rest[0] in actions:
            if not post:
                raise HttpError(405, "This URL requires POST")
            return actions[rest[0]](ctx, name)
        return self._no_such(ctx)

    def _create_node(self, ctx: _Ctx) -> _Answer:
        emu = self.emu
        self._require(ctx, COMPUTER_CREATE)
        name = model.check_good_name(ctx.param("name"))
        with emu.lock:
            if name in emu.computers or name in BUILT_IN_NAMES:
                raise failure(f"Agent called ‘{name}’ already exists")
        node_type = ctx.param("type")
        if node_type not in model.NODE_TYPES:
            raise HttpError(500, f"java.lang.NullPointerException: no node type {node_type!r} is known")
        raw = ctx.param("json")
        if raw is None:
            raise HttpError(500, "javax.servlet.ServletException: This page expects a form submission but had only {}")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise HttpError(500, f"net.sf.json.JSONException: {exc}") from None
        cfg = model.bind_node_form(name, data, ctx.user)
        with emu.lock:
            if name in emu.computers:  # lost a race with a concurrent create
                raise failure(f"Agent called ‘{name}’ already exists")
            emu.add_node(cfg)
        return _redirect(".")

    def _delete_node(self, ctx: _Ctx, name: str) -> _Answer:
        emu = self.emu
        self._require(ctx, COMPUTER_DELETE)
        with emu.lock:
            c = emu.computers.pop(name, None)
            if c is None:
                raise HttpError(404, "Not Found")
            c.generation += 1
            if c.channel is not None:
                c.channel.close()
                c.channel = None
            emu.changed.notify_all()
        return _redirect("..")

    def _toggle_offline(self, ctx: _Ctx, name: str) -> _Answer:
        emu = self.emu
        with emu.lock:
            c = emu.computers[name]
            if not c.temporarily_offline:
                self._require(ctx, COMPUTER_DISCONNECT)
                msg = (ctx.param("offlineMessage") or "").strip() or None
                c.set_temp_offline(("hudson.slaves.OfflineCause$UserCause", ctx.user, msg, int(time.time() * 1000)))
            else:
                self._require(ctx, COMPUTER_CONNECT)
                c.set_temp_offline(None)
            emu.changed.notify_all()
        return _redirect(".")

    def _launch_agent(self, ctx: _Ctx, name: str) -> _Answer:
        self._require(ctx, COMPUTER_CONNECT)
        if not self.emu.relaunch(name):
            # SlaveComputer.doLaunchSlaveAgent with a channel: already-launched.jelly
            return _page("Already launched")
        return _redirect("log")

    def _disconnect(self, ctx: _Ctx, name: str) -> _Answer:
        """SlaveComputer.doDoDisconnect: does nothing for a disconnected node."""
        emu = self.emu
        with emu.lock:
            connected = emu.computers[name].connected
        if connected:
            self._require(ctx, COMPUTER_DISCONNECT)
            msg = (ctx.param("offlineMessage") or "").strip()
            emu.disconnect(name, {"_class": "hudson.slaves.OfflineCause$UserCause",
                                  "description": f"Disconnected by {ctx.user}" + (f" : {msg}" if msg else "")},
                           msg)
        return _redirect(".")

    def _reconfigure(self, ctx: _Ctx, name: str) -> _Answer:
        emu = self.emu
        cfg = model.node_from_xml(ctx.body)
        with emu.lock:
            c = emu.computers.get(name)
            if c is None:
                raise HttpError(404, "Not Found")
            if cfg.name != name:
                model.check_good_name(cfg.name)
                if cfg.name in emu.computers or cfg.name in BUILT_IN_NAMES:
                    raise failure(f"Agent called ‘{cfg.name}’ already exists")
                del emu.computers[name]
                emu.computers[cfg.name] = c
            c.config = cfg
            # temporaryOfflineCause is part of the node: a config.xml without
            # it brings a disabled node back.
            c.set_temp_offline(cfg.temp_offline)
            # Jenkins.updateNode -> SlaveComputer.setNode: the computer (and a
            # live channel) stays; only an offline node is launched again.
            emu.retention_check(cfg.name)
        return _Answer(200, b"")

    # --- credentials ------------------------------------------------------------------

    def _credentials(self, ctx: _Ctx, seg: list, get: bool, post: bool) -> _Answer:
        emu = self.emu
        self._require(ctx, READ)
        if not seg:
            return _page("Global credentials (unrestricted)") if get else self._no_such(ctx)
        if seg == ["api", "json"] and get:
            self._require(ctx, CRED_VIEW)
            with emu.lock:
                creds = [{"id": c.id} for c in emu.credentials.values()]
            return _Answer(200, _tree({"_class": "com.cloudbees.plugins.credentials.CredentialsStoreAction$DomainWrapper",
                                       "credentials": creds, "description": None, "displayName": "Global credentials (unrestricted)",
                                       "fullDisplayName": "System » Global credentials (unrestricted)", "fullName": "system/_",
                                       "global": True, "urlName": "_"}, ctx))
        if seg == ["createCredentials"]:
            if not post:
                raise HttpError(405, "This URL requires POST")
            self._require(ctx, CRED_CREATE)
            self._require_xml(ctx)
            cred = model.credential_from_xml(ctx.body)
            with emu.lock:
                if cred.id in emu.credentials:
                    raise HttpError(409, f"A credential with the id ‘{cred.id}’ already exists in this domain")
                emu.credentials[cred.id] = cred
            return _Answer(200, b"")
        if seg[0] != "credential" or len(seg) < 2:
            return self._no_such(ctx)
        cid, rest = seg[1], seg[2:]
        with emu.lock:
            cred = emu.credentials.get(cid)
        if cred is None:
            raise HttpError(404, "Not Found")
        if not rest and get:
            self._require(ctx, CRED_VIEW)
            return _page(cred.display_name)
        if rest == ["api", "json"] and get:
            self._require(ctx, CRED_VIEW)
            return _Answer(200, _tree(cred.api_json(), ctx))
        if rest == ["config.xml"] and get:
            self._require(ctx, CRED_UPDATE)
            return _Answer(200, cred.to_xml(), ctype="application/xml;charset=utf-8")
        if rest == ["config.xml"] and post:
            self._require(ctx, CRED_UPDATE)
            self._require_xml(ctx)
            new = model.credential_from_xml(ctx.body)
            if new.id != cid:
                raise failure(f"The id in the XML (‘{new.id}’) differs from the credential’s id ‘{cid}’")
            with emu.lock:
                emu.credentials[cid] = new
            return _Answer(200, b"")
        if rest == ["doDelete"]:
            if not post:
                raise HttpError(405, "This URL requires POST")
            self._require(ctx, CRED_DELETE)
            with emu.lock:
                emu.credentials.pop(cid, None)
            return _redirect("../..")
        return self._no_such(ctx)

    def _require_xml(self, ctx: _Ctx) -> None:
        if not ctx.ctype:
            raise failure("No Content-Type header set")
        if ctx.ctype not in ("application/xml", "text/xml"):
            raise HttpError(500, f"javax.servlet.ServletException: This page expects a form submission but had only {{}} "
                                 f"(Content-Type {ctx.ctype}; send the credential as application/xml)")

    # --- the emulator's own endpoints (no auth, not logged) ------------------------------

    def _emulator(self, ctx: _Ctx) -> _Answer:
        emu = self.emu
        seg = ctx.segments[1:]
        if seg == ["requests"] and ctx.method == "GET":
            with emu.lock:
                return _Answer(200, list(emu.requests))
        if seg == ["requests"] and ctx.method == "DELETE":
            emu.clear_requests()
            return _Answer(204, b"")
        if seg == ["state"] and ctx.method == "GET":
            return _Answer(200, emu.state())
        if seg == ["hang"] and ctx.method == "POST":
            emu.hanging = True
            return _Answer(204, b"")
        raise HttpError(404, "no such emulator endpoint")


def _casc_error_page(exc: Any, status: int) -> _Answer:
    """configuration-as-code's ConfigurationAsCode/error.jelly."""
    parts = [f"<p>{_html(exc.error_message)}<pre><code>{_html(exc.configurator or '')}</code></pre></p>"]
    if exc.invalid is not None:
        parts.append(f"<p>Attribute was: <pre><code>{_html(exc.invalid)}</code></pre></p>")
    if exc.valid:
        parts.append("<p>Valid attributes are:</p><ul>" + "".join(f"<li>{_html(a)}</li>" for a in exc.valid) + "</ul>")
    body = ("<!DOCTYPE html><html><head><title>Error loading configuration [Jenkins]</title></head><body>"
            "<h1>Error loading configuration</h1>" + "".join(parts) + "</body></html>")
    return _Answer(status, body)


def _util_escape(text: str) -> str:
    """hudson.Util.escape."""
    out = []
    for i, ch in enumerate(text):
        nxt = text[i + 1] if i + 1 < len(text) else ""
        out.append({"\n": "<br>", "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&#039;"}.get(ch)
                   or ("&nbsp;" if ch == " " and nxt == " " else ch))
    return "".join(out)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- ?tree= -----------------------------------------------------------------------------


def _parse_tree(spec: str) -> dict:
    """``a,b[c,d{0,2}]`` -> {"a": {}, "b": {"c": {}, "d": {}}}; ranges ignored."""
    pos = 0

    def parse() -> dict:
        nonlocal pos
        out: dict = {}
        name = ""
        while pos < len(spec):
            ch = spec[pos]
            pos += 1
            if ch == ",":
                if name:
                    out.setdefault(name, {})
                name = ""
            elif ch == "[":
                out[name] = parse()
                name = ""
            elif ch == "]":
                break
            elif ch == "{":
                while pos < len(spec) and spec[pos] != "}":
                    pos += 1
                pos += 1
            else:
                name += ch
        if name:
            out.setdefault(name, {})
        return out

    return parse()


def _filter(obj: Any, tree: dict) -> Any:
    if isinstance(obj, list):
        return [_filter(o, tree) for o in obj]
    if isinstance(obj, dict) and tree:
        out = {"_class": obj["_class"]} if "_class" in obj else {}
        for k, sub in tree.items():
            if k in obj:
                out[k] = _filter(obj[k], sub)
        return out
    return obj


def _tree(obj: Any, ctx: _Ctx) -> Any:
    spec = ctx.query.get("tree", [None])[0]
    return _filter(obj, _parse_tree(spec)) if spec else obj

