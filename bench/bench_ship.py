#!/usr/bin/env python3
"""Benchmark: ship on a warm host cache, and redeploy downtime.

    .venv/bin/python bench/bench_ship.py [--runs N] [--redeploys N]

1. `jenkinsctl ship` after a one-line source change, on the host engine's
   warm cache (what docker-outside-of-docker gives every build), divided by
   `DOCKER_BUILDKIT=1 docker build --no-cache` of the same context (what a
   fresh docker-in-docker daemon pays; it still has the base image, so the
   real DinD figure is worse).  Target <= 0.05.  Measured for ship without
   a deploy (build + push) and with `--to container:...` (build + push +
   health-gated deploy).  The app is examples/webapp, whose slow step is an
   `apt-get install` of python3 and friends.
2. `container` redeploy downtime: the app is redeployed back and forth
   between two versions on a published host port while a probe loop GETs it
   every 10 ms; failed probes and the longest gap are reported per
   redeploy, next to jenkinsctl's own switch_ms.

3. On each engine (bench/engines.py: the host's, and Debian 13's 26.1
   refusing API < 1.44 as Docker 29 does): `jenkinsctl ship` after a
   one-line change of a small app built FROM the example, against the
   plain CLI jenkinsctl picks for that engine doing the same build + push
   (`docker buildx build` or `DOCKER_BUILDKIT=1 docker build`, then
   `docker push`), and `ship --to container:...` for scale.

Medians over the runs, so load from other work on the machine hits both
sides alike.  Needs the engine, debian:bookworm-slim and
/usr/bin/docker-registry (scripts/bootstrap).  Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.common import EXAMPLE, GIT, JENKINSCTL, bump, run  # noqa: E402
from jenkinsctl.build import find_buildkit_cli  # noqa: E402
from tests.deploy.helpers import ProbeLoop, wait_http  # noqa: E402
from tests.support.registry import free_port, start_registry  # noqa: E402

# A CLI with BuildKit (a newer one without buildx cannot), as jenkinsctl picks.
DOCKER = find_buildkit_cli() or "/usr/bin/docker"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="cold builds and warm ships measured (default 3)")
    ap.add_argument("--redeploys", type=int, default=6, help="redeploys under the probe loop (default 6)")
    ap.add_argument("--engines", default="host,modern",
                    help="engines for section 3 (bench/engines.py), comma list of host,modern (default: both)")
    ap.add_argument("--only-engines", action="store_true", help="run section 3 only")
    opts = ap.parse_args()
    from bench.engines import engines_arg

    engines = engines_arg(opts.engines)
    if opts.only_engines:
        section3(engines, opts.runs)
        return 0

    reg = start_registry(auth=True)
    work = tempfile.mkdtemp(prefix="jenkinsctl-bench-ship-")
    name = f"jcbench-{uuid.uuid4().hex[:6]}"
    port = free_port()
    repo = f"{reg.url}/bench/webapp"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JENKINSCTL_")}
    env.update(reg.env)
    env["JENKINSCTL_CONFIG"] = cfg = os.path.join(work, "jenkinsctl.yaml")
    with open(cfg, "w") as fh:
        fh.write(f"version: 1\nproject: jenkinsctl-bench\ndeploy:\n  targets:\n    app:\n"
                 f"      strategy: container\n      target: {name}\n      ports: ['127.0.0.1:{port}:8080']\n"
                 f"      switch: stop-first\n"
                 f"      health: {{http: 'http://127.0.0.1:{port}/health', timeout: 60, interval: 0.5}}\n"
                 f"      keep: 2\n")
    ctx = os.path.join(work, "app")
    shutil.copytree(EXAMPLE, ctx)
    with open(os.path.join(ctx, "VERSION"), "w") as fh:
        fh.write("1.0.0\n")
    run(GIT + ["init", "-q", "-b", "main"], env, cwd=ctx)
    run(GIT + ["add", "-A"], env, cwd=ctx)
    run(GIT + ["commit", "-q", "-m", "1.0.0"], env, cwd=ctx)
    try:
        # The cold builds first: each --no-cache build leaves new layers that
        # the cache then points at, which the next ship would have to push.
        cold, warm_ship, warm_deploy, stages, ship_stages = [], [], [], [], []
        for _ in range(opts.runs):
            t, _p = run([DOCKER, "build", "--no-cache", "-q", "-t", f"{repo}:nocache", ctx],
                        {**env, "DOCKER_BUILDKIT": "1"})
            cold.append(t)
        # Warm up: the first ship pushes the cached layers and creates the
        # container.  A second one too: against a fresh registry dockerd
        # 20.10 uploads the unchanged base layers once more on the second
        # push (only then does it skip them), which is not the steady state.
        t1, _p = run(JENKINSCTL + ["ship", ctx, "--image", repo, "--to", "app"], env)
        bump(ctx, env)
        t2, _p = run(JENKINSCTL + ["ship", ctx, "--image", repo, "--to", "app"], env)
        warmup = (t1, t2)
        for _ in range(opts.runs):
            bump(ctx, env)
            t, p = run(JENKINSCTL + ["-o", "json", "ship", ctx, "--image", repo], env)
            warm_ship.append(t)
            r = json.loads(p.stdout)
            ship_stages.append({**r["durations"], "layers": r["push"]["layers_pushed"]})
            bump(ctx, env)
            t, p = run(JENKINSCTL + ["-o", "json", "ship", ctx, "--image", repo, "--to", "app"], env)
            warm_deploy.append(t)
            r = json.loads(p.stdout)
            stages.append({**r["durations"], "layers": r["push"]["layers_pushed"]})
        c, s, d = statistics.median(cold), statistics.median(warm_ship), statistics.median(warm_deploy)
        print("\n1. ship after a one-line change (warm host cache) / docker build --no-cache")
        print(f"   (warm-up ships, not counted: {warmup[0]:.2f} s, {warmup[1]:.2f} s)")
        print(f"   docker build --no-cache (BuildKit)     median {c:6.2f} s   runs {fmt(cold)}")
        print(f"   jenkinsctl ship (build + push)         median {s:6.2f} s   runs {fmt(warm_ship)}"
              f"   ratio {s / c:.3f}  (target <= 0.05)")
        print(f"   jenkinsctl ship --to container:...     median {d:6.2f} s   runs {fmt(warm_deploy)}"
              f"   ratio {d / c:.3f}")
        clean = [t for t, st in zip(warm_ship, ship_stages) if st["layers"] == 1]
        if clean and len(clean) < len(warm_ship):
            print(f"   jenkinsctl ship, runs that uploaded only the changed layer: median "
                  f"{statistics.median(clean):.2f} s   ratio {statistics.median(clean) / c:.3f}  (dockerd 20.10 "
                  "sometimes re-uploads unchanged layers when many registries share its push metadata)")
        print("   ship stages (median s): " + ", ".join(
            f"{k} {statistics.median(st[k] for st in ship_stages):.2f}" for k in ("build", "push", "total"))
              + "; layers pushed per run: " + " ".join(str(st["layers"]) for st in ship_stages))
        print("   ship --to stages (median s): " + ", ".join(
            f"{k} {statistics.median(st[k] for st in stages):.2f}" for k in ("build", "push", "deploy", "total"))
              + "; layers pushed per run: " + " ".join(str(st["layers"]) for st in stages))

        # 2. Redeploy downtime, alternating between two pushed digests.
        digests = []
        for _ in range(2):
            bump(ctx, env)
            _t, p = run(JENKINSCTL + ["-o", "json", "ship", ctx, "--image", repo], env)
            digests.append(json.loads(p.stdout)["digest"])
        run(JENKINSCTL + ["deploy", "--image", f"{repo}@{digests[1]}", "--to", "app"], env)
        wait_http("127.0.0.1", port)
        rows = []
        for i in range(opts.redeploys):
            digest = digests[i % 2]
            with ProbeLoop("127.0.0.1", port, interval=0.01) as probe:
                time.sleep(0.5)
                _t, p = run(JENKINSCTL + ["-o", "json", "deploy", "--image", f"{repo}@{digest}", "--to", "app"], env)
                time.sleep(0.5)
            det = json.loads(p.stdout)["deploy"]["details"]
            rows.append((probe.failures, probe.longest_gap_ms, det["switch_ms"], det["stop_ms"], det["start_ms"],
                         len(probe.results)))
        print(f"\n2. container redeploy (stop-first: fixed host port) under a 10 ms HTTP probe loop, "
              f"{opts.redeploys} redeploys")
        print("   failed probes  longest gap ms  switch_ms  (stop_ms + start_ms)  probes")
        for f, g, sw, st, sa, n in rows:
            print(f"   {f:13d}  {g:14.0f}  {sw:9.0f}  ({st:.0f} + {sa:.0f})  {n:>14d}")
        print(f"   median: {statistics.median(r[0] for r in rows):.0f} failed probes, "
              f"{statistics.median(r[1] for r in rows):.0f} ms longest gap; worst "
              f"{max(r[0] for r in rows)} failed, {max(r[1] for r in rows):.0f} ms")
        print(f"   load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    finally:
        subprocess.run([DOCKER, "rm", "-f", name, *[f"{name}.v{i}" for i in range(40)]], capture_output=True)
        subprocess.run([DOCKER, "image", "rm", "-f", f"{repo}:nocache"], capture_output=True)
        out = subprocess.run([DOCKER, "images", "-q", repo], capture_output=True, text=True).stdout.split()
        if out:
            subprocess.run([DOCKER, "image", "rm", "-f", *set(out)], capture_output=True)
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)
    section3(engines, opts.runs)
    return 0


SMALL_BASE = "jenkinsctl-bench/webapp-base:1"


def small_app(path: str, env: dict) -> None:
    """An app FROM the example (built once on the host, where apt reaches
    the mirror): the modern engine's namespace has no route to it."""
    os.makedirs(path)
    with open(os.path.join(path, "Dockerfile"), "w") as fh:
        fh.write(f"FROM {SMALL_BASE}\nCOPY VERSION /app/VERSION\n"
                 'RUN ["python3", "-c", "open(\'/tmp/built\', \'w\').write(\'yes\')"]\n')
    with open(os.path.join(path, "VERSION"), "w") as fh:
        fh.write("1.0.0\n")
    run(GIT + ["init", "-q", "-b", "main"], env, cwd=path)
    run(GIT + ["add", "-A"], env, cwd=path)
    run(GIT + ["commit", "-q", "-m", "1.0.0"], env, cwd=path)


