"""jenkinsctl against a current engine that refuses API < 1.44 (Debian 13's
dockerd 26.1 with DOCKER_MIN_API_VERSION=1.44, as Docker 29 behaves):
every client negotiates, ship and the Swarm and stack deploys work, and an
old client gets the clear version error.

The engine's namespace has no route beyond the host, so nothing here runs
apt: the example app is built once on the host engine and loaded into the
modern one as the base of a small app.
"""

from __future__ import annotations

import json
import os
import random
import uuid

import pytest

from jenkinsctl.deploy import IMAGE_LABEL
from jenkinsctl.engine import api_tuple, probe_cli
from tests.deploy.helpers import EXAMPLE, result_of, run_cli, wait_http, write_config
from tests.support.engine import TEST_LABEL

pytestmark = [pytest.mark.engine, pytest.mark.slow]

BASE = "jenkinsctl-test/modern-webapp-base:1"
LABELS = {TEST_LABEL: "modern"}


@pytest.fixture(scope="session")
def webapp_base(docker_client, modern_engine) -> str:
    """The example app (python3, tini, the app) built on the host engine,
    where apt reaches the mirror, and loaded into the modern engine."""
    docker_client.images.build(path=str(EXAMPLE), tag=BASE, buildargs={"APP_VERSION": ""}, labels=LABELS, rm=True)
    modern_engine.load_image(BASE)
    return BASE


def app_context(path, version: str):
    """An app built FROM the example: a copied file and a RUN step, so the
    build runs a container on the modern engine's BuildKit."""
    path.mkdir()
    (path / "VERSION").write_text(version + "\n")
    (path / "Dockerfile").write_text(
        f"FROM {BASE}\n"
        "COPY VERSION /app/VERSION\n"
        'RUN ["python3", "-c", "open(\'/tmp/built\', \'w\').write(\'yes\')"]\n')
    return path


def cli_env(eng, *, path_first: str | None = None, **extra) -> dict[str, str]:
    """The environment of a jenkinsctl run against the modern engine: its
    Debian 13 CLI with buildx on PATH (Debian 12 hosts have no buildx
    package) and the namespace registry's credentials."""
    dirs = [d for d in (path_first, os.path.dirname(eng.cli)) if d]
    env = eng.env(PATH=os.pathsep.join([*dirs, os.environ.get("PATH", "")]), **eng.registry.env)
    env.update(extra)
    return env


def free_ns_port() -> int:
    return random.randint(20000, 40000)  # the namespace is private to this run: only its own ports are in use


def test_every_client_negotiates_the_engines_api_version(modern_engine, modern_client, docker_client):
    import docker
    import docker.errors

    from jenkinsctl.engine import api_error, engine_version
    from jenkinsctl.errors import EngineVersionError
    from jenkinsctl.engine import EngineAPI

    v = engine_version(host=modern_engine.host)
    assert (v.min_api, v.api) == ("1.44", "1.45") and v.version.startswith("26.1")
    assert modern_client.api.api_version == "1.45"                 # docker-py, version="auto"
    assert docker_client.api.api_version == engine_version(docker_client).api
    light = EngineAPI(modern_engine.host)                           # the light push client
    assert isinstance(light.images(), list) and light._prefix == "/v1.45"
    # A client pinned below the minimum is refused by the engine, and that
    # refusal becomes the version error.
    old = docker.DockerClient(base_url=modern_engine.host, version="1.41")
    with pytest.raises(docker.errors.APIError) as e:
        old.images.list()
    err = api_error("list images", e.value)
    assert isinstance(err, EngineVersionError) and "1.41" in err.message and "1.44" in err.message


@pytest.fixture(scope="session")
def proxy_image(docker_client, modern_engine) -> str:
    """The deploy proxy's image, built on the host engine (its apt step
    needs the mirror) and loaded into the modern one under the same
    content-hash tag, which jenkinsctl then finds instead of building."""
    from jenkinsctl.deploy.proxy import ensure_image

    ref = ensure_image(docker_client, LABELS)
    modern_engine.load_image(ref)
    return ref


