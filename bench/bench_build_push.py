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

jenkinsctl is measured twice: as users run it, a wheel of this checkout
installed into a throw-away venv (bench_startup.install: bytecode compiled,
no editable finder), and as this checkout runs it (the development venv's
script with its editable install's finder, or ``python -m jenkinsctl``
from a worktree, which adds runpy; PYTHONPATH is honoured).  The finder
imports pathlib, urllib and ipaddress at every start: milliseconds that no
user pays.

Runs alternate between the commands (their order rotating from run to run)
and the median wall time is reported, so load from other work on the
machine hits all alike.  Each side's CPU time (user + sys of the command
and the processes it waited for, such as the docker CLI jenkinsctl runs;
the engine's own work is on neither side) is reported as the minimum of
the runs, which load inflates least.  Needs the engine,
debian:bookworm-slim and /usr/bin/docker-registry (scripts/bootstrap).
Not a test: it prints a table and exits 0.

--jenkinsctl PATH measures that jenkinsctl alone, such as the one
`bench/bench_startup.py --keep DIR` leaves in DIR (run it without
PYTHONPATH, which would bring the source tree back); --as wheel or --as
checkout measures one of the two above.
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

from bench.bench_startup import install  # noqa: E402
from bench.engines import NAMES, STARTERS, Engine, engines_arg  # noqa: E402
from tests.support.faultproxy import FaultProxy  # noqa: E402

# This checkout's command, as it runs here (see the docstring).
CHECKOUT = [os.path.join(ROOT, ".venv", "bin", "jenkinsctl")]
if not os.access(CHECKOUT[0], os.X_OK) or os.environ.get("PYTHONPATH"):
    CHECKOUT = [sys.executable, "-m", "jenkinsctl"]
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


def alternate(fns: dict, runs: int) -> dict[str, list]:
    """Each of ``fns`` run ``runs`` times, in an order that rotates from
    run to run; the samples by name."""
    names = list(fns)
    out: dict[str, list] = {n: [] for n in names}
    for i in range(runs):
        for n in names[i % len(names):] + names[:i % len(names)]:
            out[n].append(fns[n]())
    return out


def figures(tj: list, td: list) -> tuple[float, float, float, float]:
    """Median wall and minimum CPU seconds of jenkinsctl's and docker's runs."""
    return (statistics.median(w for w, _ in tj), statistics.median(w for w, _ in td),
            min(c for _, c in tj), min(c for _, c in td))


def _env(env: dict[str, str], variant: str) -> dict[str, str]:
    """An installed jenkinsctl runs without PYTHONPATH, which would put a
    source tree in front of it."""
    return env if variant == "checkout" else {k: v for k, v in env.items() if k != "PYTHONPATH"}


