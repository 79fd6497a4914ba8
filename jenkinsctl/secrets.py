"""One place that knows which strings are secret, and removes them from text.

Every secret value jenkinsctl resolves (a ``{env:}`` / ``{file:}``
reference, a JENKINSCTL_*_PASSWORD variable, the token in a
``https://user:token@host`` URL) is registered here with ``sensitive()``
once, when it is read.  ``redact()`` then removes all of them, and
credentials in URLs and Authorization headers, from any text; the CLI runs
every message, hint, result and log line through it before they reach the
console, ``--error-file``, ``--output json`` or ``--result``.  Kamal's
``sensitive()`` works the same way: wrap once, redacted everywhere.

Secrets are also checked here: a control character (a trailing newline in a
variable, a NUL) is never legitimate in a password or token, and would
otherwise end up in an HTTP header, where Python's own error message quotes
the whole value.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import threading

from jenkinsctl.errors import ConfigError, JenkinsctlError

TYPE_CHECKING = False  # every command imports this module; typing is not free
if TYPE_CHECKING:
    from typing import Any, Iterator, Mapping

MASK = "********"
# Shorter values would mask ordinary words and digits in every message; a
# one- or two-character password is not worth hiding anyway.
MIN_LENGTH = 3

_lock = threading.Lock()
_secrets: set[str] = set()

# The patterns below are strings, not compiled at import: every command
# imports this module, most outputs contain neither "@" nor an auth scheme,
# and re compiles a pattern on its first use and caches it.

# scheme://user:password@ -> scheme://user:********@
_URL_USERINFO = r"(?P<pre>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*):(?P<pw>[^/\s@]+)@"
# Authorization: Bearer X / Basic X, X-Registry-Auth: X, as echoed by servers and libraries.
# A challenge (WWW-Authenticate: Bearer realm="...") names no secret and stays,
# and so does prose ("no basic auth credentials"): a value needs 8 characters
# and something besides lower-case letters.
_AUTH_HEADER = (r"(?P<pre>\b(?i:Bearer|Basic|X-Registry-Auth:?)\s+)(?!(?:realm|error|scope|service)=)"
                r"(?=[a-z]*[^a-z\s])(?P<val>[A-Za-z0-9._~+/=:-]{8,})")


def _control(value: str) -> str | None:
    for ch in value:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", "\0": "a NUL byte"}.get(
                ch, f"the control character U+{ord(ch):04X}")
    return None


def check_secret(value: str, what: str) -> str:
    """``value`` if it holds no control character, else a ConfigError that
    names ``what`` (where it came from) and never the value itself."""
    bad = _control(value)
    if bad:
        where = "at its end" if value.rstrip("\r\n\t ") != value else "inside it"
        raise ConfigError(f"{what} contains {bad} ({where}); a secret must be a single line without control "
                          "characters", hint="remove the line break or control character from the variable or "
                          "file (e.g. printf '%s' TOKEN, not echo), then run again")
    return value


def sensitive(value: str | None, what: str = "a secret") -> str | None:
    """Check ``value`` and register it for redaction; returns it unchanged."""
    if value is None or value == "":
        return value
    check_secret(value, what)
    if len(value) >= MIN_LENGTH:
        with _lock:
            _secrets.add(value)
    return value


def read_secret_file(path: str, what: str, *, error: type[JenkinsctlError] = ConfigError,
                     hint: str = "check the path and that this user may read it") -> str:
    """The secret held in file ``path``, checked and registered like
    ``sensitive``.  Its final line break is not part of the secret (editors
    and ``echo`` add one).  An unreadable file is ``error``, naming ``what``
    (where the secret comes from) and never the content."""
    try:
        with open(path, encoding="utf-8") as fh:
            value = fh.read().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise error(f"cannot read {what}: {why}", hint=hint) from None
    sensitive(value, what)
    return value


def sensitive_basic(username: str, password: str) -> None:
    """Register the Basic-auth and registry-auth encodings of a credential
    pair too: servers and libraries echo the header, not the password."""
    import base64

    pair = f"{username}:{password}"
    with _lock:
        _secrets.add(base64.b64encode(pair.encode()).decode())


# Path segments after these carry the token in Portainer-style trigger URLs
# (/api/webhooks/<token>, /api/stacks/webhooks/<token>, /hooks/<token>).
_TOKEN_PARENTS = ("webhooks", "webhook", "hooks", "hook", "token", "tokens", "trigger", "triggers")
_UUID = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
_TOKENISH = r"^(?=.*[0-9])(?=.*[A-Za-z])[A-Za-z0-9_.~=+-]{20,}$"


def url_tokens(url: str) -> list[str]:
    """The parts of ``url`` that are credentials: the password of its user
    info, its query values, and path segments that are tokens (a UUID, a
    long random-looking string, or whatever follows /webhooks/ or /hooks/)."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    try:
        u = urlsplit(url)
        password = u.password
    except ValueError:
        return []
    out = [unquote(password), password] if password else []
    out += [v for _, v in parse_qsl(u.query, keep_blank_values=False) if len(v) >= 8]
    segments = [unquote(p) for p in u.path.split("/")]
    for i, seg in enumerate(segments):
        after_parent = i > 0 and segments[i - 1].lower() in _TOKEN_PARENTS and len(seg) >= 8
        if seg and (after_parent or re.match(_UUID, seg) or re.match(_TOKENISH, seg)):
            out.append(seg)
    return list(dict.fromkeys(out))


