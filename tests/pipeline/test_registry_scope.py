"""Registry credentials go only to their registry: a push through the real
engine to a second registry (a stand-in on 127.0.0.1 that logs every
Authorization header it receives) must not carry registry.url's password."""

from __future__ import annotations

import base64
import http.server
import threading
import uuid

import pytest

from tests.pipeline.helpers import jenkinsctl
from tests.pipeline.test_push import build_small
from tests.support.registry import free_port

pytestmark = pytest.mark.engine


class _LoggingRegistry(http.server.ThreadingHTTPServer):
    """Answers every request with a Basic challenge, as an htpasswd
    registry does, and keeps the Authorization headers it was sent."""

    daemon_threads = True

    def __init__(self) -> None:
        self.authorizations: list[str] = []
        self.requests = 0
        super().__init__(("127.0.0.1", free_port()), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def passwords(self) -> list[str]:
        out = []
        for header in self.authorizations:
            kind, _, value = header.partition(" ")
            if kind.lower() == "basic":
                out.append(base64.b64decode(value).decode(errors="replace").partition(":")[2])
            else:
                out.append(value)
        return out


class _Handler(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        self.server.requests += 1
        if self.headers.get("Authorization"):
            self.server.authorizations.append(self.headers["Authorization"])
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="stand-in"')
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def other_registry():
    server = _LoggingRegistry()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def image_on(docker_client, image_tracker):
    image_id = build_small(docker_client, size=4096)
    image_tracker.add(image_id)

    def tag(registry_url: str) -> str:
        repo = f"{registry_url}/jenkinsctl-test/scope-{uuid.uuid4().hex[:6]}"
        docker_client.api.tag(image_id, repo, "v1")
        image_tracker.add(f"{repo}:v1")
        return repo
    return tag


@pytest.mark.case(25)
def test_another_registry_gets_none_of_the_configured_credentials(registry, other_registry, image_on, tmp_path):
    cfg = tmp_path / "jenkinsctl.yaml"
    cfg.write_text(f'project: scope\nstate_dir: {tmp_path}/state\nregistry: {{url: "{registry.url}"}}\n')
    repo = image_on(other_registry.url)
    r = jenkinsctl("-c", str(cfg), "push", "--image", repo, "--tag", "v1", env=registry.env)
    assert r.rc == 5, r.stdout + r.stderr
    assert other_registry.requests > 0, "the push never reached the second registry"
    assert registry.password not in other_registry.passwords(), other_registry.authorizations
    assert other_registry.authorizations == []
    assert "sent no credentials" in r.stderr and "registry.others" in r.stderr, r.stderr
    assert registry.password not in r.stdout + r.stderr


@pytest.mark.case(25)
def test_registry_others_get_their_own_credentials_only(registry, other_registry, image_on, tmp_path):
    cfg = tmp_path / "jenkinsctl.yaml"
    cfg.write_text(f'project: scope\nstate_dir: {tmp_path}/state\n'
                   f'registry:\n  url: "{registry.url}"\n'
                   f'  others:\n    - {{url: "{other_registry.url}", username: other-user, '
                   f'password: {{env: OTHER_PW}}}}\n')
    repo = image_on(other_registry.url)
    other_pw = "other-" + uuid.uuid4().hex
    r = jenkinsctl("-c", str(cfg), "push", "--image", repo, "--tag", "v1",
                   env={**registry.env, "OTHER_PW": other_pw})
    assert r.rc == 5, r.stdout + r.stderr  # the stand-in refuses everyone
    assert other_pw in other_registry.passwords(), other_registry.authorizations
    assert registry.password not in other_registry.passwords()
    assert other_pw not in r.stdout + r.stderr
