"""python -m tests.fakejenkins --port PORT [--user NAME:PASSWORD ...] [--startup-seconds N] [--no-crumbs]

Starts the emulator in the foreground, on 127.0.0.1 unless --bind says otherwise.
Like the real controller it reads CASC_JENKINS_CONFIG (a file, a directory or
a comma-separated list) at start; then it has only the users that
configuration declares (plus any --user), not the default admin:admin.
"""
from __future__ import annotations

import argparse
import os
import sys

from .server import JENKINS_VERSION, FakeJenkins, User
from .silent import SilentServer


def _pair(text: str, what: str) -> tuple[str, str]:
    name, sep, secret = text.partition(":")
    if not sep or not name or not secret:
        raise argparse.ArgumentTypeError(f"{what} must look like NAME:{what.split()[-1].upper()}, got {text!r}")
    return name, secret


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.fakejenkins", description="Jenkins controller emulator (tests only)")
    p.add_argument("--port", type=int, required=True, help="TCP port (0 picks a free one)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)")
    p.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD", help="an administrator")
    p.add_argument("--token", action="append", default=[], metavar="NAME:TOKEN", help="an API token for a user")
    p.add_argument("--read-only-user", action="append", default=[], metavar="NAME:PASSWORD",
                   help="a user with Overall/Read only")
    p.add_argument("--startup-seconds", type=float, default=0, help="answer 503 for this long after start")
    p.add_argument("--no-crumbs", action="store_true", help="CSRF protection off: crumbIssuer answers 404")
    p.add_argument("--time-scale", type=float, default=1.0, help="multiply SSH retryWaitTime by this")
    p.add_argument("--known-hosts", default=None, help="known_hosts file for KnownHostsFileKeyVerificationStrategy")
    p.add_argument("--jenkins-version", default=JENKINS_VERSION, help="the X-Jenkins header")
    p.add_argument("--never-answer", action="store_true", help="accept TCP connections and never answer")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.never_answer:
        # Listen before printing the address: a client that reads the line and
        # connects at once must meet a listening socket, not a refused connect.
        srv = SilentServer(args.bind, args.port).start()
        print(f"fakejenkins: never answering on {srv.host}:{srv.port}", flush=True)
        srv.serve_forever()
        return 0
    users: dict[str, User] = {}
    try:
        for text in args.user:
            name, pw = _pair(text, "--user NAME:password")
            users[name] = User(name, pw)
        for text in args.read_only_user:
            name, pw = _pair(text, "--read-only-user NAME:password")
            users[name] = User(name, pw, role="read")
        for text in args.token:
            name, tok = _pair(text, "--token NAME:token")
            if name not in users:
                users[name] = User(name)
            users[name].tokens = users[name].tokens + (tok,)
    except argparse.ArgumentTypeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    casc = os.environ.get("CASC_JENKINS_CONFIG") or None
    if not users and not casc:
        users["admin"] = User("admin", "admin")
    emu = FakeJenkins(list(users.values()), host=args.bind, port=args.port, crumbs=not args.no_crumbs,
                      startup_seconds=args.startup_seconds, version=args.jenkins_version,
                      time_scale=float(os.environ.get("FAKEJENKINS_TIME_SCALE") or args.time_scale),
                      known_hosts=args.known_hosts, casc=casc, environ=dict(os.environ))
    emu.start()
    state = f"boot FAILED: {emu.boot_failure}" if emu.boot_failure else \
        f"users: {', '.join(sorted(emu.users))}; crumbs {'on' if emu.crumbs else 'off'}"
    print(f"fakejenkins: Jenkins {emu.version} emulator on {args.bind}:{emu.port} "
          f"(CASC_JENKINS_CONFIG={casc or 'unset'}; {state})", flush=True)
    try:
        emu._stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