def sensitive_url(url: str | None) -> str | None:
    """Register the credentials a URL carries (see ``url_tokens``): a
    Jenkins API token in ``https://user:token@host``, a Portainer webhook
    token in its path.  Returns the URL unchanged."""
    if url:
        for token in url_tokens(url):
            sensitive(token, "a credential in a URL")
    return url


def display_url(url: str) -> str:
    """``url`` as messages show it: without user info or query string, where
    tokens travel (https://user:token@host, ?token=...), so it names the
    endpoint even before or without ``redact``."""
    from urllib.parse import urlsplit, urlunsplit

    u = urlsplit(url)
    host = u.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{u.port}" if u.port else host
    return urlunsplit((u.scheme, netloc, u.path, "", ""))


def known() -> frozenset[str]:
    with _lock:
        return frozenset(_secrets)


def forget_all() -> None:
    """For tests: start from no registered secrets."""
    with _lock:
        _secrets.clear()


def redact(text: Any, *extra: str | None) -> Any:
    """``text`` with every registered secret (and ``extra``), URL passwords
    and Authorization header values replaced by a mask.  Non-strings pass
    through unchanged."""
    if not isinstance(text, str) or not text:
        return text
    values = sorted(known() | {e for e in extra if e and len(e) >= MIN_LENGTH}, key=len, reverse=True)
    for value in values:  # longest first, so a secret containing another is masked whole
        if value in text:
            text = text.replace(value, MASK)
    if "@" in text:
        text = re.sub(_URL_USERINFO, lambda m: f"{m.group('pre')}:{MASK}@", text)
    # casefold, not lower: the pattern's (?i) also matches "ſ" for "s".
    folded = text.casefold()
    if "bearer" in folded or "basic" in folded or "x-registry-auth" in folded:
        text = re.sub(_AUTH_HEADER, lambda m: m.group("pre") + MASK, text)
    return text


def redact_obj(obj: Any, *extra: str | None) -> Any:
    """A copy of a JSON-like structure with every string (keys included) redacted."""
    if isinstance(obj, str):
        return redact(obj, *extra)
    if isinstance(obj, dict):
        return {redact_obj(k, *extra): redact_obj(v, *extra) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v, *extra) for v in obj]
    return obj


# --- files that hold secrets ---------------------------------------------------


def _private_base(environ: Mapping[str, str]) -> str | None:
    """XDG_RUNTIME_DIR when it is this user's private tmpfs (never written to
    disk, emptied at logout), else None for the system's temp directory."""
    base = environ.get("XDG_RUNTIME_DIR")
    if not base:
        return None
    try:
        st = os.stat(base)
    except OSError:
        return None
    if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077 == 0 and stat.S_ISDIR(st.st_mode):
        return base
    return None


@contextlib.contextmanager
def private_tempdir(prefix: str, environ: Mapping[str, str] | None = None) -> Iterator[str]:
    """A 0700 directory for files that hold secrets (a DOCKER_CONFIG with a
    login), removed when the block ends, and also when SIGTERM or SIGINT
    arrives first: Jenkins aborts a build with SIGTERM, whose default action
    ends the process without running ``finally`` blocks, which would leave
    the file behind.  The previous handlers run after the removal, so the
    process still ends (143 for SIGTERM) or raises KeyboardInterrupt as before."""
    import shutil
    import tempfile

    environ = os.environ if environ is None else environ
    path = tempfile.mkdtemp(prefix=prefix, dir=_private_base(environ))
    os.chmod(path, 0o700)
    previous: dict[int, Any] = {}

    def on_signal(signum, frame):
        shutil.rmtree(path, ignore_errors=True)
        prev = previous.get(signum)
        if callable(prev):
            prev(signum, frame)
        else:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    installed = threading.current_thread() is threading.main_thread()
    if installed:
        for sig in (signal.SIGTERM, signal.SIGINT):
            if signal.getsignal(sig) != signal.SIG_IGN:  # an ignored signal ends nothing
                previous[sig] = signal.signal(sig, on_signal)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if installed:
            for signum, prev in previous.items():
                if signal.getsignal(signum) is on_signal:
                    signal.signal(signum, prev if prev is not None else signal.SIG_DFL)
