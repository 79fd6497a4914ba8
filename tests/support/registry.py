"""A real registry for tests: Debian's docker-registry (distribution 2.8)
on 127.0.0.1:<free port>, storage in a temp dir, optionally with htpasswd
(bcrypt) auth.  The engine trusts 127.0.0.1:* without TLS, so pushes work
with no engine configuration.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Registry:
    url: str                       # "127.0.0.1:PORT": the first part of image references
    username: str | None
    password: str | None
    root: str                      # temp dir: config, htpasswd, storage, log
    process: subprocess.Popen = field(repr=False)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def auth(self) -> dict[str, str] | None:
        if self.username is None:
            return None
        return {"username": self.username, "password": self.password, "serveraddress": self.url}

    @property
    def env(self) -> dict[str, str]:
        """Environment for `jenkinsctl push` with this registry's credentials."""
        if self.username is None:
            return {}
        return {"JENKINSCTL_REGISTRY_USERNAME": self.username, "JENKINSCTL_REGISTRY_PASSWORD": self.password}

    def log(self) -> str:
        try:
            with open(os.path.join(self.root, "registry.log"), encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def request(self, method: str, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
        """One HTTP request to the registry, with its credentials."""
        import base64

        h = dict(headers or {})
        if self.username:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            h["Authorization"] = f"Basic {token}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, headers=h)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def manifest_digest(self, repository_path: str, tag: str) -> str | None:
        """The digest the registry holds for path:tag, or None."""
        status, headers, _ = self.request(
            "HEAD", f"/v2/{repository_path}/manifests/{tag}",
            {"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                       "application/vnd.oci.image.manifest.v1+json"})
        return headers.get("docker-content-digest") if status == 200 else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def start_registry(*, auth: bool = True, username: str = "ci-pusher", timeout: float = 20) -> Registry:
    if not os.access(REGISTRY_BIN, os.X_OK):
        raise RuntimeError(f"{REGISTRY_BIN} is missing: apt-get install docker-registry (scripts/bootstrap does)")
    root = tempfile.mkdtemp(prefix="jenkinsctl-registry-")
    port = free_port()
    password = None
    auth_block = ""
    if auth:
        if shutil.which("htpasswd") is None:
            raise RuntimeError("htpasswd is missing: apt-get install apache2-utils (scripts/bootstrap does)")
        # A password with characters that need care in shells and JSON.
        password = "pw-" + secrets.token_urlsafe(12) + "$'\"!"
        out = subprocess.run(["htpasswd", "-iBn", username], input=password, capture_output=True, text=True,
                             check=True).stdout
        with open(os.path.join(root, "htpasswd"), "w", encoding="utf-8") as fh:
            fh.write(out)
        auth_block = f"auth:\n  htpasswd:\n    realm: jenkinsctl-test\n    path: {root}/htpasswd\n"
    config = (
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}/data\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: {secrets.token_hex(16)}\n"
        + auth_block
    )
    with open(os.path.join(root, "config.yml"), "w", encoding="utf-8") as fh:
        fh.write(config)
    log = open(os.path.join(root, "registry.log"), "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([REGISTRY_BIN, "serve", os.path.join(root, "config.yml")], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    reg = Registry(url=f"127.0.0.1:{port}", username=username if auth else None, password=password,
                   root=root, process=proc)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            text = reg.log()
            reg.stop()
            raise RuntimeError(f"docker-registry exited with {proc.returncode}:\n{text}")
        try:
            status, _, _ = reg.request("GET", "/v2/")
            if status == 200:
                return reg
        except OSError:
            pass
        if time.monotonic() > deadline:
            reg.stop()
            raise RuntimeError(f"docker-registry did not answer on {reg.url} within {timeout}s")
        time.sleep(0.05)
