"""The state dir holds root-equivalent keys: private, never followed
through a symlink, never another user's, ignored by git."""

from __future__ import annotations

import logging
import os
import stat
import subprocess

import pytest

from jenkinsctl import statedir
from jenkinsctl.errors import ConfigError
from jenkinsctl.keys import KeyStore


@pytest.mark.case(23)
def test_a_new_state_dir_is_0700_with_a_gitignore_of_everything(tmp_path):
    d = tmp_path / "a" / "state"
    old = os.umask(0o022)
    try:
        KeyStore(d).client_key()
    finally:
        os.umask(old)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert (d / ".gitignore").read_text() == "*\n"
    # git agrees: nothing under it can be added by accident.
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    out = subprocess.run(["git", "-C", str(tmp_path), "status", "--porcelain", "--untracked-files=all"],
                         capture_output=True, text=True, check=True).stdout
    assert "keys" not in out and "id_ed25519" not in out


@pytest.mark.case(23)
def test_a_symlinked_state_dir_is_refused_and_not_followed(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(ConfigError, match="is a symlink") as exc:
        KeyStore(link).client_key()
    assert exc.value.hint
    assert list(real.iterdir()) == []   # nothing was written through it


@pytest.mark.case(23)
def test_a_symlinked_lock_file_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("x")
    (tmp_path / "provision.lock").symlink_to(target)
    with pytest.raises(ConfigError, match="symlink"):
        statedir.open_lock(tmp_path / "provision.lock")
    assert target.read_text() == "x"


@pytest.mark.case(23)
@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root (CI runs as root)")
def test_a_state_dir_or_lock_of_another_user_is_refused(tmp_path):
    d = tmp_path / "state"
    d.mkdir()
    os.chown(d, 4242, 4242)
    with pytest.raises(ConfigError, match="belongs to uid 4242"):
        statedir.prepare(d)
    mine = tmp_path / "mine"
    mine.mkdir()
    lock = mine / "provision.lock"
    lock.write_text("")
    os.chown(lock, 4242, 4242)
    with pytest.raises(ConfigError, match="belongs to uid 4242"):
        statedir.open_lock(lock)


@pytest.mark.case(23)
def test_a_state_dir_inside_a_git_work_tree_is_warned_about(tmp_path, caplog):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    with caplog.at_level(logging.WARNING, logger="jenkinsctl.statedir"):
        statedir.prepare(tmp_path / ".jenkinsctl")
    assert "inside the git work tree" in caplog.text
    caplog.clear()
    outside = tmp_path.parent / (tmp_path.name + "-outside")
    with caplog.at_level(logging.WARNING, logger="jenkinsctl.statedir"):
        statedir.prepare(outside)
    assert "git work tree" not in caplog.text


def test_concurrent_runs_creating_one_state_dir_both_succeed(tmp_path, monkeypatch):
    """Two runs on one project may create the state dir at the same moment;
    the loser of each create race must take what the winner made, not fail.
    The race is forced: every run waits at a barrier just before creating."""
    import threading

    barrier = threading.Barrier(4)
    real_mkdir, real_open = type(tmp_path).mkdir, os.open

    def mkdir(self, *a, **kw):
        barrier.wait(timeout=5)
        return real_mkdir(self, *a, **kw)

    def open_(path, flags, *a, **kw):
        if str(path).endswith(".gitignore"):
            barrier.wait(timeout=5)
        return real_open(path, flags, *a, **kw)

    monkeypatch.setattr(type(tmp_path), "mkdir", mkdir)
    monkeypatch.setattr(statedir.os, "open", open_)
    d = tmp_path / "state"
    errors: list[BaseException] = []

    def run():
        try:
            statedir.prepare(d)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert (d / ".gitignore").read_text() == statedir.GITIGNORE