def test_ship_builds_with_buildx_pushes_and_deploys_a_container(modern_engine, modern_client, webapp_base,
                                                                proxy_image, tmp_path):
    eng, reg = modern_engine, modern_engine.registry
    port, name = free_ns_port(), f"jcmodern-web-{uuid.uuid4().hex[:6]}"
    # Proxy mode (the default for a target with ports): the candidate's
    # address on NAME.net is inside this engine's own network namespace,
    # out of jenkinsctl's reach (as with any remote engine), so the health
    # probes run from the engine's host network instead.
    cfg = write_config(tmp_path / "j.yaml", {"web": {
        "strategy": "container", "target": name, "ports": [f"{eng.ns_ip}:{port}:8080"],
        "proxy": {"watch": 0, "drain": 5},
        "health": {"http": f"http://{eng.ns_ip}:{port}/health", "timeout": 60}}})
    repo = f"{reg.url}/modern/web"
    results = []
    for version in ("1.0.0", "1.0.1"):
        ctx = app_context(tmp_path / version, version)
        proc = run_cli("--config", cfg, "-o", "json", "ship", str(ctx), "--image", repo, "--to", "web",
                       env=cli_env(eng), cwd=tmp_path)
        results.append((proc, result_of(proc)))
        assert wait_http(eng.ns_ip, port) == version
    (proc, res), (_, res2) = results
    # buildx's docker driver: the engine's own BuildKit and cache.
    assert 'using docker driver' in proc.stderr
    assert res["build"]["builder"] == "buildkit" and res["build"]["total_steps"] == 2
    assert reg.manifest_digest("modern/web", res["tags"][0]) == res["digest"]
    assert res["deploy"]["strategy"] == "container" and res["deploy"]["outcome"] == "created"
    assert res["deploy"]["details"]["mode"] == "proxy" and res["deploy"]["details"]["health"] == "http"
    # The second ship is a proxy switch whose candidate passed the HTTP probe.
    assert res2["deploy"]["outcome"] == "deployed" and res2["deploy"]["details"]["mode"] == "proxy"
    assert res2["deploy"]["details"]["health"] == "http"
    assert modern_client.containers.get(name).labels[IMAGE_LABEL] == f"{repo}@{res2['digest']}"
    assert modern_client.containers.get(f"{name}.proxy").status == "running"
    # The stand-in prober of the first deploy is gone.
    assert not modern_client.containers.list(all=True, filters={"name": f"{name}.probe"})


def test_deploy_to_swarm_on_the_modern_engine(modern_engine, modern_client, webapp_base, tmp_path):
    from jenkinsctl import registry as registrylib
    from tests.support.swarm import ensure_swarm

    eng, reg = modern_engine, modern_engine.registry
    ensure_swarm(modern_client)
    repo = f"{reg.url}/modern/swarm"
    modern_client.api.tag(BASE, repo, "v1")
    pushed = registrylib.push(modern_client, repository=repo, tags=["v1"], auth=reg.auth)
    port, service = free_ns_port(), f"jcmodern-svc-{uuid.uuid4().hex[:6]}"
    cfg = write_config(tmp_path / "j.yaml", {"svc": {
        "strategy": "swarm", "target": service, "ports": [f"{port}:8080"], "timeout": 120,
        "env": {"APP_VERSION": "swarm-1"}}})
    res = result_of(run_cli("--config", cfg, "-o", "json", "deploy", "--image", f"{repo}@{pushed.digest}",
                            "--to", "svc", env=cli_env(eng)))
    assert res["deploy"]["outcome"] == "created"
    spec = modern_client.api.inspect_service(service)["Spec"]
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == f"{repo}@{pushed.digest}"
    assert wait_http(eng.ns_ip, port, timeout=60) == "swarm-1"


def test_stack_deploy_skips_a_cli_the_engine_refuses(modern_engine, modern_client, webapp_base, tmp_path):
    """docker stack deploy exists only in the CLI: with Debian 12's 20.10
    first on PATH, the stack strategy must take the next CLI, one the
    engine accepts."""
    from jenkinsctl import registry as registrylib
    from tests.support.swarm import ensure_swarm

    eng, reg = modern_engine, modern_engine.registry
    ensure_swarm(modern_client)
    old = old_cli_dir()
    repo = f"{reg.url}/modern/stack"
    modern_client.api.tag(BASE, repo, "v1")
    pushed = registrylib.push(modern_client, repository=repo, tags=["v1"], auth=reg.auth)
    port, stack = free_ns_port(), f"jcmodern{uuid.uuid4().hex[:6]}"
    compose = tmp_path / "compose.yaml"
    compose.write_text(json.dumps({"services": {"web": {
        "image": f"{repo}:v1", "environment": {"APP_VERSION": "stack-1"},
        "ports": [{"target": 8080, "published": port, "mode": "host"}]}}}))
    cfg = write_config(tmp_path / "j.yaml", {"app": {
        "strategy": "stack", "target": stack, "compose": str(compose), "service": "web", "timeout": 120}})
    res = result_of(run_cli("--config", cfg, "-o", "json", "deploy", "--image", f"{repo}@{pushed.digest}",
                            "--to", "app", env=cli_env(eng, path_first=old)))
    assert res["deploy"]["outcome"] == "created"
    assert wait_http(eng.ns_ip, port, timeout=60) == "stack-1"


def old_cli_dir() -> str | None:
    """Debian 12's /usr/bin (docker 20.10, API 1.41) when this host has it."""
    cli = probe_cli("/usr/bin/docker")
    if cli is None or api_tuple(cli.api) >= (1, 44):
        return None
    return "/usr/bin"


