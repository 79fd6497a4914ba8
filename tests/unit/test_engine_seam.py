"""The deploy package reaches the engine through jenkinsctl.engine only:
docker-py's errors arrive translated, and a container's log tail has one
home.  No engine: docker-py's own exception classes and stand-in APIs."""

from __future__ import annotations

import ast
import pathlib
import types

import pytest

from jenkinsctl import engine as enginelib
from jenkinsctl.errors import EngineConflict, EngineError, EngineNotFound

DEPLOY = pathlib.Path(__file__).resolve().parents[2] / "jenkinsctl" / "deploy"


def _outside_imports(path: pathlib.Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
        out += [f"{path.name}:{node.lineno}: import {n}" for n in names if n.split(".")[0] in ("docker", "requests")]
    return out


@pytest.mark.parametrize("path", sorted(DEPLOY.glob("*.py")), ids=lambda p: p.name)
def test_deploy_modules_leave_docker_errors_to_the_engine_seam(path):
    bad = _outside_imports(path)
    assert not bad, "translate docker-py's errors with jenkinsctl.engine.engine_errors:\n" + "\n".join(bad)


PACKAGE = DEPLOY.parent


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.rglob("*.py") if p.name != "engine.py"),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_engine_seam_uses_docker_pys_private_request_helpers(path):
    """docker-py's underscore helpers (_post_json, _put, _url, _result ...)
    are not its API and may change under an upgrade: engine.py wraps the
    two requests that need them, so an upgrade has one file to check."""
    bad = [f"{path.name}:{node.lineno}: .{node.attr}"
           for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path)))
           if isinstance(node, ast.Attribute) and node.attr in
           ("_post_json", "_put", "_url", "_result", "_raise_for_status", "_stream_helper", "_get_raw_response_socket")]
    assert not bad, "use a jenkinsctl.engine function:\n" + "\n".join(bad)


def test_an_api_error_whose_str_fails_still_translates():
    """docker-py's APIError formats its response's URL in str(); an answer
    without one (cut short, or a stand-in) must not turn a 409 into an
    AttributeError: the deploy lock relies on seeing the conflict."""
    docker_errors = pytest.importorskip("docker.errors")
    exc = docker_errors.APIError("409 Conflict", response=types.SimpleNamespace(status_code=409))
    with pytest.raises(AttributeError):
        str(exc)
    err = enginelib.translate(exc, "take the deploy lock app.lock")
    assert type(err) is EngineConflict
    assert err.message == "take the deploy lock app.lock: 409 Conflict"


def test_image_not_found_and_not_found_both_become_engine_not_found_with_the_engines_text():
    docker_errors = pytest.importorskip("docker.errors")
    resp = types.SimpleNamespace(status_code=404, reason="Not Found", url="u")
    for cls, text in ((docker_errors.ImageNotFound, "No such image: a:1"),
                      (docker_errors.NotFound, "No such container: c")):
        with pytest.raises(EngineNotFound) as e:
            with enginelib.engine_errors("inspect"):
                raise cls("x", response=resp, explanation=text)
        assert e.value.explanation == text and e.value.message == f"inspect: {text}"


class _API:
    def __init__(self, answer) -> None:
        self.answer, self.calls = answer, []

    def logs(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def test_log_tail_reads_the_last_lines_from_an_api_or_a_container():
    api = _API(b"one\ntwo \xff\n\n")
    assert enginelib.log_tail(api, "cid", lines=7) == "one\ntwo \ufffd"
    assert api.calls == [(("cid",), {"tail": 7})]
    container = _API(b"up\n")
    assert enginelib.log_tail(container, lines=3) == "up"
    assert container.calls == [((), {"tail": 3})]


@pytest.mark.parametrize("failure", [enginelib.EngineAPIError(404, "No such container: c"),
                                     ConnectionError("engine gone"), EngineError("refused")])
def test_log_tail_is_empty_when_the_engine_cannot_say(failure):
    assert enginelib.log_tail(_API(failure), "c") == ""


def test_without_docker_host_the_default_socket_is_used(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    assert enginelib.LazyEngine().host == enginelib.DEFAULT_DOCKER_HOST == "unix:///var/run/docker.sock"


def test_the_deploy_role_is_none_of_provisionings():
    """Provisioning removes what carries its roles; deploy's must differ."""
    assert enginelib.DEPLOY_ROLE not in {r for roles in enginelib.PROVISION_ROLES.values() for r in roles}
    assert not enginelib.is_provisioned(enginelib.ownership_labels("p", role=enginelib.DEPLOY_ROLE), "p", "container")


def test_docker_py_is_imported_without_paramiko_unless_an_ssh_engine_needs_it(tmp_path):
    """A local engine's client skips paramiko (130-150 ms of every deploy
    and rollback); an ssh:// engine later in the same process still gets
    docker-py's ssh adapter.  A fresh interpreter, since this process has
    imported both already."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from jenkinsctl import engine\n"
        "from jenkinsctl.errors import EngineError\n"
        "try:\n"
        f"    engine.client('unix://{tmp_path}/none.sock', timeout=2)\n"
        "except EngineError:\n"
        "    pass\n"
        "print('docker' in sys.modules, 'paramiko' in sys.modules)\n"
        "engine._import_docker('ssh://deploy@127.0.0.1:1')\n"
        "import docker\n"
        "api = docker.APIClient(base_url='ssh://deploy@127.0.0.1:1', use_ssh_client=True, version='1.41')\n"
        "print(type(api.adapters['http+docker://ssh']).__name__, 'paramiko' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         cwd=pathlib.Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False", "SSHHTTPAdapter", "True"]
