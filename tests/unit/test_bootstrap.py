"""The Debian packages scripts/bootstrap installs, per release
(`scripts/bootstrap --packages VERSION`, VERSION as in /etc/debian_version).
tests/modern/test_bootstrap_packages.py checks the names against real
package indexes."""

from __future__ import annotations

import pathlib
import subprocess

import pytest

BOOTSTRAP = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "bootstrap"


def bootstrap_packages(version: str) -> list[str]:
    out = subprocess.run(["bash", str(BOOTSTRAP), "--packages", version], capture_output=True, text=True,
                         check=True, timeout=30)
    return out.stdout.split()


@pytest.mark.parametrize("version", ["13.8", "13.0", "14.1", "trixie/sid", "forky/sid"])
def test_debian_13_and_later_get_the_separate_docker_cli_and_buildx(version):
    pkgs = bootstrap_packages(version)
    assert "docker.io" in pkgs and "docker-cli" in pkgs and "docker-buildx" in pkgs


@pytest.mark.parametrize("version", ["12.11", "12.0"])
def test_debian_12_gets_docker_io_alone(version):
    """Debian 12's docker.io carries the 20.10 CLI; it has no docker-cli or
    docker-buildx package, so naming them would fail apt-get install."""
    pkgs = bootstrap_packages(version)
    assert "docker.io" in pkgs and "docker-cli" not in pkgs and "docker-buildx" not in pkgs


def test_the_list_names_no_package_of_one_release_only():
    """No JDK by version (Debian 13 has no openjdk-17, Debian 12 no
    openjdk-21: groovy brings the default JDK), no python3.X-venv, and every
    name once."""
    for version in ("12.11", "13.8"):
        pkgs = bootstrap_packages(version)
        assert len(pkgs) == len(set(pkgs)), pkgs
        assert not [p for p in pkgs if p.startswith(("openjdk-", "python3.")) or p.endswith("-jdk")], pkgs
        assert {"python3-venv", "groovy", "debootstrap", "docker-registry", "nodejs", "npm"} <= set(pkgs)


def test_packages_mode_changes_nothing(tmp_path):
    """--packages prints and exits before any step: it runs as any user and
    touches neither apt, the engine nor the virtualenv."""
    r = subprocess.run(["bash", str(BOOTSTRAP), "--packages", "13.8"], capture_output=True, text=True, timeout=30,
                       env={"PATH": "/usr/bin:/bin", "JENKINSCTL_VENV": str(tmp_path / "venv"),
                            "DOCKER_HOST": "unix:///nonexistent.sock"})
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert not (tmp_path / "venv").exists()
