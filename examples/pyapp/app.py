"""pyapp: the example app of jenkinsctl's end-to-end story.

A small web app on the standard library's http.server, backed by a
MySQL-compatible database through PyMySQL (Debian's python3-pymysql).

GET /        -> its version and a visit counter kept in the database
                (incremented on every visit, so it survives redeploys)
GET /health  -> 200 when the database answers, else 503 with the reason;
                always 503 when the image was built with APP_HEALTH=fail
                (the deliberately broken version the rollback demo ships)

    python3 app.py            serve on $PORT (8080)
    python3 app.py --check    the HEALTHCHECK: GET /health, print the answer

Settings (environment): APP_VERSION, APP_HEALTH (baked in from build args),
DB_HOST, DB_PORT, DB_NAME, DB_USER and DB_PASSWORD_FILE (a Docker secret;
the password is never taken from the environment itself).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("APP_VERSION", "").strip() or "dev"
HEALTHY = os.environ.get("APP_HEALTH", "ok") != "fail"
PORT = int(os.environ.get("PORT", "8080"))
HOSTNAME = socket.gethostname()


def db_password() -> str:
    path = os.environ.get("DB_PASSWORD_FILE", "/run/secrets/db_password")
    with open(path, encoding="utf-8") as fh:
        return fh.read().rstrip("\r\n")


def connect():
    import pymysql

    return pymysql.connect(
        host=os.environ.get("DB_HOST", "db"), port=int(os.environ.get("DB_PORT", "3306")),
        user=os.environ.get("DB_USER", "pyapp"), password=db_password(),
        database=os.environ.get("DB_NAME", "pyapp"),
        connect_timeout=3, read_timeout=5, write_timeout=5, autocommit=True)


def count_visit() -> int:
    """One atomic statement: safe with several replicas and no lost updates."""
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS counters "
                        "(name VARCHAR(64) PRIMARY KEY, hits BIGINT NOT NULL)")
            cur.execute("INSERT INTO counters (name, hits) VALUES ('visits', LAST_INSERT_ID(1)) "
                        "ON DUPLICATE KEY UPDATE hits = LAST_INSERT_ID(hits + 1)")
            cur.execute("SELECT LAST_INSERT_ID()")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def check_db() -> str:
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            return str(cur.fetchone()[0])
    finally:
        conn.close()


class Handler(BaseHTTPRequestHandler):
    server_version = "pyapp"

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-App-Version", VERSION)
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/health":
            if not HEALTHY:
                self._send(503, f"unhealthy: version {VERSION} was built with APP_HEALTH=fail\n")
                return
            try:
                server = check_db()
            except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
                self._send(503, f"unhealthy: database: {exc}\n")
                return
            self._send(200, f"ok: version {VERSION}, database {server}\n")
        elif path == "/":
            try:
                visits = count_visit()
            except Exception as exc:  # noqa: BLE001
                self._send(503, f"version: {VERSION}\nerror: database: {exc}\n")
                return
            self._send(200, f"version: {VERSION}\nvisits: {visits}\nserved-by: {HOSTNAME}\n")
        else:
            self._send(404, "not found\n")

    def log_message(self, fmt: str, *args) -> None:
        if self.path != "/health":  # the healthcheck would drown everything else
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")


def check() -> int:
    """HEALTHCHECK command: its output is what `docker inspect` and
    jenkinsctl show when a deploy fails."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=3) as resp:
            print(resp.read().decode().strip())
            return 0
    except urllib.error.HTTPError as exc:
        print(f"HTTP {exc.code}: {exc.read().decode().strip()}")
    except OSError as exc:
        print(f"no answer on port {PORT}: {exc}")
    return 1


def main() -> int:
    if sys.argv[1:] == ["--check"]:
        return check()
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = True
    # Swarm stops tasks with SIGTERM: exit at once instead of after the grace period.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"pyapp {VERSION} listening on :{PORT} (health {'ok' if HEALTHY else 'FAIL on purpose'})",
          file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
