"""provision without an engine: names refused before anything is made, the
lock, the hash, and the text renderings of plan/apply/status."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from jenkinsctl.config import load_config
from jenkinsctl.converge import config_hash
from jenkinsctl.errors import ConfigError, Timeout
from jenkinsctl.names import network_name, node_marker
from jenkinsctl.provision import Provisioner, agents, render_changes, render_status, validate
from tests.unit.test_poll import FakeClock


def config(tmp_path, **changes):
    cfg = load_config(None, env={"JENKINSCTL_STATE_DIR": str(tmp_path / "state")})
    return dataclasses.replace(cfg, **changes)


def test_names_come_from_project_and_groups(tmp_path):
    cfg = config(tmp_path, project="demo")
    assert [(a.node, a.container) for a in agents(cfg)] == [("agent-1", "demo-agent-1"), ("agent-2", "demo-agent-2")]
    assert network_name(cfg) == "demo-net"
    assert node_marker(cfg) == "jenkinsctl agent"


def test_too_long_container_names_are_refused_before_anything(tmp_path):
    cfg = config(tmp_path, project="p" * 40)
    long_group = dataclasses.replace(cfg.agents[0], name="g" * 30)
    cfg = dataclasses.replace(cfg, agents=(long_group,))
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert "63" in err.value.message


def test_two_groups_making_the_same_node_are_refused(tmp_path):
    cfg = config(tmp_path)
    a = dataclasses.replace(cfg.agents[0], name="x", count=2)
    b = dataclasses.replace(cfg.agents[0], name="x-1", count=0)
    validate(dataclasses.replace(cfg, agents=(a, b)))  # x-1 makes no node: fine
    c = dataclasses.replace(cfg.agents[0], name="x", count=1)
    with pytest.raises(ConfigError):
        validate(dataclasses.replace(cfg, agents=(a, c)))


def test_provisioner_refuses_bad_names_without_touching_the_engine(tmp_path):
    cfg = config(tmp_path)
    bad = dataclasses.replace(cfg.agents[0], name="a" * 70)

    def no_engine(host):
        raise AssertionError("the engine must not be contacted")

    with pytest.raises(ConfigError):
        Provisioner(dataclasses.replace(cfg, agents=(bad,)), docker_factory=no_engine)


def test_lock_serializes_runs_and_times_out(tmp_path):
    cfg = config(tmp_path)
    p1, p2 = Provisioner(cfg, docker_factory=lambda h: None), Provisioner(cfg, docker_factory=lambda h: None)
    order = []
    entered = threading.Event()

    def first():
        with p1.lock():
            entered.set()
            order.append("first-in")
            time.sleep(0.5)
            order.append("first-out")

    t = threading.Thread(target=first)
    t.start()
    entered.wait(5)
    with pytest.raises(Timeout):
        with p2.lock(timeout=0.1):
            pass
    with p2.lock(timeout=5):
        order.append("second-in")
    t.join()
    assert order == ["first-in", "first-out", "second-in"]
    assert (tmp_path / "state" / "provision.lock").stat().st_mode & 0o077 == 0


def test_hash_is_stable_and_order_independent():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_render_changes_and_status():
    text = render_changes([{"kind": "container", "name": "p-agent-1", "action": "create", "detail": ""},
                           {"kind": "node", "name": "agent-1", "action": "unchanged", "detail": ""}])
    assert "+ create" in text and "1 create, 1 unchanged" in text
    assert render_changes([]) == "nothing to do"
    status = {"project": "p", "controller": {"url": "http://127.0.0.1:8080", "container": "p-controller",
                                             "state": "running", "reachable": True},
              "agents": [{"node": "agent-1", "group": "agent", "container": "p-agent-1", "state": "running",
                          "node_state": "offline", "offline_reason": "Host key verification failed",
                          "labels": ["docker"], "executors": 2}]}
    out = render_status(status)
    assert "NODE STATE" in out and "Host key verification failed" in out and "p-controller: running" in out


def test_the_casc_and_apply_give_a_node_the_same_host_description_and_credential(tmp_path):
    """A controller jenkinsctl runs re-applies its CasC at every restart:
    what apply registers must be what the CasC says, or each restart would
    look like a change."""
    from jenkinsctl import casc
    from jenkinsctl.names import credential_id, node_description

    cfg = config(tmp_path, project="demo")
    library = casc.LibrarySource("https://git.example.com/a/jenkinsctl.git", "v1", False, None)
    doc = casc.casc_document(cfg, {a.node: "ssh-ed25519 AAAA" for a in agents(cfg)}, library=library)
    for a, node in zip(agents(cfg), doc["jenkins"]["nodes"]):
        perm = node["permanent"]
        assert perm["name"] == a.node
        assert perm["nodeDescription"] == node_description(cfg, a.group)
        assert perm["launcher"]["ssh"]["host"] == a.container
        assert perm["launcher"]["ssh"]["credentialsId"] == credential_id(cfg)


# --- the waits, on a fake clock --------------------------------------------------------


class FakeContainer:
    def __init__(self, status: str = "running", logs: list[str] | None = None, exit_code: int = 0) -> None:
        self.attrs = {"State": {"Status": status, "Running": status == "running", "ExitCode": exit_code}}
        self._logs = logs or []
        self.log_reads = 0

    def logs(self, tail: int) -> bytes:
        self.log_reads += 1
        return "\n".join(self._logs[-tail:]).encode()


class FakeClient:
    def __init__(self, container: FakeContainer | None) -> None:
        self.container = container
        self.inspects = 0

        class Containers:
            def get(_, name):
                self.inspects += 1
                if self.container is None:
                    from jenkinsctl.engine import EngineAPIError

                    raise EngineAPIError(404, f"No such container: {name}")
                return self.container

        self.containers = Containers()


def engines(tmp_path, clock: FakeClock, said: list[str]):
    from jenkinsctl.converge import Engines

    return Engines(config(tmp_path), environ={}, docker_factory=lambda h: None, say=said.append,
                   clock=clock, sleep=clock.sleep)


def test_sshd_wait_ends_when_the_log_says_sshd_listens(tmp_path):
    clock, said = FakeClock(), []
    c = FakeContainer(logs=["Server listening on 0.0.0.0 port 22."])
    engines(tmp_path, clock, said).wait_sshd(FakeClient(c), "p-agent-1", timeout=60)
    assert clock.naps == [] and said == []


def test_sshd_wait_gives_up_at_its_deadline_and_says_so(tmp_path):
    clock, said = FakeClock(), []
    client = FakeClient(FakeContainer(logs=["starting"]))
    engines(tmp_path, clock, said).wait_sshd(client, "p-agent-1", timeout=3)
    assert said == ["p-agent-1: sshd not confirmed after 3s; registering anyway"]
    assert clock.now == pytest.approx(103.0, abs=0.05) and max(clock.naps) <= 0.2
    # The state is read about once a second; the log at every look.
    assert client.container.log_reads == len(clock.naps) + 1
    assert client.inspects == pytest.approx(client.container.log_reads / 5, abs=1)


def test_sshd_wait_fails_at_once_on_an_exited_agent_with_its_last_log_lines(tmp_path):
    from jenkinsctl.errors import EngineError

    clock, said = FakeClock(), []
    c = FakeContainer(status="exited", exit_code=3, logs=["", "no host key provisioned", "exiting"])
    with pytest.raises(EngineError) as err:
        engines(tmp_path, clock, said).wait_sshd(FakeClient(c), "p-agent-1", timeout=60)
    assert "exit code 3" in err.value.message
    assert err.value.message.endswith(": no host key provisioned | exiting")
    assert clock.naps == []
    with pytest.raises(EngineError, match="disappeared"):
        engines(tmp_path, clock, said).wait_sshd(FakeClient(None), "p-agent-1", timeout=60)


def test_the_lock_wait_runs_on_the_injected_clock(tmp_path):
    cfg = config(tmp_path)
    holder = Provisioner(cfg, docker_factory=lambda h: None)
    clock, said = FakeClock(), []
    waiter = Provisioner(cfg, docker_factory=lambda h: None, say=said.append, clock=clock, sleep=clock.sleep)
    started = time.monotonic()
    with holder.lock():
        with pytest.raises(Timeout) as err:
            with waiter.lock(timeout=600):
                pass
    assert time.monotonic() - started < 5  # ten fake minutes, no real ones
    assert clock.now == pytest.approx(700.0, abs=0.05)
    assert "more than 600s" in err.value.message
    assert len(said) == 1 and said[0].startswith(f"waiting for another jenkinsctl run on project {cfg.project}")


def test_orchestration_leaves_the_engine_to_converge():
    """provision.py decides and registers; every Docker call and docker-py
    error is converge.py's, and each module says in one line what it owns."""
    import ast
    import pathlib

    import jenkinsctl

    pkg = pathlib.Path(jenkinsctl.__file__).parent
    tree = ast.parse((pkg / "provision.py").read_text())
    mods = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    mods += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in mods if m.split(".")[0] == "docker"]
    for name in ("provision.py", "converge.py", "names.py"):
        doc = ast.get_docstring(ast.parse((pkg / name).read_text())) or ""
        assert doc and "\n" not in doc.split("\n\n")[0], name