def test_an_old_cli_gets_the_clear_version_error(modern_engine, webapp_base, tmp_path):
    """Debian 12's CLI (API 1.41), or on a Debian 13 host its own CLI held
    to API 1.41 with DOCKER_API_VERSION: both are what the engine refuses."""
    eng = modern_engine
    ctx = app_context(tmp_path / "app", "9.9.9")
    if old_cli_dir():
        env = cli_env(eng, JENKINSCTL_DOCKER_CLI="/usr/bin/docker")
    else:
        env = cli_env(eng, JENKINSCTL_DOCKER_CLI=eng.cli, DOCKER_API_VERSION="1.41")
    proc = run_cli("build", str(ctx), "--image", f"{eng.registry.url}/modern/old", "--tag", "x", env=env)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and "Dockerfile" not in proc.stderr
    error = next(line for line in proc.stderr.splitlines() if line.startswith("error:"))
    assert "1.41" in error and "1.44" in error and "too old" in error
    hint = next(line for line in proc.stderr.splitlines() if line.startswith("hint:"))
    assert "jenkinsctl agent-image" in hint
    # And with --builder auto and no explicit CLI, the refused CLI is not
    # used at all: only Debian 12's 20.10 can build on PATH then, so the
    # build falls back to the classic builder with a note.
    if old_cli_dir():
        env = eng.env(PATH=os.pathsep.join(["/usr/bin", os.environ.get("PATH", "")]))
        proc = run_cli("-o", "json", "build", str(ctx), "--image", f"{eng.registry.url}/modern/old", "--tag", "y",
                       env=env)
        res = result_of(proc)
        assert res["builder"] == "classic" and "too old" in proc.stderr


def test_dood_build_and_push_from_an_agent_on_the_modern_engine(modern_engine, modern_client, agent_image, keystore):
    """An agent on the modern engine with that engine's socket mounted runs
    what a job runs: jenkinsctl build and push through the socket.  With the
    Debian 13 agent image (CLI 26.1 + buildx) the build is BuildKit through
    buildx; with an older agent CLI, which the engine refuses, jenkinsctl
    says so and builds with the classic builder (docker-py negotiates)."""
    from jenkinsctl.agent_image import agent_container_kwargs, install_agent_keys
    from tests.support.agent import agent_group

    eng, reg = modern_engine, modern_engine.registry
    eng.load_image(agent_image)
    eng.load_image("debian:bookworm-slim")
    group = agent_group("/tmp/jcmodern-agents", docker_socket=eng.socket_in_engine)
    kwargs = agent_container_kwargs(image=agent_image, name=f"jcmodern-agent-{uuid.uuid4().hex[:6]}",
                                    node="modern-1", group=group, labels=LABELS)
    kwargs["restart_policy"] = {"Name": "no"}
    container = modern_client.containers.create(**kwargs)
    try:
        install_agent_keys(container, keystore, "modern-1")
        container.start()
        job = (
            "set -e; d=$(mktemp -d); cd $d; "
            "printf 'FROM debian:bookworm-slim\\nRUN echo built-in-agent > /marker\\n' > Dockerfile; "
            f"jenkinsctl -o json build . --image {reg.url}/modern/dood --tag b1 > build.json; "
            f"jenkinsctl -o json push --image {reg.url}/modern/dood --tag b1 > push.json; "
            "echo '=== build'; cat build.json; echo '=== push'; cat push.json")
        env = {"JENKINSCTL_REGISTRY_USERNAME": reg.username, "JENKINSCTL_REGISTRY_PASSWORD": reg.password}
        code, out = _exec_when_ready(container, job, env)
        text = out.decode(errors="replace")
        assert code == 0, text
        build = json.loads(text.split("=== build", 1)[1].split("=== push", 1)[0])
        pushed = json.loads(text.split("=== push", 1)[1])
        assert reg.manifest_digest("modern/dood", "b1") == pushed["digest"]
        marker = modern_client.containers.run(f"{reg.url}/modern/dood:b1", ["cat", "/marker"], remove=True,
                                              labels=LABELS)
        assert marker.decode().strip() == "built-in-agent"

        agent_api = container.exec_run(["docker", "version", "--format", "{{.Client.APIVersion}}"],
                                       user="jenkins").output.decode().split()[0]
        if api_tuple(agent_api) >= (1, 44):
            assert build["builder"] == "buildkit", text
        else:
            # The agent's own CLI is refused by this engine; jenkinsctl did
            # not use it and said why.
            code, out = container.exec_run(["docker", "version"], user="jenkins")
            assert code != 0 and b"is too old" in out
            assert build["builder"] == "classic" and "too old" in text and "classic builder" in text, text
    finally:
        container.remove(force=True)


def _exec_when_ready(container, script: str, env: dict[str, str], timeout: float = 60):
    """Run the job as jenkins once the entrypoint has made the socket's group."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        code, _ = container.exec_run(["sh", "-c", "test -S /var/run/docker.sock && id -G jenkins | grep -qw "
                                      "\"$(stat -c %g /var/run/docker.sock)\""], user="root")
        if code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    return container.exec_run(["sh", "-c", script], user="jenkins", environment=env, workdir="/tmp")


@pytest.fixture(scope="module")
def keystore(tmp_path_factory):
    from jenkinsctl.keys import KeyStore

    return KeyStore(tmp_path_factory.mktemp("modern-keys"))
