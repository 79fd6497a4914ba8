"""Start-up cost of `jenkinsctl --version` and `--help`, as a ratio to a bare
`python3 -c pass` from the same interpreter, measured in the same run.

It measures jenkinsctl the way users run it: a wheel installed into a
virtualenv, with bytecode compiled.  The development venv is no good for
this: its editable install puts setuptools' finder into `site`, which
imports pathlib and more at every interpreter start (tens of ms that no
user pays), and runs the source tree's modules.

So the benchmark builds the wheel of this checkout, installs it with
`--no-deps` into a throw-away venv, and makes the dependencies (docker,
python-jenkins, PyYAML, ...) importable through a `.pth` line naming the
running interpreter's site-packages (`--version` and `--help` must not
import them anyway).  `python3 -c pass` runs from the same throw-away venv,
so both sides pay the same `site`.  Rounds are interleaved, so a machine
that slows down mid-run slows both sides; the figures are medians.

Run: .venv/bin/python bench/bench_startup.py [--rounds N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = 1.3  # issue 16: `jenkinsctl --version` / `python3 -c pass`


def venv_paths(venv: str) -> tuple[str, str]:
    """The python and the jenkinsctl script of ``venv``."""
    return os.path.join(venv, "bin", "python"), os.path.join(venv, "bin", "jenkinsctl")


def install(workdir: str) -> str:
    """Build this checkout's wheel and install it into a new venv under
    ``workdir``; returns the venv's path."""
    # Without PYTHONPATH: a source tree on it (with the egg-info the wheel
    # build leaves there) would make pip think jenkinsctl is installed.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    wheels = os.path.join(workdir, "wheels")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", wheels, ROOT], check=True, env=env)
    venv = os.path.join(workdir, "venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    py, _ = venv_paths(venv)
    wheel = [os.path.join(wheels, w) for w in os.listdir(wheels) if w.endswith(".whl")]
    # The running interpreter's pip installs into the new venv: an ordinary
    # install, with pip's own console script and compiled bytecode.
    subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "--quiet", "--no-deps", "--no-index",
                    *wheel], check=True, env=env)
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, env=env).stdout.strip()
    if not os.path.exists(os.path.join(venv, "bin", "jenkinsctl")):
        raise SystemExit(f"the wheel did not install into {venv}")
    # Dependencies from the running interpreter's site-packages, after the
    # venv's own (so the wheel's jenkinsctl wins over an editable one; a
    # path added by a .pth line does not run that directory's .pth files,
    # so the editable finder stays out).
    with open(os.path.join(site, "zz-deps.pth"), "w", encoding="utf-8") as fh:
        fh.write(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def run_once(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd="/")
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--keep", metavar="DIR", help="build the venv in DIR and leave it there")
    opts = ap.parse_args()

    workdir = opts.keep or tempfile.mkdtemp(prefix="jenkinsctl-bench-startup-")
    os.makedirs(workdir, exist_ok=True)
    try:
        venv = install(workdir)
        py, script = venv_paths(venv)
        # No PYTHONPATH (it would bring the source tree back), no config file.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "JENKINSCTL_"))}
        where = subprocess.run([py, "-c", "import jenkinsctl; print(jenkinsctl.__file__)"],
                               check=True, capture_output=True, text=True, env=env, cwd="/").stdout.strip()
        if not where.startswith(venv):
            raise SystemExit(f"the venv imports jenkinsctl from {where}, not from its wheel")
        cases = {
            "python3 -c pass": [py, "-c", "pass"],
            "jenkinsctl --version": [script, "--version"],
            "jenkinsctl --help": [script, "--help"],
            "jenkinsctl validate --help": [script, "validate", "--help"],
        }
        for argv in cases.values():  # warm the page cache, and fail early
            run_once(argv, env)
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(opts.rounds):
            for name, argv in cases.items():
                samples[name].append(run_once(argv, env))
        base = statistics.median(samples["python3 -c pass"])
        print(f"{py} ({sys.version.split()[0]}), {opts.rounds} interleaved rounds, medians")
        print(f"{'command':<28} {'median ms':>10} {'ratio':>7}")
        for name, times in samples.items():
            t = statistics.median(times)
            print(f"{name:<28} {t * 1000:>10.1f} {t / base:>7.2f}")
        ratio = statistics.median(samples["jenkinsctl --version"]) / base
        print(f"jenkinsctl --version / python3 -c pass = {ratio:.2f} (target <= {TARGET})")
    finally:
        if not opts.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
