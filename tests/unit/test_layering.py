"""Commands parse and render; the outside systems sit behind the library.

No command module may import docker-py or python-jenkins, and the modules
that build, tag and push no longer carry function-level docker imports:
docker-py's errors are translated once, in jenkinsctl.engine."""

from __future__ import annotations

import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[2] / "jenkinsctl"
FORBIDDEN = ("docker", "jenkins", "requests")


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def _outside(name: str) -> bool:
    return name.split(".")[0] in FORBIDDEN


@pytest.mark.parametrize("path", sorted((PKG / "commands").glob("*.py")), ids=lambda p: p.name)
def test_no_command_imports_docker_or_python_jenkins(path):
    bad = [f"{path.name}:{line}: import {name}" for line, name in _imports(path) if _outside(name)]
    assert not bad, "commands only parse and render; use jenkinsctl's library modules:\n" + "\n".join(bad)


@pytest.mark.parametrize("name", ["build.py", "registry.py", "tags.py", "ship.py"])
def test_image_modules_leave_docker_errors_to_the_engine_seam(name):
    bad = [f"{name}:{line}: import {mod}" for line, mod in _imports(PKG / name) if _outside(mod)]
    assert not bad, "translate docker-py's errors with jenkinsctl.engine.engine_errors:\n" + "\n".join(bad)


def test_the_checker_sees_a_function_level_import(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    import docker.errors\n    from jenkins import Jenkins\n")
    assert [n for _, n in _imports(src) if _outside(n)] == ["docker.errors", "jenkins"]


def test_image_py_is_gone():
    assert not (PKG / "image.py").exists()
