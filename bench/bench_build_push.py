#!/usr/bin/env python3
"""Benchmark: what jenkinsctl adds over the docker CLI for build and push.

    .venv/bin/python bench/bench_build_push.py [--runs N] [--files N] [--engines host,modern]

On each engine (bench/engines.py: the host's, and Debian 13's 26.1 refusing
API < 1.44), against the plain CLI jenkinsctl would pick for it:

1. `jenkinsctl build` of an unchanged context / the plain BuildKit build
   (`docker buildx build`, or `DOCKER_BUILDKIT=1 docker build` for a CLI
   without buildx) of the same context (target <= 1.6, issue 16).
2. `jenkinsctl push` of an unchanged image / `docker push` of the same
   (target <= 2.0, issue 16), and the layer bytes the unchanged push uploaded
   (target 0), counted by a pass-through proxy in front of the registry
   (host engine only: the modern engine's registry is in its namespace).

Runs alternate between the two commands and the median wall time is
reported, so load from other work on the machine hits both alike.  Each
side's CPU time (user + sys of the command and the processes it waited for,
such as the docker CLI jenkinsctl runs; the engine's own work is on neither
side) is reported as the minimum of the runs, which load inflates least.  Needs the engine,
debian:bookworm-slim and /usr/bin/docker-registry (scripts/bootstrap).
Not a test: it prints a table and exits 0.

--jenkinsctl PATH measures another jenkinsctl, such as the wheel-installed
one `bench/bench_startup.py --keep DIR` leaves in DIR (as users run it:
the development venv's editable install adds its finder to every start).
Run that one without PYTHONPATH, which would bring the source tree back.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.engines import NAMES, STARTERS, Engine, engines_arg  # noqa: E402
from tests.support.faultproxy import FaultProxy  # noqa: E402

JENKINSCTL = [os.path.join(ROOT, ".venv", "bin", "jenkinsctl")]
if not os.access(JENKINSCTL[0], os.X_OK):
    JENKINSCTL = [sys.executable, "-m", "jenkinsctl"]
LABEL = "io.jenkinsctl.bench=1"  # not the test label: test sessions running alongside remove those
# Issue 16's targets: the floor is Python's start plus the docker CLI's.
BUILD_TARGET, PUSH_TARGET = 1.6, 2.0


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], env: dict, cwd: str | None = None) -> tuple[float, subprocess.CompletedProcess]:
    t, cpu = time.perf_counter(), _children_cpu()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")
    p.cpu = _children_cpu() - cpu  # type: ignore[attr-defined]
    return elapsed, p


def sample(cmd: list[str], env: dict) -> tuple[float, float]:
    """One run's wall and CPU seconds."""
    elapsed, p = timed(cmd, env)
    return elapsed, p.cpu  # type: ignore[attr-defined]


def make_context(path: str, files: int) -> None:
    """A small web app: a few hundred source files (~10 KiB each), one RUN."""
    os.makedirs(os.path.join(path, "src"), exist_ok=True)
    with open(os.path.join(path, "Dockerfile"), "w") as fh:
        fh.write("FROM debian:bookworm-slim\n"
                 "RUN useradd -u 1000 -m app && mkdir /app && chown app /app\n"
                 "WORKDIR /app\n"
                 "COPY src/ /app/src/\n"
                 "USER app\n"
                 'CMD ["ls", "/app/src"]\n')
    for i in range(files):
        with open(os.path.join(path, "src", f"module_{i:04d}.py"), "w") as fh:
            fh.write(f"# module {i}\n" + "".join(f"def f{j}(x):\n    return x * {j}\n\n" for j in range(300)))


def alternate(a, b, runs: int) -> tuple[list, list]:
    ta, tb = [], []
    for i in range(runs):
        first, second = (a, b) if i % 2 == 0 else (b, a)
        r1 = first()
        r2 = second()
        if first is a:
            ta.append(r1)
            tb.append(r2)
        else:
            ta.append(r2)
            tb.append(r1)
    return ta, tb


def figures(tj: list, td: list) -> tuple[float, float, float, float]:
    """Median wall and minimum CPU seconds of jenkinsctl's and docker's runs."""
    return (statistics.median(w for w, _ in tj), statistics.median(w for w, _ in td),
            min(c for _, c in tj), min(c for _, c in td))


