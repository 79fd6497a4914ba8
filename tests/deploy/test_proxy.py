"""Proxy mode on the real engine with the real HAProxy: zero-downtime
switches on a fixed host port, drains, the watch window, rollback,
interruptions and proxy replacement, under keep-alive HTTP load from
127.0.0.1 (tests/deploy/load.py)."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import threading
import time

import pytest

from jenkinsctl.deploy import DEPLOY_LABEL
from jenkinsctl.deploy.proxy import PROXY_LABEL, Proxy, ProxySettings
from tests.deploy.helpers import REPO, result_of, run_cli, wait_http, write_config
from tests.deploy.load import Load
from tests.support.registry import free_port

pytestmark = pytest.mark.engine

VERSION_OF = {"v1": "1.0.0", "v2": "2.0.0", "v3": "3.0.0"}


@pytest.fixture
def target(docker_client, cname, tmp_path):
    """A proxy-mode target on a free loopback port; its proxy, network and
    volume are removed afterwards."""
    port = free_port()

    def config(**proxy) -> str:
        settings = {"watch": 0, "drain": 10, **proxy}
        return write_config(tmp_path / "j.yaml", {"web": {
            "strategy": "container", "target": cname, "ports": [f"127.0.0.1:{port}:8080"], "proxy": settings,
            "health": {"http": f"http://127.0.0.1:{port}/health", "timeout": 30, "interval": 0.2}}})

    yield port, config
    Proxy(docker_client, cname, {}, ProxySettings()).remove()


def deploy(cfg, image, env, *extra, timeout=300):
    return run_cli("--config", cfg, "-o", "json", "deploy", "--image", image.pinned, "--to", "web", *extra, env=env,
                   timeout=timeout)


def running_names(docker_client, cname) -> list[str]:
    return sorted(c.name for c in docker_client.containers.list(filters={"name": cname})
                  if c.name == cname or c.name.startswith(cname + "."))


def slow_request(port: int, out: dict, when=lambda: True) -> threading.Thread:
    def run() -> None:
        deadline = time.monotonic() + 120
        while not when() and time.monotonic() < deadline:
            time.sleep(0.02)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            t = time.monotonic()
            conn.request("GET", "/slow")
            resp = conn.getresponse()
            out.update(status=resp.status, body=resp.read().decode().strip(), start=t, end=time.monotonic())
        except Exception as exc:  # noqa: BLE001 - reported by the assertion
            out.update(status=None, error=repr(exc))
        finally:
            conn.close()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def test_twenty_switches_under_keepalive_load_fail_no_request(docker_client, example_images, cname, target,
                                                             cli_env):
    """20 deploys in a row while 6 keep-alive connections send 150 req/s:
    not one request fails, none is resent, and after each switch nothing
    older than the version before it answers.  A 3-second request in
    flight across the first switch completes with 200 from the old version
    (the old container is drained before it stops)."""
    port, config = target
    cfg = config()
    first = result_of(deploy(cfg, example_images["v1"], cli_env))
    assert first["deploy"]["outcome"] == "created" and first["deploy"]["details"]["mode"] == "proxy"
    proxy_c = docker_client.containers.get(f"{cname}.proxy")
    assert proxy_c.attrs["HostConfig"]["NetworkMode"] == "host"
    assert proxy_c.labels["io.jenkinsctl.role"] == "deploy" and proxy_c.labels[PROXY_LABEL] == cname
    assert not docker_client.containers.get(cname).attrs["HostConfig"]["PortBindings"]   # the app publishes none
    assert docker_client.networks.get(f"{cname}.net").attrs["Labels"]["io.jenkinsctl.role"] == "deploy"
    assert wait_http("127.0.0.1", port) == "1.0.0"

    order = ["v2", "v3", "v1"] * 7
    serving = "v1"
    slow: dict = {}
    checks = []
    with Load(port, rate=150, threads=6) as load:
        time.sleep(0.5)
        for i, name in enumerate(order[:20]):
            started = load.snapshot()
            if i == 0:
                # Sent once the candidate runs, so it is in flight when the
                # proxy switches (checked below against the load's answers).
                slow_thread = slow_request(port, slow, when=lambda: bool(
                    docker_client.containers.list(filters={"name": f"{cname}.next"})))
            r = result_of(deploy(cfg, example_images[name], cli_env))
            returned = load.snapshot()
            time.sleep(0.2)
            d = r["deploy"]["details"]
            assert r["deploy"]["outcome"] == "deployed" and d["mode"] == "proxy", d
            during = set(load.versions_since(started)[: returned - started])
            after = set(load.versions_since(returned + 6))   # sent once the deploy had returned
            checks.append((serving, name, during, after, d["switch_ms"], d["drain_seconds"]))
            serving = name
        slow_thread.join(10)
    failures = load.failures
    assert not failures, failures[:5]
    assert load.resent == 0
    assert load.rate() >= 100, load.rate()
    for old, new, during, after, _, _ in checks:
        assert during <= {VERSION_OF[old], VERSION_OF[new]}, (old, new, during)
        assert after <= {VERSION_OF[new]}, (old, new, after)
    assert slow.get("status") == 200 and slow["body"] == "1.0.0" and slow["end"] - slow["start"] >= 2.9, slow
    first_new = min(r[0] for r in load.results if r[2] == "2.0.0")
    assert slow["start"] < first_new < slow["end"], "the slow request was not in flight across the switch"
    assert running_names(docker_client, cname) == [cname, f"{cname}.proxy"]
    print(f"\n20 switches: {len(load.results)} requests at {load.rate():.0f}/s, {len(failures)} failed, "
          f"{load.resent} resent; switch ms {[c[4] for c in checks]}")


def test_unhealthy_candidate_is_never_switched_to(docker_client, example_images, cname, target, cli_env):
    port, config = target
    cfg = config()
    result_of(deploy(cfg, example_images["v1"], cli_env))
    with Load(port, rate=120, threads=4) as load:
        time.sleep(0.3)
        proc = deploy(cfg, example_images["bad"], cli_env)
        time.sleep(0.3)
    assert proc.returncode == 6, proc.stderr
    assert "unhealthy on purpose" in proc.stderr and "previous version is still serving" in proc.stderr
    assert not load.failures, load.failures[:5]
    assert set(load.versions_since(0)) == {"1.0.0"} and load.ok > 50
    assert running_names(docker_client, cname) == [cname, f"{cname}.proxy"]


def test_live_errors_in_the_watch_window_switch_back_and_fail_with_exit_6(docker_client, example_images, cname,
                                                                          target, cli_env):
    """The 'errors' version passes /health but answers 500 to real
    requests: the watch sees it in the proxy's counters, switches back to
    the old container (still running), and the deploy fails with the
    numbers and the new version's log lines.  The client saw only the bad
    answers the report counts, and the old version afterwards."""
    port, config = target
    cfg = config(watch=20)
    result_of(deploy(cfg, example_images["v1"], cli_env))
    before = docker_client.containers.get(cname).id
    with Load(port, rate=150, threads=6) as load:
        time.sleep(0.3)
        t = time.monotonic()
        proc = deploy(cfg, example_images["errors"], cli_env, "--result", "/dev/null")
        took = time.monotonic() - t
        returned = load.snapshot()
        time.sleep(0.5)
    assert proc.returncode == 6, proc.stderr
    assert took < 15, took                      # switched back well within the 20 s window
    assert "switched back to the previous version" in proc.stderr
    assert "broken on purpose" in proc.stderr or "500" in proc.stderr   # the new version's log lines
    import re

    m = re.search(r"failed (\d+) of (\d+) live requests .*5xx answers: (\d+), connection errors: (\d+)", proc.stderr)
    assert m, proc.stderr
    reported_5xx = int(m.group(3))
    seen = load.failures
    assert seen and all(f[3].startswith("HTTP 500") for f in seen), seen[:5]
    assert len(seen) <= reported_5xx, (len(seen), reported_5xx)
    assert set(load.versions_since(0)) == {"1.0.0"}
    assert set(load.versions_since(returned)) == {"1.0.0"}
    assert not [f for f in load.failures if f[0] > t + took]
    assert docker_client.containers.get(cname).id == before
    assert running_names(docker_client, cname) == [cname, f"{cname}.proxy"]
    print(f"\nwatch: {len(seen)} bad answers seen by the client, {reported_5xx} reported; deploy took {took:.1f}s")


def test_rollback_is_a_proxy_switch_to_the_kept_container(docker_client, example_images, cname, target,
                                                          cli_env):
    port, config = target
    cfg = config()
    for v in ("v1", "v2"):
        result_of(deploy(cfg, example_images[v], cli_env))
    with Load(port, rate=120, threads=4) as load:
        time.sleep(0.3)
        back = result_of(run_cli("--config", cfg, "-o", "json", "rollback", "--to", "web", env=cli_env))
        returned = load.snapshot()
        time.sleep(0.3)
    d = back["deploy"]
    assert d["outcome"] == "rolled-back" and d["details"]["mode"] == "proxy", d
    assert not load.failures, load.failures[:5]
    assert set(load.versions_since(returned)) == {"1.0.0"}
    # Drained, then told to stop: the engine takes it down after the command.
    deadline = time.monotonic() + 15
    while docker_client.containers.get(f"{cname}.v2").status != "exited" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert docker_client.containers.get(f"{cname}.v2").status == "exited"
    # The proxy's configuration follows every switch: a restart (here by
    # hand; the engine's restart policy or a reboot alike) serves the
    # version the proxy served before, not the one it was created with.
    proxy_c = docker_client.containers.get(f"{cname}.proxy")
    assert proxy_c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    proxy_c.restart(timeout=10)
    assert wait_http("127.0.0.1", port) == "1.0.0"
    print(f"\nrollback: started and answering in {d['details']['start_ms']} ms, switched in "
          f"{d['details']['switch_ms']} ms, whole command {d.get('seconds', back.get('durations'))}")


def _kill_when(proc: subprocess.Popen, cond, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the deploy ended before the kill point: {proc.communicate()}")
        if cond():
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            return
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("kill point not reached")


@pytest.mark.parametrize("point", ["before-switch", "after-switch-before-drain", "in-window"])
def test_sigkill_during_a_deploy_leaves_a_serving_target_and_the_next_deploy_converges(
        docker_client, example_images, cname, target, cli_env, point):
    """Killed before the switch (the candidate runs), after it while the old
    version still drains (a 3-second request keeps it draining), or in the
    watch window: the target serves throughout and the next deploy
    converges."""
    import os

    port, config = target
    cfg = config(watch=30)
    result_of(deploy(cfg, example_images["v1"], cli_env))
    env = {k: v for k, v in os.environ.items() if not k.startswith("JENKINSCTL_")}
    env.update(cli_env)

    def exists_running(name):
        return any(c.name == name for c in docker_client.containers.list(filters={"name": name}))

    live = Proxy(docker_client, cname, {}, ProxySettings())

    def draining() -> bool:
        try:
            return "drain" in live.active()[2].values()
        except Exception:  # noqa: BLE001 - the proxy is being switched: look again
            return False

    cond = {"before-switch": lambda: exists_running(f"{cname}.next"),
            "after-switch-before-drain": draining,
            "in-window": lambda: exists_running(f"{cname}.v1")}[point]
    slow: dict = {}
    with Load(port, rate=120, threads=4) as load:
        time.sleep(0.3)
        if point == "after-switch-before-drain":
            # Sent to v1 once the candidate runs, so it is in flight at the switch.
            slow_thread = slow_request(port, slow, when=lambda: exists_running(f"{cname}.next"))
        proc = subprocess.Popen([sys.executable, "-m", "jenkinsctl", "--config", cfg, "-o", "json", "deploy",
                                 "--image", example_images["v2"].pinned, "--to", "web"], env=env, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _kill_when(proc, cond)
        if point == "after-switch-before-drain":
            assert not slow, f"the slow request ended before the kill: {slow}"
            slow_thread.join(30)
            assert (slow.get("status"), slow.get("body")) == (200, "1.0.0"), slow
        time.sleep(1.0)
        killed_at = load.snapshot()
        time.sleep(1.0)
        assert load.versions_since(killed_at), "nothing answered after the kill"
        again = result_of(deploy(cfg, example_images["v2"], cli_env))
        returned = load.snapshot()
        time.sleep(0.5)
    assert not load.failures, load.failures[:5]
    assert set(load.versions_since(returned)) == {"2.0.0"}
    assert again["deploy"]["outcome"] in ("deployed", "unchanged")
    assert running_names(docker_client, cname) == [cname, f"{cname}.proxy"]
    assert not docker_client.containers.list(all=True, filters={"name": f"{cname}.lock"})
    _, addr, states = live.active()
    assert addr == live.app_ip(docker_client.containers.get(cname).id)
    assert sorted(states.values()) == ["maint", "ready"]


def test_replacing_the_proxy_under_load_refuses_nothing_and_a_broken_config_is_refused(
        docker_client, example_images, cname, target, cli_env, monkeypatch):
    """A new proxy configuration (here: another drain time, which changes
    hard-stop-after) is applied by a new proxy generation that takes the
    listening sockets over; the old one finishes and leaves.  A broken
    configuration never replaces the proxy that serves."""
    from jenkinsctl.config import load_config
    from jenkinsctl.deploy import make_strategy
    from jenkinsctl.deploy import proxy as proxymod
    from jenkinsctl.errors import DeployError

    port, config = target
    result_of(deploy(config(), example_images["v1"], cli_env))
    old_gen = docker_client.containers.get(f"{cname}.proxy")
    with Load(port, rate=150, threads=6) as load:
        time.sleep(0.5)
        r = result_of(deploy(config(drain=12), example_images["v2"], cli_env))
        time.sleep(0.5)
        new_gen = docker_client.containers.get(f"{cname}.proxy")
        assert new_gen.id != old_gen.id
        assert new_gen.labels["io.jenkinsctl.proxy-generation"] == "2"

        # A broken configuration: the new generation's `haproxy -c` refuses it.
        cfg = config(drain=14)
        conf = load_config(cfg)
        strategy = make_strategy(conf.deploy_target("web"), config=conf, client=docker_client)
        monkeypatch.setattr(proxymod, "render_config", lambda *a, **k: "global\n    no-such-keyword on\n")
        with pytest.raises(DeployError) as err:
            strategy.deploy(example_images["v3"])
        time.sleep(0.5)
    assert "configuration is invalid" in err.value.message
    assert docker_client.containers.get(f"{cname}.proxy").id == new_gen.id
    assert not load.failures, load.failures[:5]
    # The old generation closed its idle keep-alive connections only after
    # an answer (idle-close-on-response): no request had to be resent.
    assert load.resent == 0
    assert set(load.versions_since(load.snapshot() - 20)) == {"2.0.0"}
    assert r["deploy"]["details"]["mode"] == "proxy"
    print(f"\nproxy replaced under load: {len(load.results)} requests, 0 failed, {load.resent} resent")


def test_a_target_publishing_its_own_port_migrates_to_proxy_mode(docker_client, example_images, cname, target,
                                                                 cli_env, tmp_path):
    """A container run by hand with -p moves behind the proxy on its next
    deploy: the only switch with a gap (old stop -> proxy bound), measured."""
    from tests.deploy.helpers import DEPLOY_TEST_LABELS, ProbeLoop

    port = free_port()
    docker_client.containers.run(example_images["v1"].pinned, name=cname, detach=True, labels=DEPLOY_TEST_LABELS,
                                 ports={"8080/tcp": ("127.0.0.1", port)}, restart_policy={"Name": "unless-stopped"})
    assert wait_http("127.0.0.1", port) == "1.0.0"
    cfg = write_config(tmp_path / "m.yaml", {"web": {"strategy": "container", "target": cname,
                                                     "proxy": {"watch": 0}}})
    with ProbeLoop("127.0.0.1", port) as probe:
        r = result_of(deploy(cfg, example_images["v2"], cli_env))
        time.sleep(0.3)
    d = r["deploy"]["details"]
    assert d["mode"] == "proxy-migration"
    assert probe.versions == ["1.0.0", "2.0.0"], probe.versions
    assert docker_client.containers.get(cname).attrs["HostConfig"]["PortBindings"] in ({}, None)
    assert docker_client.containers.get(cname).labels[DEPLOY_LABEL] == cname
    # The next deploy is an ordinary proxy switch.
    with ProbeLoop("127.0.0.1", port) as probe2:
        r2 = result_of(deploy(cfg, example_images["v3"], cli_env))
        time.sleep(0.3)
    assert r2["deploy"]["details"]["mode"] == "proxy" and probe2.failures == 0
    print(f"\nmigration gap: {d['switch_ms']} ms measured by jenkinsctl, {probe.failures} failed probes, "
          f"longest gap {probe.longest_gap_ms} ms seen by the probe loop")
    json.dumps(d)


def test_probes_from_the_engine_host_answer_like_direct_ones(docker_client, example_images, cname):
    """The probe that proxy mode runs inside a container on the engine's
    host network (for engines whose networks this process cannot reach)
    sees what the direct probe sees: an answer, a failing answer, a refused
    port.  Here the network is reachable, so both can be compared."""
    from jenkinsctl.deploy.health import http_probe
    from jenkinsctl.deploy.proxy import ensure_image
    from tests.deploy.helpers import DEPLOY_TEST_LABELS

    proxy = Proxy(docker_client, cname, DEPLOY_TEST_LABELS, ProxySettings())
    proxy.ensure_network()
    assert proxy.reachable_from_here()
    app = docker_client.containers.run(example_images["v1"].pinned, name=f"{cname}.app", detach=True,
                                       labels=DEPLOY_TEST_LABELS, network=proxy.network)
    prober = proxy.start_prober(ensure_image(docker_client, DEPLOY_TEST_LABELS))
    try:
        ip = proxy.app_ip(app.id)
        assert wait_http(ip, 8080) == "1.0.0"
        for path, want in (("/health", True), ("/nope", False)):
            url = f"http://{ip}:8080{path}"
            direct, via = http_probe(url), proxy.probe_http(prober, url, 1.0)
            assert direct[0] is via[0] is want, (direct, via)
            assert via[1].split(":", 2)[:2] == direct[1].split(":", 2)[:2]
        assert proxy.probe_tcp(prober, ip, 8080, 1.0)[0]
        refused = proxy.probe_http(prober, f"http://{ip}:8099/health", 1.0)
        assert not refused[0] and "refused" in refused[1].lower(), refused
        assert not proxy.probe_tcp(prober, ip, 8099, 1.0)[0]
        t = time.monotonic()
        for _ in range(10):
            proxy.probe_http(prober, f"http://{ip}:8080/health", 1.0)
        print(f"\nprobe from the engine host: {(time.monotonic() - t) * 100:.0f} ms each")
    finally:
        proxy.remove_prober(prober)
        app.remove(force=True)
        proxy.remove()
