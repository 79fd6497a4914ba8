"""Health probes shared by the strategies.

HTTP probes use http.client directly, not urllib: urllib honours
HTTP_PROXY, and a probe of a container's own address must never go through
a proxy.
"""

from __future__ import annotations

import http.client
import urllib.parse
from typing import Any, Mapping

from jenkinsctl.secrets import display_url


def http_probe(url: str, timeout: float = 2.0) -> tuple[bool, str]:
    """(ok, what happened).  2xx and 3xx are healthy."""
    u = urllib.parse.urlsplit(url)
    conn_cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    port = u.port or (443 if u.scheme == "https" else 80)
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    conn = conn_cls(u.hostname or "", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "jenkinsctl-health", "Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(2048).decode("utf-8", errors="replace").strip()
        ok = 200 <= resp.status < 400
        return ok, f"GET {display_url(url)} -> {resp.status}: {body[:500]}"
    except (OSError, http.client.HTTPException) as exc:
        return False, f"GET {display_url(url)} failed: {exc or type(exc).__name__}"
    finally:
        conn.close()


def rewrite_host(url: str, host: str, port: int | None) -> str:
    """``url`` aimed at ``host:port`` instead (for probing a candidate
    container at its own address rather than the published port)."""
    u = urllib.parse.urlsplit(url)
    netloc = f"{host}:{port}" if port else host
    return urllib.parse.urlunsplit((u.scheme, netloc, u.path, u.query, ""))


def health_log(health: Mapping[str, Any]) -> str:
    """A container's HEALTHCHECK state (``State.Health``) for a message: the
    status and the last three probes' exit codes and output."""
    entries = health.get("Log") or []
    if not entries:
        return f"health status {health.get('Status')} (no probe output yet)"
    out = []
    for e in entries[-3:]:
        out.append(f"exit {e.get('ExitCode')}: {(e.get('Output') or '').strip()}")
    return f"health status {health.get('Status')}; last probes:\n" + "\n".join(out)
