"""A fault-injecting HTTP/1.1 proxy in front of a real registry, on 127.0.0.1.

The engine pushes to ``proxy.url`` (another 127.0.0.1 port, so trusted
without TLS); every request is relayed byte for byte to the registry,
keep-alive and chunked bodies included, except where a fault rule matches:

* ``fail(status, times, method, path)``: answer ``status`` (503, 401, ...)
  with a registry-style JSON error instead of relaying;
* ``reset(times, after, method, path)``: relay the request head and ``after``
  bytes of its body, then reset the client's connection (RST) mid-body;
* ``strip_auth(times, method, path)``: relay the request without its
  Authorization header, so the real registry answers its own 401.  Use
  this for "401": engine 20.10 fails at once on the registry's 401, but
  treats a synthesized ``fail(401)`` on blob requests as retryable and
  counts down 5 s x attempt for about 50 s (seen, cause not traced).

Rules match the method and a regular expression on the path; ``times=None``
means for ever.  Every request is recorded (``requests``), with the body
bytes relayed, so tests can assert what was retried and what was uploaded.
The registry builds its Location URLs from the Host header, which is passed
through, so upload URLs point back at the proxy.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
from dataclasses import dataclass, field

MANIFEST_PUT = ("PUT", r"/v2/.+/manifests/")
BLOB_PATCH = ("PATCH", r"/v2/.+/blobs/uploads/")
ANY_V2 = (None, r"^/v2/.")  # every registry request except the /v2/ ping

_REASONS = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
_CODES = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NAME_UNKNOWN", 503: "UNAVAILABLE"}


@dataclass
class Rule:
    kind: str                    # "status" or "reset"
    method: str | None
    path: re.Pattern
    times: int | None
    status: int = 503
    after: int = 65536
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return ((self.method is None or self.method == method) and bool(self.path.search(path))
                and (self.times is None or self.hits < self.times))


@dataclass
class Record:
    method: str
    path: str
    status: int | None           # None when the connection was reset
    body_bytes: int = 0
    fault: str | None = None


@dataclass
class FaultProxy:
    upstream: tuple[str, int]
    rules: list[Rule] = field(default_factory=list)
    requests: list[Record] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._closed = False
        self._conns: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True, name="faultproxy-accept").start()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self._sock.getsockname()[1]}"

    # --- rules ---------------------------------------------------------------
    def fail(self, status: int = 503, times: int | None = 1, method: str | None = None,
             path: str = r"^/v2/.") -> Rule:
        rule = Rule("status", method, re.compile(path), times, status=status)
        with self._lock:
            self.rules.append(rule)
        return rule

    def reset(self, times: int | None = 1, after: int = 65536, method: str | None = "PATCH",
              path: str = r"/blobs/uploads/") -> Rule:
        rule = Rule("reset", method, re.compile(path), times, after=after)
        with self._lock:
            self.rules.append(rule)
        return rule

    def strip_auth(self, times: int | None = None, method: str | None = None, path: str = r"^/v2/.") -> Rule:
        rule = Rule("strip_auth", method, re.compile(path), times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.requests.clear()

    def uploaded_bytes(self) -> int:
        """Body bytes relayed to blob upload endpoints: layer data sent."""
        with self._lock:
            return sum(r.body_bytes for r in self.requests if "/blobs/uploads/" in r.path)

    def close(self) -> None:
        self._closed = True
        try:
            self._sock.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.close()
            except OSError:
                pass

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- relay -----------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True, name="faultproxy-conn").start()

    def _match(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.hits += 1
                    return rule
        return None

    def _record(self, rec: Record) -> None:
        with self._lock:
            self.requests.append(rec)

    def _serve(self, client: socket.socket) -> None:
        up: socket.socket | None = None
        cr = client.makefile("rb")
        ur = None
        try:
            # The engine tries TLS first on a registry port; a plain HTTP server
            # rejects that at once, so the engine falls back to HTTP without
            # waiting out its 10 s TLS handshake timeout.
            if cr.peek(1)[:1] == b"\x16":
                return
            while True:
                head = _read_head(cr)
                if head is None:
                    return
                method, target = head[0].split(" ", 2)[:2]
                path = target.split("?", 1)[0]
                headers = _headers(head)
                rule = self._match(method, path)
                rec = Record(method, path, None, fault=None if rule is None else
                             f"status:{rule.status}" if rule.kind == "status" else rule.kind)
                if rule is not None and rule.kind == "status":
                    rec.body_bytes = _relay_body(cr, None, headers, request=True)
                    client.sendall(_error_response(rule.status, head_only=method == "HEAD"))
                    rec.status = rule.status
                    self._record(rec)
                    continue
                if up is None:
                    up = socket.create_connection(self.upstream, timeout=60)
                    ur = up.makefile("rb")
                if rule is not None and rule.kind == "strip_auth":
                    head = [h for h in head if not h.lower().startswith("authorization:")]
                up.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
                if rule is not None and rule.kind == "reset":
                    rec.body_bytes = _relay_body(cr, up, headers, request=True, limit=rule.after)
                    rec.fault = "reset"
                    self._record(rec)
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                rec.body_bytes = _relay_body(cr, up, headers, request=True)
                rhead = _read_head(ur)
                if rhead is None:
                    return
                client.sendall(("\r\n".join(rhead) + "\r\n\r\n").encode("latin-1"))
                rheaders = _headers(rhead)
                status = int(rhead[0].split(" ", 2)[1])
                rec.status = status
                if method != "HEAD" and status not in (204, 304) and not 100 <= status < 200:
                    _relay_body(ur, client, rheaders, request=False)
                self._record(rec)
                if rheaders.get("connection", "").lower() == "close" or \
                        headers.get("connection", "").lower() == "close":
                    return
        except OSError:
            return
        finally:
            for s in (up, client):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass
            with self._lock:
                self._conns.discard(client)


def _read_head(f) -> list[str] | None:
    lines: list[str] = []
    while True:
        line = f.readline(65537)
        if not line:
            return None
        text = line.decode("latin-1").rstrip("\r\n")
        if not text:
            if not lines:
                continue
            return lines
        lines.append(text)


def _headers(head: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        out[k.strip().lower()] = v.strip()
    return out


def _relay_body(src, dst: socket.socket | None, headers: dict[str, str], *, request: bool,
                limit: int | None = None) -> int:
    """Copy one message body from ``src`` to ``dst`` (None: discard), keeping
    its framing.  Returns the payload bytes seen.  With ``limit``, stop after
    that many payload bytes (the caller then resets the connection)."""
    seen = 0

    def send(data: bytes) -> None:
        if dst is not None:
            dst.sendall(data)

    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = src.readline(65537)
            if not size_line:
                return seen
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            send(size_line)
            if size == 0:
                while True:  # trailers, then the blank line
                    t = src.readline(65537)
                    send(t)
                    if t in (b"\r\n", b"\n", b""):
                        return seen
            remaining = size
            while remaining:
                chunk = src.read(min(remaining, 65536))
                if not chunk:
                    return seen
                if limit is not None and seen + len(chunk) >= limit:
                    send(chunk[: max(0, limit - seen)])
                    return seen + max(0, limit - seen)
                send(chunk)
                seen += len(chunk)
                remaining -= len(chunk)
            send(src.readline(3))  # CRLF after the chunk
    if "content-length" in headers:
        remaining = int(headers["content-length"])
        while remaining:
            chunk = src.read(min(remaining, 65536))
            if not chunk:
                return seen
            if limit is not None and seen + len(chunk) >= limit:
                send(chunk[: max(0, limit - seen)])
                return seen + max(0, limit - seen)
            send(chunk)
            seen += len(chunk)
            remaining -= len(chunk)
        return seen
    if request:
        return 0  # a request without length or chunking has no body
    while True:  # a response delimited by the connection's close
        chunk = src.read1(65536) if hasattr(src, "read1") else src.read(65536)
        if not chunk:
            return seen
        send(chunk)
        seen += len(chunk)


def _error_response(status: int, *, head_only: bool = False) -> bytes:
    code = _CODES.get(status, "UNKNOWN")
    message = {401: "authentication required", 403: "requested access to the resource is denied",
               503: "service unavailable (injected by the test proxy)"}.get(status, "injected error")
    body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()
    extra = 'WWW-Authenticate: Basic realm="jenkinsctl-test"\r\n' if status == 401 else ""
    return (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            "Docker-Distribution-Api-Version: registry/2.0\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + (b"" if head_only else body)