class CreateRefused:
    """A client with no containers whose create answers ``status`` ``text``."""

    def __init__(self, status: int, text: str) -> None:
        from jenkinsctl.engine import EngineAPIError

        class Containers:
            def get(_, name):
                raise EngineAPIError(404, f"No such container: {name}")

            def create(_, **kw):
                raise EngineAPIError(status, text)

        self.containers = Containers()


def test_a_missing_image_on_create_gets_its_own_message(tmp_path):
    from jenkinsctl.errors import EngineError, EngineNotFound

    clock, said = FakeClock(), []
    client = CreateRefused(404, "No such image: p-agent:1")
    with pytest.raises(EngineError) as e:
        engines(tmp_path, clock, said).converge_container(
            client, {"name": "p-agent-1", "image": "p-agent:1", "labels": {}}, "h")
    assert not isinstance(e.value, EngineNotFound)
    assert e.value.message == "image p-agent:1 for p-agent-1 is not on the engine: No such image: p-agent:1"
    assert e.value.hint == "build it, or fix the image name in the config"


def test_a_missing_network_on_create_is_the_engine_error_for_the_action(tmp_path):
    from jenkinsctl.errors import EngineNotFound

    clock, said = FakeClock(), []
    client = CreateRefused(404, "network p-net not found")
    with pytest.raises(EngineNotFound) as e:
        engines(tmp_path, clock, said).converge_container(
            client, {"name": "p-agent-1", "image": "p-agent:1", "labels": {}}, "h")
    assert e.value.message == "create container p-agent-1: network p-net not found"