def ship_on(eng, runs: int, work: str) -> tuple:
    """jenkinsctl ship after a one-line change on ``eng``, against the plain
    CLI's build + push of the same change."""
    import random

    reg = eng.registry
    eng.load(SMALL_BASE)
    name = f"jcbench-{eng.name}-{uuid.uuid4().hex[:6]}"
    port = free_port() if eng.http_host == "127.0.0.1" else random.randint(20000, 40000)
    repo = f"{reg.url}/bench/small"
    env = dict(eng.env, JENKINSCTL_CONFIG=os.path.join(work, f"{eng.name}.yaml"))
    with open(env["JENKINSCTL_CONFIG"], "w") as fh:
        fh.write(f"version: 1\nproject: jenkinsctl-bench\ndeploy:\n  targets:\n    app:\n"
                 f"      strategy: container\n      target: {name}\n      ports: ['{eng.http_host}:{port}:8080']\n"
                 f"      health: {{http: 'http://{eng.http_host}:{port}/health', timeout: 60, interval: 0.5}}\n"
                 f"      keep: 2\n")
    ctx = os.path.join(work, f"small-{eng.name}")
    small_app(ctx, env)
    dockercfg = os.path.join(work, f"docker-config-{eng.name}")
    os.makedirs(dockercfg)
    env_d = dict(eng.env, DOCKER_CONFIG=dockercfg)
    subprocess.run([eng.cli.path, "login", "--username", reg.username, "--password-stdin", reg.url], env=env_d,
                   input=reg.password, text=True, check=True, capture_output=True)
    ship, plain, deploy = [], [], []
    try:
        for _ in range(2):  # warm-up: the first pushes and the container
            bump(ctx, env)
            run(JENKINSCTL + ["ship", ctx, "--image", repo, "--to", "app"], env)
        for i in range(runs):
            v = bump(ctx, env)
            t, _p = run(JENKINSCTL + ["-o", "json", "ship", ctx, "--image", repo], env)
            ship.append(t)
            v = bump(ctx, env)
            argv, benv = eng.plain_build(f"{repo}:plain-{v}", ctx)
            t1, _p = run(argv, benv)   # the login's DOCKER_CONFIG only for the push: it would hide buildx
            t2, _p = run([eng.cli.path, "push", f"{repo}:plain-{v}"], env_d)
            plain.append(t1 + t2)
            bump(ctx, env)
            t, _p = run(JENKINSCTL + ["-o", "json", "ship", ctx, "--image", repo, "--to", "app"], env)
            deploy.append(t)
        wait_http(eng.http_host, port)
    finally:
        eng.docker("rm", "-f", name, *[f"{name}.v{i}" for i in range(40)], check=False)
        ids = eng.docker("images", "-q", repo, check=False).stdout.split()
        if ids:
            eng.docker("image", "rm", "-f", *set(ids), check=False)
        subprocess.run([eng.cli.path, "logout", reg.url], env=env_d, capture_output=True)
    return ship, plain, deploy


