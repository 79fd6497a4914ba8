"""What the ship and proxy benchmarks share: the jenkinsctl to run, the
example app, timed commands and the one-line change between two ships."""

from __future__ import annotations

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The installed command, as users run it; the module when PYTHONPATH points
# at another checkout (a worktree), whose code the venv script would not run.
JENKINSCTL = [os.path.join(ROOT, ".venv", "bin", "jenkinsctl")]
if not os.access(JENKINSCTL[0], os.X_OK) or os.environ.get("PYTHONPATH"):
    JENKINSCTL = [sys.executable, "-m", "jenkinsctl"]
EXAMPLE = os.path.join(ROOT, "examples", "webapp")
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]


def run(cmd, env, cwd=None, check=True) -> tuple[float, subprocess.CompletedProcess]:
    """Run ``cmd``; its wall time and result.  A failure ends the bench
    with the command's last output, since its figures would mean nothing."""
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t
    if check and p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")
    return elapsed, p


def bump(ctx: str, env: dict) -> str:
    """The one-line change: the next patch version, committed."""
    path = os.path.join(ctx, "VERSION")
    with open(path) as fh:
        major, minor, patch = fh.read().strip().split(".")
    version = f"{major}.{minor}.{int(patch) + 1}"
    with open(path, "w") as fh:
        fh.write(version + "\n")
    run(GIT + ["commit", "-q", "-am", version], env, cwd=ctx)
    return version
