"""Case 16: malformed config is rejected with its line number, and nothing
is provisioned.

Each config would provision a real project (two agents registered in the
emulator) if it were read loosely; the one defect sits on a known line.
The commands are run as a user runs them, and afterwards the emulator has
received no request and the engine holds nothing with the project's label.
"""

from __future__ import annotations

import pytest

from tests.robustness.conftest import ADMIN_PASSWORD

PROJECT = "robust-malformed"


def good_head(url: str, state: str) -> str:
    return (f"version: 1\nproject: {PROJECT}\nstate_dir: {state}\n"  # lines 1-3
            f"controller:\n  external: {url}\n  timeout: 5\n")        # lines 4-6


def cases(url: str, state: str) -> dict[str, tuple[bytes, int, str]]:
    head = good_head(url, state)
    bomb = ['bomb: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = "a" if i == 1 else chr(96 + i), chr(97 + i)
        bomb.append(f"bomb{i}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return {
        # name: (file bytes, line of the defect, a word the message must carry)
        "duplicate-key": ((head + "agents:\n  - name: build\n    count: 2\n    count: 3\n").encode(), 10,
                          "duplicate key 'count'"),
        "alias-bomb": ((head + "\n".join(bomb) + "\nagents:\n  - name: build\n    count: 2\n").encode(), None,
                       "alias"),
        "wrong-type": ((head + "agents:\n  - name: build\n    count: two\n").encode(), 9, "must be integer"),
        "wrong-type-nested": ((head + "agents:\n  - name: build\n    count: 2\n    labels: docker\n").encode(), 10,
                              "must be array"),
        "non-utf8": ((head + "agents:\n  - name: build\n    count: 2\n# caf\xe9\n").encode("latin-1"), 10,
                     "not valid UTF-8"),
    }


COMMANDS = [("validate",), ("plan",), ("apply",), ("status",), ("down",), ("doctor",),
            ("deploy", "--image", "127.0.0.1:5999/robust/x:1", "--to", "container:robust-x")]


@pytest.mark.case(16)
def test_malformed_config_is_rejected_with_its_line_and_provisions_nothing(fake_jenkins, docker_engine, cli,
                                                                           tmp_path, figure):
    state = tmp_path / "state"
    results = {}
    peak = 0
    worst = 0.0
    for name, (data, line, word) in cases(fake_jenkins.url, str(state)).items():
        path = tmp_path / f"{name}.yaml"
        path.write_bytes(data)
        for argv in COMMANDS:
            fake_jenkins.clear_requests()
            run = cli("-c", str(path), *argv, env={"JENKINSCTL_JENKINS_PASSWORD": ADMIN_PASSWORD}, timeout=60)
            peak = max(peak, run.peak_rss_kib)
            worst = max(worst, run.seconds)
            where = f"{name} / {' '.join(argv)}"
            assert run.rc == 2, f"{where}: exit {run.rc}\n{run.output}"
            first = run.stderr.splitlines()[0] if run.stderr else ""
            assert first.startswith(f"error: {path}"), f"{where}: {run.stderr}"
            if line is not None:
                assert f"{path}:{line}:" in first, f"{where}: expected line {line}: {first}"
            assert word in run.stderr, f"{where}: {run.stderr}"
            assert "Traceback" not in run.output, where
            assert fake_jenkins.requests == [], f"{where}: the controller was called: {fake_jenkins.requests}"
            results[where] = first[len("error: "):][:80]
        made = docker_engine.containers.list(all=True, filters={"label": f"io.jenkinsctl.project={PROJECT}"})
        assert made == [], f"{name}: containers were created: {[c.name for c in made]}"
        nets = docker_engine.networks.list(filters={"label": f"io.jenkinsctl.project={PROJECT}"})
        assert nets == [], f"{name}: networks were created: {[n.name for n in nets]}"
        assert not state.exists() or not any(state.iterdir()), f"{name}: state was written: {list(state.iterdir())}"
    figure(configs=len(cases("http://x/", "/x")), commands=len(COMMANDS), rejected=len(results),
           peak_rss_kib=peak, slowest_s=round(worst, 2))
