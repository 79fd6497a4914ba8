"""A server that accepts TCP connections and never answers, for timeout tests.

python-jenkins has no default timeout, so a client that forgets to set one
hangs here forever; one that sets it gets a timeout.
"""
from __future__ import annotations

import socket
import threading
from typing import Any


class SilentServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def accepted(self) -> int:
        return len(self.connections)

    def start(self) -> "SilentServer":
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections.append(conn)  # held open, never read from or written to

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for c in self.connections:
            c.close()
        self._sock.close()

    def serve_forever(self) -> None:
        """Block until stopped; call ``start`` first, so the port listens before
        anyone is told its address."""
        try:
            self._stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> "SilentServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
