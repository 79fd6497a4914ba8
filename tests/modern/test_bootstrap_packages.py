"""Every package scripts/bootstrap names for a release exists in that
release's real package index: Debian 13's from the trixie root the modern
engine runs from (debootstrap keeps the index it installed from), and this
host's own release (Debian 12 or 13) through apt-cache.  A name that exists
in one release only (openjdk-17, docker-cli) fails here on either kind of
host, before a machine of the other kind fails in scripts/bootstrap."""

from __future__ import annotations

import pathlib
import subprocess

import pytest

from tests.support.engine import IN_CI
from tests.unit.test_bootstrap import bootstrap_packages


@pytest.fixture(scope="module")
def trixie_root() -> pathlib.Path:
    from tests.support.modern_engine import ensure_rootfs

    try:
        return ensure_rootfs(log=lambda m: print(m, flush=True))
    except (RuntimeError, OSError) as exc:
        if IN_CI:
            pytest.fail(f"the trixie root could not be built: {exc}")
        pytest.skip(f"the trixie root could not be built: {exc}")


def index_names(lists: pathlib.Path, suite: str) -> set[str]:
    names: set[str] = set()
    files = sorted(lists.glob(f"*_dists_{suite}_main_binary-*_Packages"))
    assert files, f"no {suite} package index in {lists}"
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            names.update(line[9:].strip() for line in fh if line.startswith("Package: "))
    return names


def test_debian_13_packages_are_in_the_trixie_index(trixie_root):
    names = index_names(trixie_root / "var/lib/apt/lists", "trixie")
    assert "docker-cli" in names and "openjdk-17-jre-headless" not in names   # the index is trixie's
    wanted = bootstrap_packages((trixie_root / "etc/debian_version").read_text().strip())
    assert "docker-cli" in wanted
    assert [p for p in wanted if p not in names] == []


def test_this_hosts_packages_are_in_its_apt_index():
    version = pathlib.Path("/etc/debian_version").read_text().strip()
    wanted = bootstrap_packages(version)
    # One apt-cache run for all (each run reads the whole index); it prints
    # a record per package it knows and fails if any is unknown.
    out = subprocess.run(["apt-cache", "show", "--no-all-versions", *wanted], capture_output=True, text=True,
                         timeout=120).stdout
    known = {line[9:].strip() for line in out.splitlines() if line.startswith("Package: ")}
    assert "docker.io" in known, f"apt-cache knows no docker.io on Debian {version}: apt-get update first"
    missing = [p for p in wanted if p not in known]
    assert missing == [], f"Debian {version}'s apt index has no {missing}"
