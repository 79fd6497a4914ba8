"""CLI conventions: exit codes, error format, JSON output, fast start-up."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import pathlib

import pytest

from jenkinsctl import __version__
from jenkinsctl.cli import main
from jenkinsctl.commands import COMMANDS

BAD = pathlib.Path(__file__).parent / "fixtures" / "config" / "bad"


def run_cli(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jenkinsctl", *argv], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


def test_version_and_help_do_not_import_docker_or_jenkins():
    code = ("import sys; from jenkinsctl.cli import main\n"
            "for argv in (['--version'], ['--help'], ['build', '--help'], ['apply', '--help']):\n"
            "    try: main(argv)\n"
            "    except SystemExit: pass\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('docker', 'jenkins', 'requests', 'yaml', 'jsonschema'))\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


# Run as a user's wheel install runs: -S keeps `site` (and the editable
# install's finder, which imports re and pathlib) out, jenkinsctl comes from
# this checkout and its dependencies from site-packages, added as plain paths.
# sys.modules is read rather than -X importtime, which does not see modules
# that importlib.import_module loads (the command modules).
_STARTUP = """
import sys
root, ndeps = sys.argv[1], int(sys.argv[2])
deps, argv = sys.argv[3:3 + ndeps], sys.argv[3 + ndeps:]
sys.path[:0] = [root]
sys.path.extend(deps)
from jenkinsctl.cli import main
try:
    code = main(argv)
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
print('\\nMODULES ' + ' '.join(sorted(sys.modules)))
sys.exit(code)
"""
# What each fast path must leave alone. --help builds an argparse parser,
# and argparse imports re; --version builds nothing.
_HEAVY = {"docker", "jenkins", "requests", "yaml", "jsonschema", "logging", "shutil", "jenkinsctl.secrets",
          "jenkinsctl.config"}
_NOT_ON_VERSION = _HEAVY | {"re", "argparse", "json", "typing"}


def _startup_modules(argv: list[str]) -> tuple[subprocess.CompletedProcess, set[str]]:
    import sysconfig

    root = str(pathlib.Path(__import__("jenkinsctl").__file__).resolve().parent.parent)
    deps = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    out = subprocess.run([sys.executable, "-S", "-c", _STARTUP, root, str(len(deps)), *deps, *argv],
                         capture_output=True, text=True, timeout=60, cwd="/",
                         env={k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "JENKINSCTL_"))})
    assert "\nMODULES " in out.stdout, out.stderr
    text, _, mods = out.stdout.rpartition("\nMODULES ")
    return subprocess.CompletedProcess(out.args, out.returncode, text, out.stderr), set(mods.split())


def _top(mods: set[str]) -> set[str]:
    return mods | {m.split(".")[0] for m in mods}


def test_version_imports_only_what_it_prints():
    out, mods = _startup_modules(["--version"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"jenkinsctl {__version__}"
    assert "jenkinsctl.cli" in mods  # the check looked at the right run
    assert not _top(mods) & _NOT_ON_VERSION, sorted(_top(mods) & _NOT_ON_VERSION)


@pytest.mark.parametrize("argv", [["--help"], ["validate", "--help"], ["build", "--help"]])
def test_help_imports_no_dependency(argv):
    out, mods = _startup_modules(argv)
    assert out.returncode == 0, out.stderr
    assert "usage: jenkinsctl" in out.stdout
    assert "argparse" in mods
    assert not _top(mods) & _HEAVY, sorted(_top(mods) & _HEAVY)


# A module that logs, loaded after the CLI set logging up (as the command
# modules load theirs inside run()): "early" imports logging first.
_LOGGING = """
import sys
root, ndeps = sys.argv[1], int(sys.argv[2])
deps, (debug, when) = sys.argv[3:3 + ndeps], sys.argv[3 + ndeps:]
sys.path[:0] = [root]
sys.path.extend(deps)
if when == "early":
    import logging
