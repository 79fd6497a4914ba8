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


def _function_imports(path: pathlib.Path) -> list[tuple[int, str]]:
    out = []
    for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    out += [(node.lineno, a.name) for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    out.append((node.lineno, node.module))
    return out


# Where a jenkinsctl module may still be imported inside a function, and why.
# Everything else imports its siblings at the module top.
LAZY_SIBLINGS = {
    # The CLI and the commands load the library only when a command runs:
    # `jenkinsctl COMMAND --help` and `--version` pay for nothing else.
    "cli.py": "*",
    "commands/*": "*",
    # The strategies import the deploy package; importing them from it at
    # the top would be a cycle, and a webhook deploy would load docker-py.
    "deploy/__init__.py": {"jenkinsctl.deploy.container", "jenkinsctl.deploy.swarm",
                           "jenkinsctl.deploy.stack", "jenkinsctl.deploy.webhook"},
    # PyYAML only with a config file; the step schemas only for a step's run.
    "config.py": {"jenkinsctl.yamlload", "jenkinsctl"},
    # `jenkinsctl build` and `push` do not pay for the deploy package.
    "build.py": {"jenkinsctl.deploy"},
    "ship.py": {"jenkinsctl.deploy"},
}
# docker-py is imported by the engine seam, and by the two image builders,
# whose errors carry the build log docker-py alone gives (their sources are
# also part of the agent image's content hash).
DOCKER_IMPORTERS = {"engine.py", "agent_image.py", "controller_image.py"}


def _allowed(rel: str) -> set[str] | str:
    for pattern, allowed in LAZY_SIBLINGS.items():
        if pathlib.PurePath(rel).match(pattern):
            return allowed
    return set()


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_siblings_are_imported_at_the_module_top_except_where_said(path):
    rel = str(path.relative_to(PKG))
    allowed = _allowed(rel)
    bad = [f"{rel}:{line}: import {name}" for line, name in _function_imports(path)
           if name.split(".")[0] == "jenkinsctl" and allowed != "*" and name not in allowed]
    assert not bad, "import jenkinsctl modules at the top (or say why not in LAZY_SIBLINGS):\n" + "\n".join(bad)


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_docker_py_is_imported_only_behind_the_engine_seam(path):
    rel = str(path.relative_to(PKG))
    bad = [f"{rel}:{line}: import {name}" for line, name in _imports(path)
           if name.split(".")[0] == "docker" and rel not in DOCKER_IMPORTERS]
    assert not bad, "use jenkinsctl.engine (engine_errors, EngineNotFound...) instead:\n" + "\n".join(bad)


def test_the_function_level_checker_sees_only_function_level_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import jenkinsctl.a\n\ndef f():\n    from jenkinsctl import b\n    import docker\n")
    assert [n for _, n in _function_imports(src)] == ["jenkinsctl", "docker"]