def section3(engines: list[str], runs: int) -> None:
    from bench.engines import STARTERS

    work = tempfile.mkdtemp(prefix="jenkinsctl-bench-ship3-")
    results = []
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JENKINSCTL_")}
        env.pop("DOCKER_HOST", None)
        run([DOCKER, "build", "-q", "-t", SMALL_BASE, EXAMPLE], {**env, "DOCKER_BUILDKIT": "1"})
        for name in engines:
            with STARTERS[name]() as eng:
                results.append((eng.describe(), *ship_on(eng, runs, work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n3. ship after a one-line change, on each engine: jenkinsctl / the plain CLI's build + push "
          f"({runs} runs, medians)")
    for desc, ship, plain, deploy in results:
        s, p, d = statistics.median(ship), statistics.median(plain), statistics.median(deploy)
        print(f"   {desc}")
        print(f"     plain build + docker push        median {p:6.2f} s   runs {fmt(plain)}")
        print(f"     jenkinsctl ship (build + push)   median {s:6.2f} s   runs {fmt(ship)}   ratio {s / p:.2f}")
        print(f"     jenkinsctl ship --to container:  median {d:6.2f} s   runs {fmt(deploy)}")


def fmt(xs) -> str:
    return " ".join(f"{x:.2f}" for x in xs)


if __name__ == "__main__":
    sys.exit(main())