def measure(eng: Engine, opts, tmp: str) -> list[tuple]:
    """The build and push figures on one engine."""
    reg, cli = eng.registry, eng.cli.path
    ctx = os.path.join(tmp, "ctx")
    dockercfg = os.path.join(tmp, f"docker-config-{eng.name}")
    repo = f"{reg.url}/jenkinsctl-test/bench"
    rows = []
    eng.load("debian:bookworm-slim")
    try:
        # --- build ---------------------------------------------------------------
        # Credentials go only to registry.url: the bench registry is it.
        env_j = dict(eng.env, BRANCH_NAME="bench", JENKINSCTL_REGISTRY_URL=reg.url)
        docker_build, env_bk = eng.plain_build(f"{repo}:docker", ctx, "--label", LABEL)
        j_build = [*JENKINSCTL, "build", ctx, "--image", repo, "--tag", "bench", "--label", LABEL,
                   "--builder", "buildkit", "-o", "json"]
        timed(docker_build, env_bk)  # warm: the cache holds every step
        _, p = timed(j_build, env_j)
        assert json.loads(p.stdout)["builder"] == "buildkit"
        tj, td = alternate(lambda: sample(j_build, env_j), lambda: sample(docker_build, env_bk), opts.runs)
        cached = json.loads(timed(j_build, env_j)[1].stdout)
        rows.append((f"{eng.name}: build, unchanged", *figures(tj, td), BUILD_TARGET,
                     f"{cached['cached_steps']}/{cached['total_steps']} steps cached"))

        # --- push ------------------------------------------------------------------
        os.makedirs(dockercfg)
        env_d = dict(eng.env, DOCKER_CONFIG=dockercfg)
        subprocess.run([cli, "login", "--username", reg.username, "--password-stdin", reg.url], env=env_d,
                       input=reg.password, text=True, check=True, capture_output=True)
        j_push = [*JENKINSCTL, "push", "--image", repo, "--tag", "bench", "-o", "json"]
        docker_push = [cli, "push", f"{repo}:bench"]
        _, p = timed(j_push, env_j)  # the first push uploads the layers
        first = json.loads(p.stdout)
        timed(docker_push, env_d)
        tj, td = alternate(lambda: sample(j_push, env_j), lambda: sample(docker_push, env_d), opts.runs)
        if eng.name == "host":
            # Bytes: the same unchanged push through a pass-through counting
            # proxy (the modern engine's registry is inside its namespace).
            with FaultProxy(("127.0.0.1", reg.port)) as proxy:
                eng.docker("tag", f"{repo}:bench", f"{proxy.url}/jenkinsctl-test/bench:bench")
                # Credentials go only to the registry they are configured for:
                # here that is the proxy's address.
                _, p = timed([*JENKINSCTL, "push", "--image", f"{proxy.url}/jenkinsctl-test/bench", "--tag",
                              "bench", "-o", "json"], dict(env_j, JENKINSCTL_REGISTRY_URL=proxy.url))
                again = json.loads(p.stdout)
                uploaded = f"layer bytes uploaded {proxy.uploaded_bytes()}"
                eng.docker("rmi", f"{proxy.url}/jenkinsctl-test/bench:bench", check=False)
        else:
            again = json.loads(timed(j_push, env_j)[1].stdout)
            uploaded = "bytes not counted"
        rows.append((f"{eng.name}: push, unchanged", *figures(tj, td), PUSH_TARGET,
                     f"layers pushed {again['layers_pushed']}, existing {again['layers_existing']}, "
                     f"{uploaded} (first push: {first['layers_pushed']} layers)"))
    finally:
        subprocess.run([cli, "logout", reg.url], env=dict(eng.env, DOCKER_CONFIG=dockercfg), capture_output=True)
        for tag in ("docker", "bench"):
            eng.docker("rmi", f"{repo}:{tag}", check=False)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--engines", type=engines_arg, default=list(NAMES),
                    help="comma list of host,modern (default: both)")
    ap.add_argument("--jenkinsctl", metavar="PATH", help="the jenkinsctl to measure (default: this checkout's)")
    opts = ap.parse_args()
    if opts.jenkinsctl:
        global JENKINSCTL
        JENKINSCTL = [opts.jenkinsctl]

    tmp = tempfile.mkdtemp(prefix="jenkinsctl-bench-")
    rows, described = [], []
    try:
        make_context(os.path.join(tmp, "ctx"), opts.files)
        for name in opts.engines:
            with STARTERS[name]() as eng:
                described.append(eng.describe())
                rows += measure(eng, opts, tmp)
    finally:
        subprocess.run(["rm", "-rf", tmp])

    version = [sample([*JENKINSCTL, "--version"], dict(os.environ)) for _ in range(opts.runs)]
    startup, startup_cpu = statistics.median(w for w, _ in version), min(c for _, c in version)
    for d in described:
        print(d)
    print(f"{opts.runs} alternating runs each: wall time medians, CPU time (user+sys) minimums; "
          f"context: {opts.files} files")
    print(f"{'figure':<28} {'jenkinsctl':>11} {'docker':>9} {'added':>8} {'ratio':>7} {'target':>7} "
          f"{'cpu j':>7} {'cpu d':>7} {'ratio':>6}  notes")
    for name, j, d, cj, cd, target, notes in rows:
        ratio = j / d
        mark = "ok" if ratio <= target else "MISSED"
        print(f"{name:<28} {j:>10.3f}s {d:>8.3f}s {j - d:>+7.3f}s {ratio:>7.2f} {'<=' + format(target, '.2f'):>7}"
              f" {cj * 1000:>5.0f}ms {cd * 1000:>5.0f}ms {cj / cd:>6.2f}  {mark}; {notes}")
    print(f"for scale: `{JENKINSCTL[0]} --version` {startup:.3f}s (median), {startup_cpu * 1000:.0f} ms CPU (min); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