from jenkinsctl import cli, secrets
secrets.sensitive("hunter2-token")
cli._setup_logging(debug == "debug")
print("LOADED", "logging" in sys.modules, flush=True)
import logging
log = logging.getLogger("jenkinsctl.test")
log.debug("debug record hunter2-token")
log.info("info record hunter2-token")
log.warning("warning record")
logging.getLogger("other").info("not ours")
"""


@pytest.mark.parametrize("debug", ["debug", "plain"])
@pytest.mark.parametrize("when", ["early", "late"])
def test_logging_set_up_when_a_module_first_needs_it(debug, when):
    """Commands that log nothing (an unchanged build or push) never import
    logging; a module that does import it later gets the same handler,
    level and redaction as one loaded before the set-up."""
    import sysconfig

    root = str(pathlib.Path(__import__("jenkinsctl").__file__).resolve().parent.parent)
    deps = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    out = subprocess.run([sys.executable, "-S", "-c", _LOGGING, root, str(len(deps)), *deps, debug, when],
                         capture_output=True, text=True, timeout=60, cwd="/",
                         env={k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "JENKINSCTL_"))})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"LOADED {when == 'early'}"
    expected = ["info record ********", "warning record"]
    if debug == "debug":
        expected.insert(0, "debug record ********")
    assert out.stderr.splitlines() == expected


def test_a_command_that_logs_nothing_does_not_load_logging(tmp_path):
    """`validate` of a file that does not exist fails without logging: the
    error reaches stderr and the error file all the same.  Outside a
    pipeline step, the config loads without the step schemas."""
    err = tmp_path / "err.json"
    out, mods = _startup_modules(["--error-file", str(err), "validate", "-c", str(tmp_path / "none.yaml")])
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: "), out.stderr
    assert json.loads(err.read_text())["message"]
    assert "jenkinsctl.config" in mods  # the command ran
    assert "logging" not in mods
    # The step schemas (and html, difflib) are for a pipeline step's run.
    assert not {"jenkinsctl.steps", "html", "difflib"} & mods


@pytest.mark.parametrize("columns", [None, "0", "-5", "x", "40", "200"])
def test_help_is_sized_as_argparse_sizes_it(columns, monkeypatch, capsys):
    """--help sizes itself without shutil, to the same width argparse's own
    formatter (shutil.get_terminal_size) picks."""
    import argparse

    from jenkinsctl import cli

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    ours = cli._top_parser()
    ours.formatter_class = argparse.RawDescriptionHelpFormatter
    stdlib_text = ours.format_help()
    assert cli._top_parser().format_help() == stdlib_text
    module = importlib.import_module(COMMANDS["build"][0])
    sub = cli._command_parser("build", module)
    ours_text = sub.format_help()
    sub.formatter_class = argparse.RawDescriptionHelpFormatter
    assert ours_text == sub.format_help()


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"jenkinsctl {__version__}"


def test_help_lists_every_command():
    out = run_cli("--help")
    assert out.returncode == 0
    for name in COMMANDS:
        assert name in out.stdout


def test_every_command_module_imports_and_has_help():
    for name in COMMANDS:
        out = run_cli(name, "--help")
        assert out.returncode == 0, f"{name}: {out.stderr}"
        assert f"jenkinsctl {name}" in out.stdout


def test_unknown_command_suggests():
    out = run_cli("valdate")
    assert out.returncode == 2
    assert "error: unknown command 'valdate'" in out.stderr
    assert "hint: did you mean 'validate'?" in out.stderr


def test_bad_flag_is_a_usage_error_with_hint():
    out = run_cli("validate", "--no-such-flag")
    assert out.returncode == 2
    assert out.stderr.startswith("error: unrecognized arguments: --no-such-flag")
    assert "hint: run 'jenkinsctl validate --help'" in out.stderr


def test_config_error_format_text_no_traceback():
    out = run_cli("validate", str(BAD / "duplicate-key.yaml"))
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    assert lines[0].startswith("error: ") and "duplicate-key.yaml:4:1: duplicate key 'project'" in lines[0]
    assert lines[1].startswith("hint: ")
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_debug_shows_traceback():
    out = run_cli("--debug", "validate", str(BAD / "duplicate-key.yaml"))
    assert out.returncode == 2 and "Traceback" in out.stderr


def test_json_output_is_one_document_on_stdout_even_on_error():
    ok = run_cli("--output", "json", "validate")
    assert ok.returncode == 0
    assert json.loads(ok.stdout)["config"]["project"] == "jenkinsctl"
    bad = run_cli("validate", "-o", "json", str(BAD / "unknown-key.yaml"))
    assert bad.returncode == 2
    doc = json.loads(bad.stdout)
    assert doc["error"]["category"] == "config"
    assert doc["error"]["details"]["line"] == 2
    assert doc["error"]["details"]["key"] == "controller.prot"


def test_error_file_gets_the_details(tmp_path):
    target = tmp_path / "err.json"
    out = run_cli("--error-file", str(target), "validate", str(BAD / "out-of-range.yaml"))
    assert out.returncode == 2
    doc = json.loads(target.read_text())
    assert doc["exit_code"] == 2 and "out of range" in doc["message"] and doc["hint"]


def test_validate_prints_resolved_config_with_secret_references(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("registry:\n  password: {env: REG_PW}\n")
    out = run_cli("validate", str(cfg), env={"REG_PW": "s3cret-value"})
    assert out.returncode == 0
    assert "env: REG_PW" in out.stdout and "s3cret-value" not in out.stdout
    assert "agents:" in out.stdout  # defaults applied


def test_no_tty_means_no_ansi():
    out = run_cli("--help")
    assert "\x1b[" not in out.stdout + out.stderr


def test_params_env_must_be_json_object():
    out = run_cli("--params-env", "P", "validate", env={"P": "[1]"})
    assert out.returncode == 2 and "expected a JSON object" in out.stderr
    out = run_cli("--params-env", "P", "validate", env={"P": "{oops"})
    assert out.returncode == 2 and "not valid JSON" in out.stderr


def test_unexpected_exception_becomes_exit_1(monkeypatch, capsys):
    import jenkinsctl.commands.validate as v

    def boom(args, ctx):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(v, "run", boom)
    assert main(["validate"]) == 1
    err = capsys.readouterr().err
    assert "error: unexpected RuntimeError: kaboom" in err and "--debug" in err