def docker_py_error(status: int, explanation: str):
    """An error as docker-py raises it for an engine answer ``status``."""
    import docker.errors
    import requests

    resp = requests.Response()
    resp.status_code, resp.reason, resp.url = status, {404: "Not Found", 409: "Conflict"}[status], "http+docker://x"
    cls = docker.errors.NotFound if status == 404 else docker.errors.APIError
    return cls("refused", response=resp, explanation=explanation)


def test_down_skips_containers_gone_already_and_quotes_the_engine_client_for_the_rest(tmp_path):
    class Obj:
        def __init__(self, name, error=None):
            self.name, self.id, self.error, self.attrs = name, name, error, {}

        def remove(self, force=False):
            if self.error is not None:
                raise self.error

    busy = docker_py_error(409, "network p-net has active endpoints")
    listed = {"container": [Obj("p-agent-1", docker_py_error(404, "No such container: p-agent-1")),
                            Obj("p-agent-2")],
              "network": [Obj("p-net", busy)], "volume": []}

    class Kind:
        def __init__(self, kind):
            self.kind = kind

        def list(self, **kw):
            return listed[self.kind]

    class Client:
        containers, networks, volumes = Kind("container"), Kind("network"), Kind("volume")

    from jenkinsctl.converge import Engines

    clock = FakeClock()
    eng = Engines(config(tmp_path), environ={}, docker_factory=lambda h: Client(), say=print,
                  clock=clock, sleep=clock.sleep)
    removed, problems = eng.remove_all(volumes=False)
    assert removed == [("container", "p-agent-2")]
    assert problems == [{"resource": "network p-net", "error": str(busy)}]
    assert "409 Client Error" in str(busy) and "active endpoints" in str(busy)
