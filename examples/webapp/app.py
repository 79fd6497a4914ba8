"""A tiny web app for jenkinsctl's demo and tests: standard library only.

GET /        -> "hello from jenkinsctl example, version X" (X from $APP_VERSION,
                else the VERSION file baked into the image)
GET /health  -> 200 "ok", or 500 when the image was built with
                --build-arg APP_HEALTH=fail (a deliberately unhealthy version)
GET /version -> X alone, for scripts
GET /slow    -> X after 3 seconds (a long request in flight during a switch)

Built with --build-arg APP_HEALTH=errors it passes /health but answers 500
to everything else: a version only live traffic shows to be broken.
"""

from __future__ import annotations

import os
import pathlib
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = pathlib.Path(__file__).resolve().parent


def version() -> str:
    env = os.environ.get("APP_VERSION", "").strip()
    if env:
        return env
    try:
        return (HERE / "VERSION").read_text(encoding="utf-8").strip()
    except OSError:
        return "unknown"


VERSION = version()
HEALTHY = os.environ.get("APP_HEALTH", "ok") != "fail"
BROKEN = os.environ.get("APP_HEALTH", "ok") == "errors"


class Handler(BaseHTTPRequestHandler):
    server_version = "jenkinsctl-example"

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-App-Version", VERSION)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/health":
            if HEALTHY:
                self._send(200, "ok\n")
            else:
                self._send(500, f"unhealthy on purpose: built with APP_HEALTH=fail (version {VERSION})\n")
        elif BROKEN:
            self._send(500, f"broken on purpose: built with APP_HEALTH=errors (version {VERSION})\n")
        elif self.path == "/slow":
            time.sleep(3)
            self._send(200, VERSION + "\n")
        elif self.path == "/version":
            self._send(200, VERSION + "\n")
        elif self.path == "/":
            self._send(200, f"hello from jenkinsctl example, version {VERSION}\n")
        else:
            self._send(404, "not found\n")

    def log_message(self, fmt: str, *args) -> None:
        # Probe loops would flood the log; keep errors only.
        if not (200 <= int(args[1]) < 400 if len(args) > 1 and str(args[1]).isdigit() else False):
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    # As PID 1 the process ignores SIGTERM unless it installs a handler, and
    # `docker stop` would then wait its full timeout: exit at once instead,
    # so a redeploy's switch is short.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"example app version {VERSION} listening on :{port} (health {'ok' if HEALTHY else 'FAILING'})",
          flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
