"""Cases 12, 14 and 18: an unhealthy new version, two concurrent ships of two
branches, and disk hygiene after many ships.

jenkinsctl ship runs as a subprocess against the real engine and a real
htpasswd registry (tests/support/registry.py), shipping examples/webapp.
Every container belongs to a throw-away test project (ownership labels
io.jenkinsctl.project=robust-...) and is removed at teardown with the
images of the test repository.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
import uuid

import pytest

from tests.robustness.conftest import REPO, write_config
from tests.support.fixtures import registry  # noqa: F401
from tests.support.registry import free_port

APP = str(REPO / "examples" / "webapp")


class Probe:
    """GET URL every ``interval`` s in a thread; counts failures and the
    versions that answered."""

    def __init__(self, url: str, interval: float = 0.02) -> None:
        self.url, self.interval = url, interval
        self.ok = 0
        self.failures: list[str] = []
        self.versions: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=2) as resp:
                    self.versions.add(resp.read().decode().strip())
                    self.ok += 1
            except Exception as exc:  # noqa: BLE001 - every failure counts
                self.failures.append(f"{time.strftime('%H:%M:%S')} {exc}")
            self._stop.wait(self.interval)

    def __enter__(self) -> "Probe":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


def wait_serving(url: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read().decode().strip()
        except Exception:  # noqa: BLE001
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def project(docker_engine, registry):  # noqa: F811
    """A throw-away project: its name, its repository in the test registry,
    and teardown of its containers and images whatever happens."""
    name = f"robust-{uuid.uuid4().hex[:8]}"
    repo = f"{registry.url}/robust/{name}"
    yield name, repo
    for c in docker_engine.containers.list(all=True, filters={"label": f"io.jenkinsctl.project={name}"}):
        try:
            c.remove(force=True, v=True)
        except Exception:  # noqa: BLE001
            pass
    # by id: deploys pull by digest, which leaves untagged references too
    for img in docker_engine.images.list(name=repo, all=True):
        try:
            docker_engine.images.remove(img.id, force=True, noprune=False)
        except Exception:  # noqa: BLE001
            pass


def deploy_config(tmp_path, project: str, registry_url: str, targets: dict[str, tuple[str, int]],  # noqa: F811
                  keep: int = 3, keep_images: int = 5) -> str:
    lines = [f"project: {project}", f"state_dir: {tmp_path}/state", f"registry: {{url: \"{registry_url}\"}}",
             f"build: {{keep_images: {keep_images}}}", "deploy:", "  targets:"]
    for tname, (cname, port) in targets.items():
        lines += [f"    {tname}:", "      strategy: container", f"      target: {cname}",
                  f"      ports: [\"127.0.0.1:{port}:8080\"]", f"      keep: {keep}",
                  # These cases are about the container strategy's own faults
                  # (health, SIGKILL, concurrent ships, disk hygiene) with the
                  # app on the host port; tests/deploy/test_proxy.py covers
                  # them in proxy mode.
                  "      switch: stop-first",
                  f"      health: {{http: \"http://127.0.0.1:{port}/health\", timeout: 30, interval: 0.2}}",
                  "      timeout: 60"]
    return write_config(tmp_path / "jenkinsctl.yaml", "\n".join(lines) + "\n")


def ship(cli, cfg: str, repo: str, registry, *args: str, env: dict | None = None, result=None):  # noqa: F811
    argv = ["-c", cfg, "ship", APP, "--image", repo, *args]
    if result is not None:
        argv += ["--result", str(result)]
    return cli(*argv, env={**registry.env, **(env or {})}, timeout=240)


def container_digest(docker_engine, name: str) -> str:
    c = docker_engine.containers.get(name)
    image = docker_engine.images.get(c.attrs["Image"])
    return image.attrs["RepoDigests"][0].split("@", 1)[1] if image.attrs.get("RepoDigests") else c.attrs["Image"]


# --- case 12 ------------------------------------------------------------------------


@pytest.mark.case(12)
def test_unhealthy_version_leaves_the_old_one_serving(docker_engine, registry, project, cli, tmp_path,  # noqa: F811
                                                      figure):
    name, repo = project
    port = free_port()
    cname = f"{name}-web"
    cfg = deploy_config(tmp_path, name, registry.url, {"web": (cname, port)})
    first = ship(cli, cfg, repo, registry, "--tag", "v1", "--build-arg", "APP_VERSION=1.0.0", "--to", "web")
    assert first.rc == 0, first.output[-3000:]
    assert wait_serving(f"http://127.0.0.1:{port}/version") == "1.0.0"
    good_digest = container_digest(docker_engine, cname)

    with Probe(f"http://127.0.0.1:{port}/version") as probe:
        time.sleep(0.5)
        bad = ship(cli, cfg, repo, registry, "--tag", "v2-bad", "--build-arg", "APP_VERSION=2.0.0",
                   "--build-arg", "APP_HEALTH=fail", "--to", "web", result=tmp_path / "bad.json")
        time.sleep(0.5)
    assert bad.rc == 6, bad.output[-3000:]
    err = bad.stderr[bad.stderr.find("error:"):]
    assert "unhealthy" in err or "health" in err, err
    assert "500" in err, f"the failing health output is missing:\n{err}"
    assert "last log lines" in err, err
    assert probe.failures == [], probe.failures[:5]
    assert probe.versions == {"1.0.0"}, probe.versions
    assert probe.ok > 20
    assert container_digest(docker_engine, cname) == good_digest
    assert docker_engine.containers.get(cname).status == "running"
    leftovers = [c.name for c in docker_engine.containers.list(
        all=True, filters={"label": f"io.jenkinsctl.project={name}"}) if c.name != cname]
    assert not [n for n in leftovers if "candidate" in n], leftovers
    result = json.loads((tmp_path / "bad.json").read_text())
    assert result["deploy"]["outcome"] == "failed"
    figure(probes_ok=probe.ok, probe_failures=len(probe.failures), failed_after_s=round(bad.seconds, 1),
           exit_code=bad.rc)


# --- case 14 ------------------------------------------------------------------------


@pytest.mark.case(14)
@pytest.mark.parametrize("numbers", [{"a": "7", "b": "8"}, {"a": "7", "b": "7"}],
                         ids=["builds-7-and-8", "both-build-7"])
def test_two_concurrent_ships_of_two_branches_each_deploy_their_own_digest(docker_engine, registry, project,  # noqa: F811
                                                                          cli, tmp_path, figure, numbers):
    """Two branch jobs of one repository, same commit, at the same time on
    one engine, with different build numbers and with the *same* one (every
    multibranch job counts from 1).  Each ship must deploy exactly the
    digest it built and pushed, and serve its own branch's build.

    With the same build number the default tags used to collide (SHA12-b7)
    and one ship pushed and deployed the other branch's image
    (docs/robustness.md, bug 2): the branch is now part of the tag."""
    name, repo = project
    ports = {"a": free_port(), "b": free_port()}
    cfg = deploy_config(tmp_path, name, registry.url,
                        {f"web-{b}": (f"{name}-{b}", ports[b]) for b in ports})
    # warm the registry's base layers so both pushes race on what differs
    warm = ship(cli, cfg, repo, registry, "--tag", "warm")
    assert warm.rc == 0, warm.output[-3000:]
    runs: dict[str, object] = {}

    def go(branch: str) -> None:
        runs[branch] = ship(cli, cfg, repo, registry, "--build-arg", f"APP_VERSION=branch-{branch}",
                            "--to", f"web-{branch}", env={"BRANCH_NAME": f"feature-{branch}",
                                                          "BUILD_NUMBER": numbers[branch],
                                                          "JENKINS_URL": "http://127.0.0.1:1/"},
                            result=tmp_path / f"{branch}.json")

    threads = [threading.Thread(target=go, args=(b,)) for b in ports]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    took = time.monotonic() - start
    served = {}
    for b in ports:
        run = runs[b]
        assert run.rc == 0, f"branch {b}:\n{run.output[-3000:]}"
        result = json.loads((tmp_path / f"{b}.json").read_text())
        deployed = container_digest(docker_engine, f"{name}-{b}")
        assert deployed == result["digest"], f"branch {b} pushed {result['digest']} but runs {deployed}"
        served[b] = wait_serving(f"http://127.0.0.1:{ports[b]}/version")
        assert served[b] == f"branch-{b}", f"branch {b} serves {served[b]}"
    results = {b: json.loads((tmp_path / f"{b}.json").read_text()) for b in ports}
    assert len({r["digest"] for r in results.values()}) == 2
    assert results["a"]["tags"] != results["b"]["tags"], results
    figure(concurrent_ships=2, build_numbers=numbers, seconds=round(took, 1), served=served,
           tags={b: r["tags"] for b, r in results.items()})


@pytest.mark.case(14)
def test_two_concurrent_ships_given_one_tag_never_deploy_the_others_image(docker_engine, registry, project,  # noqa: F811
                                                                         cli, tmp_path, figure):
    """The same, but both given ``--tag same``: one host, one local tag,
    re-tagged by whichever build ends last.  A ship may fail (clearly: the
    tag was re-tagged by another build), but one that succeeds deployed the
    image it built, and a failed one deployed nothing."""
    name, repo = project
    ports = {"a": free_port(), "b": free_port()}
    cfg = deploy_config(tmp_path, name, registry.url,
                        {f"web-{b}": (f"{name}-{b}", ports[b]) for b in ports})
    warm = ship(cli, cfg, repo, registry, "--tag", "warm")
    assert warm.rc == 0, warm.output[-3000:]
    outcomes: dict[str, str] = {}
    for round_ in range(3):
        runs: dict[str, object] = {}

        def go(branch: str) -> None:
            runs[branch] = ship(cli, cfg, repo, registry, "--tag", "same", "--build-arg",
                                f"APP_VERSION=branch-{branch}-{round_}", "--to", f"web-{branch}",
                                result=tmp_path / f"{branch}.json")

        for f in tmp_path.glob("*.json"):
            f.unlink()
        threads = [threading.Thread(target=go, args=(b,)) for b in ports]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        for b in ports:
            run = runs[b]
            if run.rc != 0:
                assert run.rc == 5, f"branch {b}:\n{run.output[-3000:]}"
                assert "re-tagged it in between" in run.stderr, run.stderr[-2000:]
                assert not (tmp_path / f"{b}.json").exists()      # failed in push: nothing deployed
                outcomes[f"{round_}{b}"] = "refused"
                continue
            result = json.loads((tmp_path / f"{b}.json").read_text())
            assert docker_engine.images.get(f"{repo}@{result['digest']}").id == result["build"]["image_id"]
            assert container_digest(docker_engine, f"{name}-{b}") == result["digest"]
            assert wait_serving(f"http://127.0.0.1:{ports[b]}/version") == f"branch-{b}-{round_}"
            outcomes[f"{round_}{b}"] = "own image"
    figure(rounds=3, outcomes=outcomes)


# --- case 18 ------------------------------------------------------------------------


@pytest.mark.case(18)
def test_disk_hygiene_after_many_ships(docker_engine, registry, project, cli, tmp_path, figure):  # noqa: F811
    """After many ships to one container target, exactly the live container
    and ``keep`` retired ones remain, and their images are still there for
    rollback; of the image tags, exactly this ship's and the
    ``keep_images`` newest older ones.  Each ship costs ~5 s (a stop-first
    switch with two health gates, slower while other suites share the
    engine), so the default is 6 ships (3 more than keep + 1);
    JENKINSCTL_ROBUSTNESS_SHIPS=20 runs the issue's full 20.

    The tags count *down* (s99, s98, ...), so their text order is the
    reverse of ship order: the BuildKit images differ only in a build arg
    and share one Created time, and a prune that broke that tie by tag text
    kept the oldest (docs/robustness.md, bug 3) even with 6 ships."""
    name, repo = project
    port = free_port()
    cname = f"{name}-web"
    keep, keep_images = 2, 3
    ships = int(os.environ.get("JENKINSCTL_ROBUSTNESS_SHIPS", "6"))
    cfg = deploy_config(tmp_path, name, registry.url, {"web": (cname, port)}, keep=keep, keep_images=keep_images)

    def tag(i: int) -> str:
        return f"s{100 - i}"

    seconds = []
    for i in range(1, ships + 1):
        run = ship(cli, cfg, repo, registry, "--tag", tag(i), "--build-arg", f"APP_VERSION=0.{i}", "--to", "web",
                   result=tmp_path / "last.json")
        assert run.rc == 0, f"ship {i}:\n{run.output[-3000:]}"
        seconds.append(run.seconds)
    assert wait_serving(f"http://127.0.0.1:{port}/version") == f"0.{ships}"
    mine = docker_engine.containers.list(all=True, filters={"label": f"io.jenkinsctl.project={name}"})
    names = sorted(c.name for c in mine)
    running = [c.name for c in mine if c.status == "running"]
    assert running == [cname], names
    assert names == sorted([cname] + [f"{cname}.v{ships - k}" for k in range(1, keep + 1)]), names
    for c in mine:
        docker_engine.images.get(c.attrs["Image"])  # what rollback needs is still there
    tags = sorted(t.rsplit(":", 1)[1] for img in docker_engine.images.list(name=repo) for t in img.tags)
    last = json.loads((tmp_path / "last.json").read_text())["tags"]   # s94 and, on main, latest
    newest_old = [tag(ships - k) for k in range(1, keep_images + 1)]
    assert tags == sorted(set(last) | set(newest_old)), f"kept {tags}, want {last} + {newest_old}"
    figure(ships=ships, containers_kept=len(mine), keep=keep, keep_images=keep_images, tags_left=tags,
           median_ship_s=round(sorted(seconds)[len(seconds) // 2], 2))