def measure(eng: Engine, opts, tmp: str, variants: dict[str, list[str]]) -> list[tuple]:
    """The build and push figures on one engine, for each jenkinsctl of
    ``variants`` (name: argv prefix)."""
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
        j_builds = {v: [*cmd, "build", ctx, "--image", repo, "--tag", "bench", "--label", LABEL,
                        "--builder", "buildkit", "-o", "json"] for v, cmd in variants.items()}
        timed(docker_build, env_bk)  # warm: the cache holds every step
        for v, j_build in j_builds.items():
            _, p = timed(j_build, _env(env_j, v))
            assert json.loads(p.stdout)["builder"] == "buildkit"
        t = alternate({"docker": lambda: sample(docker_build, env_bk),
                       **{v: (lambda c=c, v=v: sample(c, _env(env_j, v))) for v, c in j_builds.items()}}, opts.runs)
        for v, j_build in j_builds.items():
            cached = json.loads(timed(j_build, _env(env_j, v))[1].stdout)
            rows.append((f"{eng.name}: build, unchanged", v, *figures(t[v], t["docker"]), BUILD_TARGET,
                         f"{cached['cached_steps']}/{cached['total_steps']} steps cached"))

        # --- push ------------------------------------------------------------------
        os.makedirs(dockercfg)
        env_d = dict(eng.env, DOCKER_CONFIG=dockercfg)
        subprocess.run([cli, "login", "--username", reg.username, "--password-stdin", reg.url], env=env_d,
                       input=reg.password, text=True, check=True, capture_output=True)
        j_pushes = {v: [*cmd, "push", "--image", repo, "--tag", "bench", "-o", "json"] for v, cmd in variants.items()}
        docker_push = [cli, "push", f"{repo}:bench"]
        v1, j_push = next(iter(j_pushes.items()))
        env_j1 = _env(env_j, v1)
        _, p = timed(j_push, env_j1)  # the first push uploads the layers
        first = json.loads(p.stdout)
        timed(docker_push, env_d)
        t = alternate({"docker": lambda: sample(docker_push, env_d),
                       **{v: (lambda c=c, v=v: sample(c, _env(env_j, v))) for v, c in j_pushes.items()}}, opts.runs)
        if eng.name == "host":
            # Bytes: the same unchanged push through a pass-through counting
            # proxy (the modern engine's registry is inside its namespace).
            with FaultProxy(("127.0.0.1", reg.port)) as proxy:
                eng.docker("tag", f"{repo}:bench", f"{proxy.url}/jenkinsctl-test/bench:bench")
                # Credentials go only to the registry they are configured for:
                # here that is the proxy's address.
                _, p = timed([*variants[v1], "push", "--image", f"{proxy.url}/jenkinsctl-test/bench", "--tag",
                              "bench", "-o", "json"], dict(env_j1, JENKINSCTL_REGISTRY_URL=proxy.url))
                again = json.loads(p.stdout)
                uploaded = f"layer bytes uploaded {proxy.uploaded_bytes()}"
                eng.docker("rmi", f"{proxy.url}/jenkinsctl-test/bench:bench", check=False)
        else:
            again = json.loads(timed(j_push, env_j1)[1].stdout)
            uploaded = "bytes not counted"
        for v in variants:
            rows.append((f"{eng.name}: push, unchanged", v, *figures(t[v], t["docker"]), PUSH_TARGET,
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
    ap.add_argument("--jenkinsctl", metavar="PATH", help="measure this jenkinsctl alone")
    ap.add_argument("--as", dest="variants", default="wheel,checkout",
                    help="comma list of wheel (this checkout's wheel, installed as users do) and checkout "
                         "(this checkout's command as it runs here); default both")
    opts = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="jenkinsctl-bench-")
    rows, described = [], []
    try:
        variants: dict[str, list[str]] = {}
        if opts.jenkinsctl:
            variants["given"] = [opts.jenkinsctl]
        else:
            wanted = [v.strip() for v in opts.variants.split(",") if v.strip()]
            if not wanted or set(wanted) - {"wheel", "checkout"}:
                raise SystemExit(f"--as: use a comma list of wheel, checkout (not {opts.variants!r})")
            if "wheel" in wanted:
                venv = install(os.path.join(tmp, "wheel"))
                variants["wheel"] = [os.path.join(venv, "bin", "jenkinsctl")]
            if "checkout" in wanted:
                variants["checkout"] = CHECKOUT
        make_context(os.path.join(tmp, "ctx"), opts.files)
        for name in opts.engines:
            with STARTERS[name]() as eng:
                described.append(eng.describe())
                rows += measure(eng, opts, tmp, variants)
        # The wheel's venv goes with tmp: --version is measured now.
        env_v = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        startup = {v: [sample([*cmd, "--version"], _env(env_v, v)) for _ in range(opts.runs)]
                   for v, cmd in variants.items()}
    finally:
        subprocess.run(["rm", "-rf", tmp])

    for d in described:
        print(d)
    print(f"{opts.runs} alternating runs each: wall time medians, CPU time (user+sys) minimums; "
          f"context: {opts.files} files")
    print(f"{'figure':<26} {'jenkinsctl':<10} {'time':>8} {'docker':>8} {'added':>8} {'ratio':>6} {'target':>7} "
          f"{'cpu j':>7} {'cpu d':>7} {'ratio':>6}  notes")
    for name, variant, j, d, cj, cd, target, notes in rows:
        ratio = j / d
        mark = "ok" if ratio <= target else "MISSED"
        print(f"{name:<26} {variant:<10} {j:>7.3f}s {d:>7.3f}s {j - d:>+7.3f}s {ratio:>6.2f} "
              f"{'<=' + format(target, '.2f'):>7} {cj * 1000:>5.0f}ms {cd * 1000:>5.0f}ms {cj / cd:>6.2f}  "
              f"{mark}; {notes}")
    for v, cmd in variants.items():
        print(f"jenkinsctl {v}: {' '.join(cmd)}; `--version` {statistics.median(w for w, _ in startup[v]):.3f}s "
              f"(median), {min(c for _, c in startup[v]) * 1000:.0f} ms CPU (min)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
