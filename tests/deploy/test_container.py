"""The container strategy on the real engine, driven through the CLI the way
a pipeline runs it, against images pushed to the htpasswd registry."""

from __future__ import annotations

import json

import pytest

from jenkinsctl.deploy import DEPLOY_LABEL, IMAGE_LABEL
from tests.deploy.helpers import ProbeLoop, result_of, run_cli, wait_http, write_config
from tests.deploy.helpers import DEPLOY_TEST_LABELS as TEST_LABELS
from tests.support.registry import free_port

pytestmark = pytest.mark.engine


def deploy(cfg, ref, to, env, *extra):
    return run_cli("--config", cfg, "-o", "json", "deploy", "--image", ref, "--to", to, *extra, env=env)


def test_replaces_a_hand_made_container_keeping_its_settings_and_measures_the_switch(
        docker_client, example_images, cname, network, cli_env, tmp_path):
    """A container made with `docker run` (env, label, named volume, restart
    policy, network alias, published port) is replaced by digest: the new
    one keeps all of it, the new image's own ENV wins over the old image's,
    and an HTTP probe loop sees v1 then v2 with a short gap."""
    v1, v2 = example_images["v1"], example_images["v2"]
    port = free_port()
    volume = docker_client.volumes.create(f"{cname}-data", labels=TEST_LABELS)
    old = docker_client.containers.run(
        v1.pinned, name=cname, detach=True, environment={"CUSTOM": "kept", "APP_MODE": "blue"},
        labels={**TEST_LABELS, "team": "web"}, volumes={volume.name: {"bind": "/data", "mode": "rw"}},
        restart_policy={"Name": "unless-stopped"}, ports={"8080/tcp": ("127.0.0.1", port)}, network=network)
    docker_client.api.disconnect_container_from_network(old.id, network)
    docker_client.api.connect_container_to_network(old.id, network, aliases=["web-alias"])
    old.exec_run(["sh", "-c", "echo precious > /data/file"], user="root")
    assert wait_http("127.0.0.1", port) == "1.0.0"
    # stop-first: the app publishes the port itself (proxy mode has its own tests in test_proxy.py).
    cfg = write_config(tmp_path / "j.yaml", {"web": {"strategy": "container", "target": cname, "switch": "stop-first"}})
    try:
        with ProbeLoop("127.0.0.1", port) as probe:
            proc = deploy(cfg, v2.pinned, f"container:{cname}", cli_env,
                          "--health-url", f"http://127.0.0.1:{port}/health", "--result", str(tmp_path / "r.json"))
            result = result_of(proc)
        new = docker_client.containers.get(cname)
        attrs = new.attrs
        env = dict(e.split("=", 1) for e in attrs["Config"]["Env"])
        assert env["CUSTOM"] == "kept" and env["APP_MODE"] == "blue"
        assert env["APP_VERSION"] == "2.0.0"           # the new image's ENV, not the old container's copy
        assert attrs["Config"]["Image"] == v2.pinned   # by digest
        assert attrs["Config"]["Labels"]["team"] == "web"
        assert attrs["Config"]["Labels"][DEPLOY_LABEL] == cname
        assert attrs["Config"]["Labels"]["io.jenkinsctl.managed"] == "true"
        assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        assert attrs["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        assert "web-alias" in attrs["NetworkSettings"]["Networks"][network]["Aliases"]
        assert new.exec_run(["cat", "/data/file"]).output.decode().strip() == "precious"
        # The hand-made container is kept, stopped, with its restart policy off.
        kept = docker_client.containers.get(f"{cname}.v0")
        assert kept.id == old.id and kept.status == "exited"
        assert kept.attrs["HostConfig"]["RestartPolicy"]["Name"] == "no"
        # What the probe loop saw: v1, a short gap, then v2, never back.
        assert probe.versions == ["1.0.0", "2.0.0"], probe.versions
        assert probe.longest_gap_ms < 5000, probe.longest_gap_ms
        d = result["deploy"]
        assert d["outcome"] == "deployed" and d["details"]["mode"] == "stop-first"
        assert d["previous"]["image"] == v1.pinned
        assert result["digest"] == v2.digest
        assert json.loads((tmp_path / "r.json").read_text())["digest"] == v2.digest
        print(f"\nstop-first switch: {d['details']['switch_ms']} ms measured by jenkinsctl, "
              f"{probe.failures} failed probes, longest gap {probe.longest_gap_ms} ms seen by the probe loop")
    finally:
        for c in docker_client.containers.list(all=True, filters={"name": cname}):
            c.remove(force=True)
        volume.remove(force=True)


def test_unhealthy_candidate_never_takes_traffic_and_the_command_fails_with_its_health_output(
        docker_client, example_images, cname, cli_env, tmp_path):
    port = free_port()
    cfg = write_config(tmp_path / "j.yaml", {"web": {
        "strategy": "container", "target": cname, "ports": [f"127.0.0.1:{port}:8080"], "switch": "stop-first",
        "health": {"timeout": 30, "interval": 0.5}}})
    result_of(deploy(cfg, example_images["v1"].pinned, "web", cli_env))
    before = docker_client.containers.get(cname).id
    with ProbeLoop("127.0.0.1", port) as probe:
        proc = deploy(cfg, example_images["bad"].pinned, "web", cli_env)
    assert proc.returncode == 6, proc.stderr
    # The failing health output and the candidate's last log lines.
    assert "unhealthy on purpose" in proc.stderr
    assert "health output:" in proc.stderr and "last log lines:" in proc.stderr
    assert "listening on :8080 (health FAILING)" in proc.stderr
    assert "previous version is still serving" in proc.stderr
    # The old version answered every single probe, and is the same container.
    assert probe.failures == 0, probe.results[:5]
    assert set(probe.answers) == {"1.0.0"} and sum(probe.answers.values()) > 50
    assert docker_client.containers.get(cname).id == before
    leftovers = [c.name for c in docker_client.containers.list(all=True, filters={"name": cname})]
    assert sorted(leftovers) == [cname]          # no candidate, no lock left behind


def test_the_targets_timeout_bounds_the_health_gate_too(docker_client, example_images, cname, cli_env, tmp_path):
    """--timeout bounds the whole deploy: a candidate that never answers
    fails when the deploy's 4 s are up, not after health.timeout's 60 s."""
    import time

    port = free_port()
    cfg = write_config(tmp_path / "j.yaml", {"web": {
        "strategy": "container", "target": cname, "ports": [f"127.0.0.1:{port}:8080"], "switch": "stop-first",
        "health": {"http": f"http://127.0.0.1:{port}/missing", "timeout": 60, "interval": 0.5}}})
    started = time.monotonic()
    proc = deploy(cfg, example_images["v1"].pinned, "web", cli_env, "--timeout", "4")
    took = time.monotonic() - started
    assert proc.returncode == 6, proc.stderr
    assert "the deploy's timeout of 4s" in proc.stderr, proc.stderr
    assert took < 30, f"the deploy took {took:.1f}s with --timeout 4"


def test_the_targets_timeout_bounds_the_wait_for_the_deploy_lock(docker_client, example_images, cname, cli_env,
                                                                   tmp_path):
    """The lock wait takes what is left of the deploy's timeout, not a
    timeout of its own that starts after the pull: a deploy whose lock is
    held elsewhere fails when --timeout is up, naming it."""
    import time

    cfg = write_config(tmp_path / "j.yaml", {"web": {"strategy": "container", "target": cname}})
    holder = _hold_lock(f"{cname}.lock", example_images["v1"].pinned)
    try:
        started = time.monotonic()
        proc = deploy(cfg, example_images["v1"].pinned, "web", cli_env, "--timeout", "3")
        took = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait(10)
        docker_client.containers.get(f"{cname}.lock").remove(force=True)
    assert proc.returncode != 0, proc.stdout
    assert "the deploy's timeout of 3s ran out while" in proc.stderr, proc.stderr
    assert took < 20, f"the deploy took {took:.1f}s with --timeout 3"


def test_rollback_and_keep(docker_client, example_images, cname, cli_env, tmp_path):
    port = free_port()
    cfg = write_config(tmp_path / "j.yaml", {"web": {
        "strategy": "container", "target": cname, "ports": [f"127.0.0.1:{port}:8080"], "switch": "stop-first", "keep": 1,
        "health": {"http": f"http://127.0.0.1:{port}/health", "timeout": 30, "interval": 0.5}}})
    for v in ("v1", "v2", "v3"):
        r = result_of(deploy(cfg, example_images[v].pinned, "web", cli_env))
    assert r["deploy"]["details"]["pruned"] == [f"{cname}.v1"]
    names = sorted(c.name for c in docker_client.containers.list(all=True, filters={"name": cname}))
    assert names == [cname, f"{cname}.v2"]               # keep: 1
    assert wait_http("127.0.0.1", port) == "3.0.0"
    # Deploying what already runs changes nothing.
    same = result_of(deploy(cfg, example_images["v3"].pinned, "web", cli_env))
    assert same["deploy"]["outcome"] == "unchanged"

    back = result_of(run_cli("--config", cfg, "-o", "json", "rollback", "--to", "web", env=cli_env))
    assert back["deploy"]["outcome"] == "rolled-back" and back["digest"] == example_images["v2"].digest
    assert wait_http("127.0.0.1", port) == "2.0.0"
    assert docker_client.containers.get(cname).labels[IMAGE_LABEL] == example_images["v2"].pinned
    # v3 is kept now; nothing older than v2 is, so a second rollback says so.
    again = run_cli("--config", cfg, "rollback", "--to", "web", env=cli_env)
    assert again.returncode == 6 and "no kept version is older than the current v2" in again.stderr
    assert "--version" in again.stderr
    fwd = result_of(run_cli("--config", cfg, "-o", "json", "rollback", "--to", "web", "--version", "v3",
                            env=cli_env))
    assert fwd["digest"] == example_images["v3"].digest and wait_http("127.0.0.1", port) == "3.0.0"


def test_start_first_on_a_network_has_no_downtime(docker_client, example_images, cname, network, cli_env,
                                                  tmp_path):
    """No published ports: the candidate joins under the alias before the
    old one stops.  A client on the network sees the old version, then the
    new one, never an error answer; at most one probe fails during the
    switch: its name lookup times out (the engine's embedded DNS briefly
    stalls while endpoints change; seen in about half the runs on 20.10), or
    it reached the old container as that one stopped (seen once in about
    ten runs)."""
    cfg = write_config(tmp_path / "j.yaml", {"web": {
        "strategy": "container", "target": cname, "network": network, "health": {"timeout": 30}}})
    result_of(deploy(cfg, example_images["v1"].pinned, "web", cli_env))
    loop = ("import http.client,time\n"
            "end=time.time()+600\n"
            "while time.time()<end:\n"
            "  try:\n"
            f"    c=http.client.HTTPConnection('{cname}',8080,timeout=1);c.request('GET','/version');t=time.time();"
            "r=c.getresponse();print('%.3f' % t, r.read().decode().strip() if r.status==200 else 'FAIL',flush=True)\n"
            "  except Exception as e: print('%.3f' % time.time(), 'FAIL',e,flush=True)\n"
            "  time.sleep(0.02)\n")
    prober = docker_client.containers.run(example_images["v1"].pinned, ["python3", "-c", loop], detach=True,
                                          name=f"{cname}.prober", network=network, labels=TEST_LABELS)
    try:
        import time

        time.sleep(1)
        r = result_of(deploy(cfg, example_images["v2"].pinned, "web", cli_env))
        deployed_at = time.time()   # the old container is stopped by now
        # The prober resolves the name through the engine's embedded DNS,
        # which can stall for seconds while the endpoints change (seen in
        # about a third of runs on engine 20.10); a stalled lookup answers
        # late, not wrongly, so wait for the new version to be seen.
        deadline = time.monotonic() + 30
        while b"2.0.0" not in prober.logs() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(0.5)
        probes = [line.split(" ", 2) for line in prober.logs().decode().splitlines() if line.strip()]
    finally:
        prober.remove(force=True)
    assert r["deploy"]["details"]["mode"] == "start-first"
    failures = [" ".join(p[1:]) for p in probes if p[1] == "FAIL"]
    # At most one probe may fail, and only in the ways the overlap allows: a
    # lookup that stalled, or a request the old container took just before
    # its stop (without a proxy nothing can hold it back; proxy mode drains).
    assert len(failures) <= 1 and all("timed out" in f or "closed connection" in f for f in failures), failures
    served = [(float(p[0]), p[1]) for p in probes if p[1] in ("1.0.0", "2.0.0")]
    assert served[0][1] == "1.0.0" and served[-1][1] == "2.0.0"
    # While both containers hold the alias the embedded DNS may give either
    # (start-first's overlap; proxy mode is what switches atomically, see
    # test_proxy.py); once the deploy has returned, the old one is stopped
    # and only the new version answers.
    assert all(v == "2.0.0" for t, v in served if t > deployed_at + 0.5), served[-20:]


def test_creates_the_container_from_the_config_when_absent(docker_client, example_images, cname, cli_env,
                                                           tmp_path, monkeypatch):
    port = free_port()
    cfg = write_config(tmp_path / "j.yaml", {"web": {
        "strategy": "container", "target": cname, "ports": [f"127.0.0.1:{port}:8080"], "switch": "stop-first",
        "env": {"GREETING": "hi", "TOKEN": {"env": "JCTEST_TOKEN"}}, "volumes": [f"{cname}-vol:/data"]}})
    env = {**cli_env, "JCTEST_TOKEN": "t0ken-value"}
    try:
        r = result_of(deploy(cfg, example_images["v1"].pinned, "web", env))
        assert r["deploy"]["outcome"] == "created" and r["deploy"]["details"]["health"] == "healthcheck"
        c = docker_client.containers.get(cname)
        e = dict(x.split("=", 1) for x in c.attrs["Config"]["Env"])
        assert e["GREETING"] == "hi" and e["TOKEN"] == "t0ken-value"
        assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        assert c.labels["io.jenkinsctl.project"] == "jctest" and c.labels[DEPLOY_LABEL] == cname
        assert any(m["Name"] == f"{cname}-vol" for m in c.attrs["Mounts"])
        # The volume jenkinsctl created carries the ownership labels too.
        assert docker_client.volumes.get(f"{cname}-vol").attrs["Labels"]["io.jenkinsctl.project"] == "jctest"
        assert wait_http("127.0.0.1", port) == "1.0.0"
    finally:
        for c in docker_client.containers.list(all=True, filters={"name": cname}):
            c.remove(force=True)
        for v in docker_client.volumes.list(filters={"name": f"{cname}-vol"}):
            v.remove(force=True)


# --- the deploy lock ------------------------------------------------------------------


def _hold_lock(lock: str, image: str):
    """A process that takes the deploy lock ``lock`` and keeps it; returns
    once it holds it."""
    import subprocess
    import sys

    from tests.deploy.helpers import REPO

    code = ("import time, docker\n"
            "from jenkinsctl.deploy.lock import engine_lock\n"
            f"with engine_lock(docker.from_env(), {lock!r}, {image!r}, {TEST_LABELS!r}):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(300)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_lock_left_by_a_killed_deploy_on_this_host_is_broken_at_once(docker_client, example_images, cname):
    """kill -9 mid-deploy leaves NAME.lock; its owner ran on this host and
    is gone, so the next deploy takes the lock at once instead of waiting
    out its timeout (docs/robustness.md, bug 4)."""
    import signal
    import time

    from jenkinsctl.deploy.lock import engine_lock

    lock, image = f"{cname}.lock", example_images["v1"].pinned
    holder = _hold_lock(lock, image)
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    assert docker_client.containers.get(lock).status == "created"       # left behind
    started = time.monotonic()
    with engine_lock(docker_client, lock, image, TEST_LABELS, timeout=10):
        took = time.monotonic() - started
        labels = docker_client.containers.get(lock).labels
    assert took < 3, f"waited {took:.1f}s for a dead owner's lock"
    assert labels["io.jenkinsctl.lock-pid"] == str(__import__("os").getpid())


def test_a_lock_held_by_a_live_process_or_another_host_is_waited_for(docker_client, example_images, cname):
    import time

    from jenkinsctl.deploy.lock import LOCK_STALE_SECONDS, engine_lock
    from jenkinsctl.errors import Timeout

    lock, image = f"{cname}.lock", example_images["v1"].pinned
    holder = _hold_lock(lock, image)
    try:
        with pytest.raises(Timeout) as e:
            with engine_lock(docker_client, lock, image, TEST_LABELS, timeout=1.5):
                pass
        assert f":{holder.pid})" in e.value.message
    finally:
        holder.kill()
        holder.wait(10)
    docker_client.containers.get(lock).remove(force=True)

    # Another host (another boot): its pid means nothing here, so only age
    # breaks its lock.  The same pid namespace and pid as a process of ours
    # must not make it look local.
    def foreign(age: float, until: float | None = None) -> None:
        bound = {} if until is None else {"io.jenkinsctl.lock-until": str(int(time.time() + until))}
        docker_client.api.create_container(
            image, command=["true"], name=lock, host_config=docker_client.api.create_host_config(network_mode="none"),
            labels={**TEST_LABELS, "io.jenkinsctl.lock-owner": "elsewhere:1",
                    "io.jenkinsctl.lock-time": str(int(time.time() - age)), "io.jenkinsctl.lock-host": "elsewhere",
                    "io.jenkinsctl.lock-boot": "00000000-0000-0000-0000-000000000000",
                    "io.jenkinsctl.lock-pidns": "pid:[1]", "io.jenkinsctl.lock-pid": "999999999",
                    "io.jenkinsctl.lock-start": "1", **bound})

    foreign(age=5)
    with pytest.raises(Timeout):
        with engine_lock(docker_client, lock, image, TEST_LABELS, timeout=1.5):
            pass
    docker_client.containers.get(lock).remove(force=True)
    foreign(age=LOCK_STALE_SECONDS + 5)   # written before lock-until existed: the age rule
    with engine_lock(docker_client, lock, image, TEST_LABELS, timeout=1.5):
        assert docker_client.containers.get(lock).labels["io.jenkinsctl.lock-owner"] != "elsewhere:1"
    # A holder whose target allows an hour is not broken at 900 s...
    foreign(age=LOCK_STALE_SECONDS + 5, until=3600 - LOCK_STALE_SECONDS)
    with pytest.raises(Timeout):
        with engine_lock(docker_client, lock, image, TEST_LABELS, timeout=1.5):
            pass
    docker_client.containers.get(lock).remove(force=True)
    # ...only once past the bound it declared.
    foreign(age=3700, until=-5)
    with engine_lock(docker_client, lock, image, TEST_LABELS, timeout=1.5, hold=40) as _:
        labels = docker_client.containers.get(lock).labels
        assert labels["io.jenkinsctl.lock-owner"] != "elsewhere:1"
        assert int(labels["io.jenkinsctl.lock-until"]) - int(labels["io.jenkinsctl.lock-time"]) >= 40
