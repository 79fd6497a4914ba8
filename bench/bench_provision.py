"""Provisioning figures, on the real engine with the controller emulator as
a container and real agent containers:

1. no-op apply / first apply (target <= 0.05), and the number of mutating
   calls the no-op apply made (target 0): POSTs in the emulator's request
   log plus engine events about the project's resources;
2. apply of 10 agents / apply of 1 agent, each until all nodes are online
   (target <= 3), with the controller already running, so the figure is the
   cost of the agents; the same ratio for fresh projects (controller start
   included) is printed too.

Run: .venv/bin/python bench/bench_provision.py   (about two minutes; it
builds the agent and emulator images on first use and removes everything it
made by the projects' labels)
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD_ENV = "JCBENCH_PASSWORD"
ENV = {PASSWORD_ENV: "admin"}  # the emulator container's admin:admin
ROUNDS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def images(client) -> tuple[str, str]:
    from jenkinsctl.agent_image import build_agent_image
    from tests.fakejenkins.image import build_image

    agent = build_agent_image(client, project="bench", log=lambda _: None)
    emu = build_image(client)
    tag = "jenkinsctl-bench/controller:" + emu.rsplit(":", 1)[1]
    try:
        client.images.get(tag)
    except Exception:  # noqa: BLE001 - not built yet
        # Without the emulator image's io.jenkinsctl.test label, which test
        # sessions' cleanup removes containers by.
        client.images.build(fileobj=io.BytesIO(f'FROM {emu}\nLABEL io.jenkinsctl.test=""\n'.encode()),
                            tag=tag, rm=True, pull=False)
    return agent, tag


class Bench:
    def __init__(self, client, agent_image: str, controller_image: str, tmp: pathlib.Path) -> None:
        self.client, self.agent_image, self.controller_image, self.tmp = client, agent_image, controller_image, tmp
        self.made: list[str] = []

    def config(self, project: str, port: int, count: int):
        import yaml

        from jenkinsctl.config import load_config

        d = self.tmp / project
        d.mkdir(exist_ok=True)
        doc = {"version": 1, "project": project, "state_dir": str(d / "state"),
               "controller": {"image": self.controller_image, "port": port, "password": {"env": PASSWORD_ENV},
                              "ready_timeout": 120,
                              # The emulator never clones it, but the CasC needs one.
                              "library": {"url": "https://git.example.invalid/platform/jenkinsctl.git"}},
               "agents": [{"name": "agent", "count": count, "image": self.agent_image,
                           "remote_fs": str(d / "agents")}]}
        (d / "jenkinsctl.yaml").write_text(yaml.safe_dump(doc))
        return load_config(str(d / "jenkinsctl.yaml"), env=ENV)

    def apply(self, cfg) -> float:
        from jenkinsctl.provision import Provisioner

        if cfg.project not in self.made:
            self.made.append(cfg.project)
        start = time.perf_counter()
        result = Provisioner(cfg, environ=ENV, say=lambda _: None).apply(wait_timeout=300)
        took = time.perf_counter() - start
        assert all(n["online"] for n in result["nodes"].values()), result["nodes"]
        return took

    def cleanup(self) -> None:
        label = lambda p: {"label": [f"io.jenkinsctl.project={p}"]}  # noqa: E731
        for p in self.made:
            for c in self.client.containers.list(all=True, filters=label(p)):
                c.remove(force=True, v=True)
            for n in self.client.networks.list(filters=label(p)):
                n.remove()
            for v in self.client.volumes.list(filters=label(p)):
                v.remove(force=True)


def emulator_posts(port: int) -> list[dict]:
    time.sleep(0.3)  # the emulator logs a request after answering it
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/requests", timeout=10) as resp:
        return [r for r in json.loads(resp.read()) if r["method"] not in ("GET", "HEAD")]


def clear_emulator(port: int) -> None:
    time.sleep(0.3)
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/_emulator/requests", method="DELETE"),
                           timeout=10).read()


def engine_events(client, project: str, since: float) -> list[str]:
    time.sleep(1.0)
    until = time.time()
    names = {c.name for c in client.containers.list(all=True, filters={"label": [f"io.jenkinsctl.project={project}"]})}
    names |= {f"{project}-net", f"{project}-jenkins-home"}
    out = []
    for ev in client.events(since=int(since), until=int(until) + 1, decode=True):
        if ev.get("timeNano", 0) < since * 1e9:
            continue
        attrs = (ev.get("Actor") or {}).get("Attributes") or {}
        if attrs.get("name") in names or attrs.get("io.jenkinsctl.project") == project:
            out.append(f"{ev.get('Type')} {ev.get('Action')} {attrs.get('name')}")
    return out


def main() -> int:
    import docker

    client = docker.from_env(timeout=300)
    agent_image, controller_image = images(client)
    with tempfile.TemporaryDirectory(prefix="jenkinsctl-bench-") as tmp:
        b = Bench(client, agent_image, controller_image, pathlib.Path(tmp))
        try:
            tag = uuid.uuid4().hex[:6]
            # 1. first apply vs no-op apply (1 agent, fresh project).
            port = free_port()
            cfg = b.config(f"bench{tag}a", port, 1)
            first = b.apply(cfg)
            clear_emulator(port)
            time.sleep(1.1)
            since = time.time()
            noops = [b.apply(cfg) for _ in range(5)]
            posts = emulator_posts(port)
            events = engine_events(client, cfg.project, since)
            noop = sorted(noops)[len(noops) // 2]

            # 2. agents: 1 vs 10 with the controller already up.  Runs are
            # interleaved and the medians taken: the engine is shared, and
            # its load drifts.  apply with count 0 removes the agents again.
            port2 = free_port()
            base = b.config(f"bench{tag}b", port2, 0)
            b.apply(base)
            ones, tens = [], []
            for _ in range(ROUNDS):
                ones.append(b.apply(b.config(base.project, port2, 1)))
                b.apply(base)
                tens.append(b.apply(b.config(base.project, port2, 10)))
                b.apply(base)
            one, ten = statistics.median(ones), statistics.median(tens)

            # 3. 10 agents with the controller start included (fresh project).
            fresh1 = first
            fresh10 = b.apply(b.config(f"bench{tag}d", free_port(), 10))
        finally:
            b.cleanup()

    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'figure':<60} {'value':>10} {'target':>8}")
    rows = [
        ("first apply, 1 agent, fresh project (s)", f"{first:.2f}", ""),
        ("no-op apply, median of 5 (s)", f"{noop:.3f}", ""),
        ("no-op / first", f"{noop / first:.3f}", "<= 0.05"),
        ("mutating calls in 5 no-op applies (Jenkins POSTs)", str(len(posts)), "0"),
        ("mutating calls in 5 no-op applies (engine events)", str(len(events)), "0"),
        (f"apply 1 agent, controller up, to online, median of {ROUNDS} (s)", f"{one:.2f}", ""),
        (f"apply 10 agents, controller up, to online, median of {ROUNDS} (s)", f"{ten:.2f}", ""),
        ("10 agents / 1 agent", f"{ten / one:.2f}", "<= 3"),
        ("fresh project: 10 agents / 1 agent (controller incl.)", f"{fresh10 / fresh1:.2f}", ""),
    ]
    for name, value, target in rows:
        print(f"{name:<60} {value:>10} {target:>8}")
    for p in posts:
        print("  POST", p["path"])
    for e in events:
        print("  event", e)
    ok = noop / first <= 0.05 and not posts and not events and ten / one <= 3
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
