"""A bounded HTTP load client for the proxy tests and bench/bench_proxy.py.

Several threads, each with one keep-alive connection (http.client) to
127.0.0.1, send GET requests at a fixed overall rate and record, per
request: when it was sent, its latency, and the version that answered
(``None`` for a failure: an error status, a refused or reset connection, a
timeout).

One rule from HTTP itself (RFC 9112, section 9.3.1): a client may resend an
idempotent request when a *reused* connection was closed before any byte of
the answer came back, because the server never saw it or dropped it
unanswered.  Browsers and most clients do so; so does this one, once, and
counts it in ``resent`` so a test can see it.  Anything else is a failure.
"""

from __future__ import annotations

import http.client
import threading
import time


class Load:
    def __init__(self, port: int, *, rate: float = 150, threads: int = 6, path: str = "/version",
                 host: str = "127.0.0.1", timeout: float = 10, limit_seconds: float = 900) -> None:
        self.host, self.port, self.path, self.timeout = host, port, path, timeout
        self.interval = threads / rate            # each thread's share of the rate
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self.results: list[tuple[float, float, str | None, str]] = []   # (sent, seconds, version, error)
        self.resent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + limit_seconds   # bounded even if a test forgets to stop it

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _run(self) -> None:
        conn = self._connect()
        used = False
        nxt = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            sent = time.monotonic()
            version, error = None, ""
            for attempt in (1, 2):
                try:
                    conn.request("GET", self.path)
                    resp = conn.getresponse()
                    body = resp.read().decode(errors="replace").strip()
                    if resp.status == 200:
                        version = body
                    else:
                        error = f"HTTP {resp.status}: {body[:80]}"
                    if resp.will_close:
                        conn.close()
                        conn, used = self._connect(), False
                    else:
                        used = True
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                    conn.close()
                    reused = used
                    conn, used = self._connect(), False
                    if reused and attempt == 1:
                        with self._lock:
                            self.resent += 1
                        continue
                    error = f"{type(exc).__name__}: {exc}"
                    break
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    conn, used = self._connect(), False
                    error = f"{type(exc).__name__}: {exc}"
                    break
            with self._lock:
                self.results.append((sent, time.monotonic() - sent, version, error))
            nxt += self.interval
            delay = nxt - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                nxt = time.monotonic()
        conn.close()

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self.threads:
            t.join(self.timeout + 5)

    # --- what it saw ---------------------------------------------------------------

    def snapshot(self) -> int:
        with self._lock:
            return len(self.results)

    @property
    def failures(self) -> list[tuple[float, float, str | None, str]]:
        with self._lock:
            return [r for r in self.results if r[2] is None]

    @property
    def ok(self) -> int:
        with self._lock:
            return sum(1 for r in self.results if r[2] is not None)

    def versions_since(self, index: int) -> list[str]:
        with self._lock:
            return [r[2] for r in self.results[index:] if r[2] is not None]

    def rate(self) -> float:
        with self._lock:
            if len(self.results) < 2:
                return 0.0
            span = self.results[-1][0] - self.results[0][0]
            return len(self.results) / span if span > 0 else 0.0

    def latencies(self) -> list[float]:
        with self._lock:
            return sorted(r[1] for r in self.results if r[2] is not None)


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100 * (len(sorted_values) - 1)))))
    return sorted_values[k]
