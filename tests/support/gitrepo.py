"""A throw-away git checkout with one commit, for the tests of git facts."""
from __future__ import annotations

import pathlib
import subprocess


def git(repo: pathlib.Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   check=True, capture_output=True)


def one_commit_repo(path: pathlib.Path, origin: str | None = None) -> tuple[pathlib.Path, str]:
    """``path`` made a checkout of branch main holding a Dockerfile in one
    commit; returns it and the commit's sha."""
    git(path, "init", "-q", "-b", "main")
    (path / "Dockerfile").write_text("FROM scratch\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "one")
    if origin:
        git(path, "remote", "add", "origin", origin)
    sha = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True,
                         text=True, check=True).stdout.strip()
    return path, sha
