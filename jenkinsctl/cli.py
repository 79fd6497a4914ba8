"""Argument parsing and dispatch; the only place errors become exit codes.

Exit codes: 0 success; 1 unexpected error; 2 usage or config error;
3 engine; 4 build; 5 registry; 6 deploy; 7 Jenkins; 8 provision;
9 doctor found a failing check; 10 timeout; 130 interrupted.

Every command pays this module's import before it starts, and `--version`
pays nothing else, so the module imports only `os` and `sys` (which Python
has loaded already) and jenkinsctl's own light modules.  argparse, json,
logging and the redaction helpers (which need `re`) are imported by the
functions that use them: `--version` answers before any of them, and
`--help` needs argparse only.  tests/unit/test_cli.py holds this line.
"""

from __future__ import annotations

import os
import sys

from jenkinsctl import __version__
from jenkinsctl.commands import COMMANDS
from jenkinsctl.errors import ConfigError, JenkinsctlError, UsageError

TYPE_CHECKING = False  # typing costs more to import than all of --version
if TYPE_CHECKING:
    import argparse
    from typing import Any, Sequence


class Context:
    """What every command gets: global options plus lazily made clients."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.config_path: str | None = args.config
        self.output: str = args.output
        self.debug: bool = args.debug
        # A pipeline step's run: the config is confined (config.confine_for_step).
        self.step_mode: bool = bool(getattr(args, "params_env", None))
        self._config = None

    @property
    def config(self):
        """The resolved config; loaded on first use, so commands that never
        need it (such as ``build`` with all flags given) never fail on it."""
        if self._config is None:
            from jenkinsctl.config import load_config

            self._config = load_config(self.config_path, env=os.environ, step_mode=self.step_mode)
        return self._config


def _parser_class() -> type[argparse.ArgumentParser]:
    import argparse

    class _Parser(argparse.ArgumentParser):
        """argparse exits with status 2 on its own; route that through UsageError
        so the message format and the error-details file stay uniform."""

        def error(self, message: str):
            raise UsageError(message, hint=f"run '{self.prog} --help' for usage")

    return _Parser


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``, as argparse sizes its help,
    without importing shutil (bz2, lzma, fnmatch), which --help needs for
    nothing else."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 0
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


def _formatter(prog: str) -> argparse.HelpFormatter:
    import argparse

    return argparse.RawDescriptionHelpFormatter(prog, width=_terminal_columns() - 2)


def _add_globals(p: argparse.ArgumentParser, suppress: bool) -> None:
    import argparse

    # On subcommands the defaults are suppressed so a global given before the
    # command is not reset by the subparser.
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    p.add_argument("--config", "-c", metavar="FILE", default=d(os.environ.get("JENKINSCTL_CONFIG")),
                   help="config file (default: ./jenkinsctl.yaml if present, else built-in defaults)")
    p.add_argument("--output", "-o", choices=("text", "json"), default=d("text"),
                   help="text for people, json for one machine-readable document on stdout")
    p.add_argument("--debug", action="store_true", default=d(False), help="log more and show tracebacks")
    p.add_argument("--params-env", metavar="VAR", default=d(None),
                   help="read the command's parameters as a JSON object from this environment variable "
                        "(how the pipeline steps call jenkinsctl, so values never reach a command line)")
    p.add_argument("--error-file", metavar="FILE", default=d(None),
                   help="on failure, write the error as JSON to FILE")


def _top_parser() -> argparse.ArgumentParser:
    import argparse

    width = max(len(n) for n in COMMANDS)
    epilog = "commands:\n" + "\n".join(f"  {n:<{width}}  {h}" for n, (_, h) in COMMANDS.items())
    p = _parser_class()(prog="jenkinsctl", description="Build, push and redeploy Docker images through the host "
                        "engine, and provision Jenkins SSH agents that can do it.",
                        epilog=epilog, formatter_class=_formatter)
    p.add_argument("--version", action="version", version=f"jenkinsctl {__version__}")
    _add_globals(p, suppress=False)
    p.add_argument("command", metavar="COMMAND", nargs="?", help="one of the commands below")
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def _command_parser(name: str, module) -> argparse.ArgumentParser:
    _, help_text = COMMANDS[name]
    p = _parser_class()(prog=f"jenkinsctl {name}", description=getattr(module, "DESCRIPTION", help_text),
                        formatter_class=_formatter)
    _add_globals(p, suppress=True)
    module.add_arguments(p)
    return p


def _params_from_env(var: str) -> dict[str, Any]:
    import json

    raw = os.environ.get(var)
    if raw is None:
        raise UsageError(f"--params-env {var}: the variable is not set",
                         hint="the pipeline step sets it; set it to a JSON object when calling by hand")
    try:
        params = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--params-env {var}: not valid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise ConfigError(f"--params-env {var}: the JSON is nested too deeply",
                          hint="step parameters are strings, lists and maps of strings, a level or two deep") from None
    if not isinstance(params, dict):
        raise ConfigError(f"--params-env {var}: expected a JSON object, got {type(params).__name__}")
    return params


def _emit(ctx_output: str, result: Any, module) -> None:
    # Results pass through the redaction too: `validate` prints the config and
    # `status` / `doctor` the controller URL, which may carry user:token.
    import json

    from jenkinsctl.secrets import redact, redact_obj

    result = redact_obj(result)
    if ctx_output == "json":
        json.dump(result, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
        return
    render = getattr(module, "render", None)
    text = redact(render(result) if render else (None if result is None else str(result)))
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _setup_logging(debug: bool) -> None:
    """Send the ``jenkinsctl`` loggers to stderr, redacted, at INFO (DEBUG
    with --debug).

    Importing logging (with traceback, string and textwrap) costs about as
    much CPU as the rest of an unchanged ``build`` or ``push`` adds over the
    docker CLI, and those commands log nothing.  So when logging is not
    loaded yet, the handler is installed by the import that loads it: every
    module that logs imports logging before it makes its logger, so its first
    record finds the handler in place, exactly as if it had been set up here.
    """
    if "logging" in sys.modules:
        _configure_logging(debug)
        return
    _forget_logging_hook()
    sys.meta_path.insert(0, _LoggingHook(debug))


def _configure_logging(debug: bool) -> None:
    import logging

    from jenkinsctl.secrets import redact

    class _RedactingFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return redact(super().format(record))

    # Logs go to stderr so stdout stays a clean result (or one JSON document).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("%(message)s"))
    root = logging.getLogger("jenkinsctl")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False


class _LoggingHook:
    """A meta path finder that lets the standard finders load ``logging``,
    then runs _configure_logging once the module has run, before the import
    returns to the module that asked for it.  It removes itself on first use."""

    def __init__(self, debug: bool) -> None:
        self.debug = debug

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "logging":
            return None
        _forget_logging_hook()
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        loader = spec.loader if spec is not None else None
        if loader is None:  # not found as a file: the import machinery carries on, unconfigured
            return spec
        run_module, debug = loader.exec_module, self.debug

        def exec_module(module: Any) -> None:
            run_module(module)
            _configure_logging(debug)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _forget_logging_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _LoggingHook)]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:
        # What argparse's version action prints, without building a parser:
        # a pipeline step's first call, and a check scripts run often.
        sys.stdout.write(f"jenkinsctl {__version__}\n")
        return 0
    output, debug, error_file = "text", "--debug" in argv, None
    module = None
    try:
        top = _top_parser()
        g = top.parse_args(argv)
        output, debug, error_file = g.output, g.debug, g.error_file
        if not g.command:
            top.print_help()
            return 0
        if g.command not in COMMANDS:
            import difflib

            close = difflib.get_close_matches(g.command, COMMANDS, n=1)
            raise UsageError(f"unknown command '{g.command}'",
                             hint=f"did you mean '{close[0]}'?" if close else "run 'jenkinsctl --help' for the list")
        import importlib

        module = importlib.import_module(COMMANDS[g.command][0])
        sub = _command_parser(g.command, module)
        for key, value in vars(g).items():
            if key not in ("command", "rest"):
                sub.set_defaults(**{key: value})
        if g.params_env:
            from jenkinsctl.steps import params_to_defaults

            defaults = params_to_defaults(g.command, _params_from_env(g.params_env))
            sub.set_defaults(**defaults)
            # A required option given through --params-env is given.
            for action in sub._actions:
                if action.dest in defaults:
                    action.required = False
        args = sub.parse_args(g.rest)
        if args.params_env and not g.params_env:
            # Given after the command it would be parsed and then ignored.
            raise UsageError("--params-env must come before the command",
                             hint=f"jenkinsctl --params-env {args.params_env} {g.command} ...")
        output, debug, error_file = args.output, args.debug, args.error_file
        _setup_logging(debug)
        ctx = Context(args)
        result = module.run(args, ctx)
        _emit(output, result, module)
        return 0
    except JenkinsctlError as exc:
        # A command that fails with a result to show (doctor's checks, a
        # deploy's outcome) sets exc.result; it is printed like a success.
        if getattr(exc, "result", None) is not None and module is not None:
            if output == "json":
                # One document: the result with the error in it.
                _emit(output, {**(exc.result or {}), "error": exc.to_dict()}, module)
                output = "json-done"
            else:
                _emit(output, exc.result, module)
        return _fail(exc, output, debug, error_file)
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that catches everything
        err = JenkinsctlError(f"unexpected {type(exc).__name__}: {exc}",
                              hint="run again with --debug for the traceback, and report it")
        if debug:
            _print_traceback(exc)
        return _fail(err, output, debug, error_file)


def _print_traceback(exc: BaseException) -> None:
    import traceback

    from jenkinsctl.secrets import redact

    sys.stderr.write(redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))))


def _fail(exc: JenkinsctlError, output: str, debug: bool, error_file: str | None) -> int:
    """Report ``exc`` on every channel.  This is the boundary every error text
    crosses, so the redaction happens here, once, for all of them."""
    import json

    from jenkinsctl.secrets import redact_obj

    if debug and exc.__traceback__ is not None and exc.exit_code != 1:
        _print_traceback(exc)
    details = redact_obj(exc.to_dict())
    sys.stderr.write(f"error: {details['message']}\n")
    if details.get("hint"):
        sys.stderr.write(f"hint: {details['hint']}\n")
    if output == "json":
        json.dump({"error": details}, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    if error_file:
        try:
            with open(error_file, "w", encoding="utf-8") as fh:
                json.dump(details, fh, default=str)
        except OSError as write_err:
            sys.stderr.write(f"error: could not write --error-file {error_file}: {write_err}\n")
    return exc.exit_code
