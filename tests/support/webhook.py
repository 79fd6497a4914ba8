"""A small webhook receiver for deploy tests: a real HTTP server on
127.0.0.1:<free port> that records every request and answers from a script.

    with WebhookReceiver() as hook:
        hook.script(503, 503, 200)     # then 200 for everything after
        ... jenkinsctl deploy --to webhook:{hook.url} ...
        assert [r.status for r in hook.requests] == [503, 503, 200]
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0

    @property
    def json(self):
        return json.loads(self.body or b"null")


@dataclass
class WebhookReceiver:
    path: str = "/hooks/redeploy"
    default_status: int = 200
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._script: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    status = receiver._script.pop(0) if receiver._script else receiver.default_status
                    rec = Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                                   status)
                    receiver.requests.append(rec)
                if self.path.split("?")[0] != receiver.path:
                    status = 404
                    rec.status = 404
                text = {200: '{"status":"redeploy queued"}', 401: '{"message":"invalid token"}',
                        404: '{"message":"no such webhook"}'}.get(status, f'{{"message":"error {status}"}}')
                # Echo the Authorization header back on errors, as careless
                # receivers do: jenkinsctl must still not print the secret.
                if status >= 400 and "authorization" in rec.headers:
                    text = text[:-1] + f',"got":"{rec.headers["authorization"]}"}}'
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def script(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, in order."""
        with self._lock:
            self._script = list(statuses)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "WebhookReceiver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
