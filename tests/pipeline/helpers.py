"""Running the real CLI as a user (or a pipeline step) does: a subprocess
with everything it prints captured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str

    @property
    def json(self):
        return json.loads(self.stdout)

    @property
    def everything(self) -> str:
        return self.stdout + self.stderr


def jenkinsctl(*args: str, env: dict | None = None, cwd: str | None = None, timeout: float = 180) -> Run:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("JENKINSCTL_")}
    full_env.update(env or {})
    full_env["PYTHONPATH"] = ROOT + os.pathsep + full_env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-m", "jenkinsctl", *args], capture_output=True, text=True,
                       env=full_env, cwd=cwd or ROOT, timeout=timeout, stdin=subprocess.DEVNULL)
    return Run(p.returncode, p.stdout, p.stderr)


def git(repo, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          check=True, capture_output=True, text=True).stdout.strip()
