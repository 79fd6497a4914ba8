#!/usr/bin/env python3
"""Benchmark: `container` deploys in proxy mode (a managed HAProxy owns the
host port) against stop-first, in the same run.

    .venv/bin/python bench/bench_proxy.py [--switches N] [--ships N] [--requests N]

1. Failed requests over N consecutive proxy switches (default 20) under a
   keep-alive HTTP load of 150 req/s (6 connections, tests/deploy/load.py).
   Target 0.
2. `jenkinsctl ship --to` after a one-line change, proxy mode / stop-first
   (two targets, alternating, medians).  Both with no watch window: a
   window adds its own length (default 30 s) to a proxy-mode deploy by
   design.  Target <= 1.2.
3. Latency added by the proxy: one keep-alive client, GET /version in
   alternating blocks through the proxy and direct (the same image
   published with -p on 127.0.0.1, today's stop-first setup; and straight to
   the container's address, no docker-proxy).  p50 and p99 ratios; target
   p50 <= 1.2.
4. `rollback` to a kept version: the library call (start the kept
   container, it answers, switch, drain, stop the current one) and the
   whole CLI command (adds Python start-up and imports).  Target <= 1 s.

Needs the engine, debian:bookworm-slim and /usr/bin/docker-registry
(scripts/bootstrap).  Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import http.client
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
from tests.deploy.helpers import wait_http  # noqa: E402
from tests.deploy.load import Load, percentile  # noqa: E402
from tests.support.registry import free_port, start_registry  # noqa: E402


def latencies(port: int, n: int, host: str = "127.0.0.1") -> list[float]:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", "/version")
        resp = conn.getresponse()
        resp.read()
        out.append(time.perf_counter() - t)
        if resp.will_close:
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--switches", type=int, default=20)
    ap.add_argument("--ships", type=int, default=3, help="ships measured per mode (default 3)")
    ap.add_argument("--requests", type=int, default=3000, help="requests per latency side (default 3000)")
    ap.add_argument("--only-rollback", action="store_true", help="figure 4 alone (after one warm-up ship)")
    ap.add_argument("--profile", action="store_true",
                    help="print where one library rollback spends its time, engine call by engine call")
    opts = ap.parse_args()

    import docker

    from jenkinsctl.deploy.proxy import Proxy, ProxySettings

    client = docker.from_env()
    reg = start_registry(auth=True)
    work = tempfile.mkdtemp(prefix="jenkinsctl-bench-proxy-")
    tag = uuid.uuid4().hex[:6]
    names = {"proxy": f"jcbench-px-{tag}", "stop": f"jcbench-sf-{tag}"}
    ports = {k: free_port() for k in names}
    direct_name = f"jcbench-direct-{tag}"
    repo = f"{reg.url}/bench/proxyapp"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JENKINSCTL_")}
    # As users run it: an installed jenkinsctl has its bytecode compiled,
    # so the warm-up run writes it here rather than every run compiling
    # every module (about 0.1 s of each CLI figure).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(reg.env)
    env["JENKINSCTL_REGISTRY_URL"] = reg.url   # credentials go only to the registry named in the config
    env["JENKINSCTL_CONFIG"] = cfg = os.path.join(work, "jenkinsctl.yaml")
    with open(cfg, "w") as fh:
        fh.write("version: 1\nproject: jenkinsctl-bench\ndeploy:\n  targets:\n")
        for k, n in names.items():
            switch = "proxy" if k == "proxy" else "stop-first"
            fh.write(f"    {k}:\n      strategy: container\n      target: {n}\n"
                     f"      ports: ['127.0.0.1:{ports[k]}:8080']\n      switch: {switch}\n"
                     f"      proxy: {{watch: 0, drain: 10}}\n      keep: 2\n"
                     f"      health: {{http: 'http://127.0.0.1:{ports[k]}/health', timeout: 60, interval: 0.2}}\n")
    ctx = os.path.join(work, "app")
    shutil.copytree(EXAMPLE, ctx)
    with open(os.path.join(ctx, "VERSION"), "w") as fh:
        fh.write("1.0.0\n")
    run(GIT + ["init", "-q", "-b", "main"], env, cwd=ctx)
    run(GIT + ["add", "-A"], env, cwd=ctx)
    run(GIT + ["commit", "-q", "-m", "1.0.0"], env, cwd=ctx)
    try:
        # Warm-up: a ship to each target (creates the containers, builds the
        # proxy image, pushes the cached layers).
        for k in names:
            bump(ctx, env)
            run(JENKINSCTL + ["ship", ctx, "--image", repo, "--to", k], env)
        # 2. ship after a one-line change, alternating modes.
        times: dict[str, list[float]] = {"proxy": [], "stop": []}
        deploy_s: dict[str, list[float]] = {"proxy": [], "stop": []}
        for _ in range(0 if opts.only_rollback else opts.ships):
            for k in ("stop", "proxy"):
                bump(ctx, env)
                t, p = run(JENKINSCTL + ["-o", "json", "ship", ctx, "--image", repo, "--to", k], env)
                times[k].append(t)
                deploy_s[k].append(json.loads(p.stdout)["durations"]["deploy"])
        # Two digests to switch between.
        digests = []
        for _ in range(2):
            bump(ctx, env)
            _t, p = run(JENKINSCTL + ["-o", "json", "ship", ctx, "--image", repo], env)
            digests.append(json.loads(p.stdout)["digest"])

        port = ports["proxy"]
        if opts.only_rollback:
            for d in digests:
                run(JENKINSCTL + ["deploy", "--image", f"{repo}@{d}", "--to", "proxy"], env)
            rollback_figure(client, cfg, names["proxy"], env, opts.profile)
            return 0

        # 1. switches under load.
        switch_ms = []
        with Load(port, rate=150, threads=6) as load:
            time.sleep(0.5)
            for i in range(opts.switches):
                _t, p = run(JENKINSCTL + ["-o", "json", "deploy", "--image", f"{repo}@{digests[i % 2]}",
                                          "--to", "proxy"], env)
                switch_ms.append(json.loads(p.stdout)["deploy"]["details"]["switch_ms"])
            time.sleep(0.5)
        failed, resent, total, rate = len(load.failures), load.resent, len(load.results), load.rate()

        print(f"\n1. {opts.switches} proxy switches under keep-alive load: {total} requests at {rate:.0f} req/s, "
              f"{failed} failed (target 0), {resent} resent; switch_ms median "
              f"{statistics.median(switch_ms):.0f}, max {max(switch_ms):.0f}", flush=True)
        ps, ss = statistics.median(times["proxy"]), statistics.median(times["stop"])
        print(f"2. ship --to after a one-line change: proxy {ps:.2f} s (runs {fmt(times['proxy'])}), stop-first "
              f"{ss:.2f} s (runs {fmt(times['stop'])}): ratio {ps / ss:.2f} (target <= 1.2); deploy stage "
              f"{statistics.median(deploy_s['proxy']):.2f} s vs {statistics.median(deploy_s['stop']):.2f} s",
              flush=True)

        # 3. latency: through the proxy, via -p (docker-proxy), and to the container's address.
        direct_port = free_port()
        direct = client.containers.run(f"{repo}@{digests[0]}", name=direct_name, detach=True,
                                       ports={"8080/tcp": ("127.0.0.1", direct_port)})
        direct.reload()
        direct_ip = direct.attrs["NetworkSettings"]["IPAddress"]
        wait_http("127.0.0.1", direct_port)
        lat = {"proxy": [], "direct": [], "ip": []}
        block = 250
        for _ in range(max(1, opts.requests // block)):
            lat["proxy"] += latencies(port, block)
            lat["direct"] += latencies(direct_port, block)
            lat["ip"] += latencies(8080, block, host=direct_ip)
        for v in lat.values():
            v.sort()

        for q in (50, 99):
            p, d, i = (percentile(lat[k], q) * 1000 for k in ("proxy", "direct", "ip"))
            print(f"3. p{q}: through the proxy {p:.3f} ms, direct -p (docker-proxy) {d:.3f} ms, direct to the "
                  f"container address {i:.3f} ms: ratio {p / d:.2f} vs -p, {p / i:.2f} vs the address"
                  + ("  (target p50 <= 1.2)" if q == 50 else ""), flush=True)
        rollback_figure(client, cfg, names["proxy"], env, opts.profile)
        print(f"   load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    finally:
        for n in [*names.values(), direct_name]:
            for c in client.containers.list(all=True, filters={"name": n}):
                if c.name == n or c.name.startswith(n + "."):
                    c.remove(force=True)
        Proxy(client, names["proxy"], {}, ProxySettings()).remove()
        for img in client.images.list(name=repo):
            for t in img.tags:
                subprocess.run(["docker", "image", "rm", "-f", t], capture_output=True)
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def rollback_figure(client, cfg: str, name: str, env: dict, profile: bool) -> None:
    """4. rollback: library call and CLI, back and forth between two kept versions."""
    from jenkinsctl.config import load_config
    from jenkinsctl.deploy import make_strategy

    conf = load_config(cfg)
    lib_s, cli_s, lib_start, serving, cli_serving = [], [], [], [], []
    apis: set[str | None] = set()
    latest = client.containers.get(name).labels["io.jenkinsctl.deploy-seq"]
    calls: list[tuple[str, float, float]] = []
    for i in range(3):
        # Back to the version before, then forward again to the latest.
        strategy = make_strategy(conf.deploy_target("proxy"), config=conf, client=client)
        if profile and i == 0:
            _time_calls(client.api, calls)
        t = time.perf_counter()
        out = strategy.rollback()
        lib_s.append(time.perf_counter() - t)
        if profile and i == 0:
            _untime_calls(client.api)
            print("   one library rollback, engine calls (ms from the start, ms taken):")
            for what, start, took in sorted(calls, key=lambda c: c[1]):
                print(f"     {(start - t) * 1000:7.0f} {took * 1000:6.0f}  {what}")
        lib_start.append(out.details["start_ms"])
        serving.append(out.details["serving_ms"])
        apis.add(out.details.get("proxy_api"))
        t, p = run(JENKINSCTL + ["-o", "json", "rollback", "--to", "proxy", "--version", f"v{latest}"], env)
        cli_s.append(t)
        details = json.loads(p.stdout)["deploy"]["details"]
        cli_serving.append(details["serving_ms"])
        apis.add(details.get("proxy_api"))
    print(f"4. rollback: the kept version serves after {', '.join(f'{x:.0f}' for x in serving)} ms (started and "
          f"answering after {', '.join(f'{x:.0f}' for x in lib_start)} ms, then the switch); the library call "
          f"returns after {fmt(lib_s)} s, the whole CLI command after {fmt(cli_s)} s (target <= 1 s), its kept "
          f"version serving after {', '.join(f'{x:.0f}' for x in cli_serving)} ms of its library call; the library "
          f"call returns {', '.join(f'{x * 1000 - y:.0f}' for x, y in zip(lib_s, serving))} ms after the switch; "
          f"runtime API through {', '.join(sorted(str(a) for a in apis))}", flush=True)


def _time_calls(api, calls: list) -> None:
    for attr in ("start", "stop", "inspect_container", "exec_create", "exec_start", "put_archive", "rename",
                 "update_container", "containers", "create_container_from_config", "remove_container",
                 "connect_container_to_network", "inspect_network", "inspect_image", "networks", "kill",
                 "inspect_volume"):
        fn = getattr(api, attr)

        def timed(*a, _fn=fn, _attr=attr, **k):
            t = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                calls.append((f"{_attr} {str(a[0])[:40] if a else ''} {k.get('filters', '') or ''}", t,
                              time.perf_counter() - t))
        setattr(api, attr, timed)


def _untime_calls(api) -> None:
    for attr in list(vars(api)):
        if callable(vars(api)[attr]) and getattr(vars(api)[attr], "__name__", "") == "timed":
            delattr(api, attr)


def fmt(xs) -> str:
    return " ".join(f"{x:.2f}" for x in xs)


if __name__ == "__main__":
    sys.exit(main())
