"""The robustness report: ``@pytest.mark.case(N)`` and the ``figure`` fixture.

A test anywhere in the suite may prove a numbered robustness or security
case; at the end of each marked test one JSON line is appended to
``$JENKINSCTL_ROBUSTNESS_REPORT`` (default /tmp/jenkinsctl-robustness.jsonl):
case, test, outcome, seconds, figures.  ``bench/robustness_report.py``
renders docs/robustness.md from that file.  Cases live next to the fixtures
they need (a deployed app in tests/provision, a registry in tests/deploy)
instead of being copied into one directory.
"""

from __future__ import annotations

import json
import os
import pathlib
import time

import pytest

REPORT_DEFAULT = "/tmp/jenkinsctl-robustness.jsonl"


def report_path() -> pathlib.Path:
    return pathlib.Path(os.environ.get("JENKINSCTL_ROBUSTNESS_REPORT", REPORT_DEFAULT))


def pytest_configure(config):
    config.addinivalue_line("markers", "case(n): the robustness or security case a test proves")


# --- figures ----------------------------------------------------------------------

_FIGURES_KEY = pytest.StashKey[dict]()


@pytest.fixture
def figure(request):
    """``figure(name=value, ...)`` records figures for this test's report line."""
    figures: dict = {}
    request.node.stash[_FIGURES_KEY] = figures

    def record(**values):
        figures.update(values)

    return record


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    # One line per test: the call phase, or setup when setup failed.
    if rep.when == "call" or (rep.when == "setup" and rep.outcome != "passed"):
        marker = item.get_closest_marker("case")
        if marker is None:
            return
        line = {
            "case": marker.args[0],
            "test": item.nodeid,
            "outcome": rep.outcome,
            "seconds": round(rep.duration, 3),
            "figures": item.stash.get(_FIGURES_KEY, {}),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        if rep.outcome != "passed":
            text = str(rep.longrepr)
            line["error"] = text.strip().splitlines()[-1][:400] if text.strip() else ""
        path = report_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, default=str, sort_keys=True) + "\n")
