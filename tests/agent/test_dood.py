"""docker-outside-of-docker from a real agent: the docker CLI as jenkins,
over SSH, talking to the host engine through the mounted socket."""

from __future__ import annotations

import uuid

import pytest

from tests.support.agent import SocketProxy, remove_quietly, start_agent, unused_gid
from tests.support.engine import TEST_LABEL

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def test_docker_works_as_jenkins_when_the_socket_gid_matches_no_group_in_the_image(
        docker_client, agent_image, keystore, tmp_path_factory):
    """The socket is a proxy of the real one, owned root:GID mode 0660, where
    GID is checked to exist in no group of the image.  So jenkins can use it
    only through the group the entrypoint creates for that gid, not through
    a group the image already had and not through world permissions."""
    gid = unused_gid(docker_client, agent_image)
    sock_dir = tmp_path_factory.mktemp("sock")
    sock_dir.chmod(0o755)
    proxy = SocketProxy(sock_dir / "docker.sock", gid=gid, mode=0o660)
    root = tmp_path_factory.mktemp("agents-gid")
    root.chmod(0o755)
    agent = start_agent(docker_client, agent_image, keystore, "agent-gid", root=root,
                        socket_path=str(proxy.path))
    try:
        code, out, err = agent.ssh("stat -c '%a %u %g' /var/run/docker.sock; id -G")
        assert code == 0, err
        mode_line, groups = out.splitlines()
        assert mode_line == f"660 0 {gid}"  # never chmod 666
        assert str(gid) in groups.split()
        code, out, err = agent.ssh("docker version --format '{{.Server.Version}}'")
        assert code == 0, err
        assert out.strip() == docker_client.version()["Version"]
        # Control: a user outside that group is refused, so the access above
        # came through the group.
        code, out = agent.container.exec_run(["docker", "version"], user="nobody")
        assert code != 0 and b"permission denied" in out.lower()
    finally:
        remove_quietly(agent.container)
        proxy.close()


def test_docker_works_as_jenkins_with_the_real_socket(agents, docker_client):
    a = agents[0]
    code, out, err = a.ssh("id -un; docker version --format '{{.Server.Version}}'")
    assert code == 0, err
    assert out.split() == ["jenkins", docker_client.version()["Version"]]


def test_an_image_built_inside_the_agent_is_in_the_host_engine(agents, docker_client):
    a = agents[0]
    tag = f"jenkinsctl-test/built-in-agent:{uuid.uuid4().hex[:8]}"
    script = (
        "set -e; d=$(mktemp -d); cd $d; "
        "printf 'FROM debian:bookworm-slim\\nRUN echo built-in-agent > /marker\\n' > Dockerfile; "
        f"docker build -q --label {TEST_LABEL}=1 -t {tag} . >/dev/null; echo ok"
    )
    code, out, err = a.ssh(script, timeout=300)
    assert code == 0, err
    try:
        image = docker_client.images.get(tag)
        assert image.labels.get(TEST_LABEL) == "1"
        out = docker_client.containers.run(tag, ["cat", "/marker"], remove=True, labels={TEST_LABEL: "1"})
        assert out.decode().strip() == "built-in-agent"
    finally:
        docker_client.images.remove(tag, force=True)


def test_buildx_builds_with_buildkit_on_the_host_engine(agents, docker_client):
    """`docker buildx build` with the default builder (the docker driver)
    builds with the engine's own BuildKit, and the image lands in the host
    engine's store; the CLI negotiated down to the engine's API version."""
    a = agents[0]
    tag = f"jenkinsctl-test/buildx-in-agent:{uuid.uuid4().hex[:8]}"
    script = (
        "set -e; d=$(mktemp -d); cd $d; "
        "docker version --format 'api {{.Client.APIVersion}} {{.Server.APIVersion}}'; "
        "docker buildx inspect | sed -n 's/^Driver: *//p'; "
        "printf 'FROM debian:bookworm-slim\\nRUN echo buildx-in-agent > /marker\\n' > Dockerfile; "
        f"docker buildx build --progress plain --label {TEST_LABEL}=1 -t {tag} . 2>build.log "
        "|| { cat build.log >&2; exit 1; }; grep -c '^#[0-9]' build.log"
    )
    code, out, err = a.ssh(script, timeout=300)
    assert code == 0, err
    lines = out.split("\n")
    server = docker_client.version()["ApiVersion"]
    assert lines[0] == f"api {server} {server}"
    assert lines[1] == "docker"
    assert int(lines[2]) > 0  # BuildKit's plain progress ("#1 [internal] ..."), not the classic builder's "Step 1/2"
    try:
        image = docker_client.images.get(tag)
        assert image.labels.get(TEST_LABEL) == "1"
        out = docker_client.containers.run(tag, ["cat", "/marker"], remove=True, labels={TEST_LABEL: "1"})
        assert out.decode().strip() == "buildx-in-agent"
    finally:
        docker_client.images.remove(tag, force=True)


def test_jenkinsctl_build_in_the_agent_uses_buildkit_through_buildx(agents, docker_client):
    """What a job runs: jenkinsctl (on the agent's Python) picks the agent's
    CLI, which has BuildKit only through the buildx plugin, and builds on the
    host engine with the docker driver."""
    import json

    a = agents[0]
    repo = f"jenkinsctl-test/jenkinsctl-in-agent-{uuid.uuid4().hex[:8]}"
    script = (
        "set -e; d=$(mktemp -d); cd $d; "
        "printf 'FROM debian:bookworm-slim\\nRUN echo jenkinsctl-in-agent > /marker\\n' > Dockerfile; "
        f"jenkinsctl build --image {repo} --tag t1 --label {TEST_LABEL}=1 --output json ."
    )
    code, out, err = a.ssh(script, timeout=300)
    assert code == 0, err
    result = json.loads(out)
    assert result["builder"] == "buildkit" and result["refs"] == [f"{repo}:t1"]
    assert 'building with "default" instance using docker driver' in err
    try:
        image = docker_client.images.get(f"{repo}:t1")
        assert image.id == result["image_id"] and image.labels.get(TEST_LABEL) == "1"
    finally:
        docker_client.images.remove(f"{repo}:t1", force=True)


def test_the_workspace_is_at_the_same_path_so_docker_run_v_sees_it(agents):
    """`docker run -v "$PWD":/src` issued in the agent is resolved by the
    host engine; it sees the files because remoteFS is the same path on both."""
    a = agents[0]
    ws = f"{a.remote_fs}/workspace/job-{uuid.uuid4().hex[:6]}"
    script = (
        f"set -e; mkdir -p {ws}; cd {ws}; echo from-the-workspace > file.txt; "
        f"docker run --rm --label {TEST_LABEL}=1 -v \"$PWD\":/src debian:bookworm-slim cat /src/file.txt; "
        f"docker run --rm --label {TEST_LABEL}=1 -v \"$PWD\":/src debian:bookworm-slim "
        "sh -c 'echo from-a-sibling > /src/out.txt'; cat out.txt"
    )
    code, out, err = a.ssh(script, timeout=300)
    assert code == 0, err
    assert out.split() == ["from-the-workspace", "from-a-sibling"]
    # And it is the host's directory, at that very path.
    import pathlib

    assert pathlib.Path(ws, "file.txt").read_text() == "from-the-workspace\n"


def test_the_remote_fs_belongs_to_jenkins_and_is_per_node(agents):
    a, b = agents
    assert a.remote_fs != b.remote_fs
    for agent in agents:
        code, out, _ = agent.ssh(f"stat -c %U {agent.remote_fs} && touch {agent.remote_fs}/.w && echo ok")
        assert out.split() == ["jenkins", "ok"]
