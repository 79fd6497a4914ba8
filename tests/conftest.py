"""Fixtures every test directory may use.  Directory-specific fixtures live in
that directory's conftest.py."""

from __future__ import annotations

import os
import pathlib

import pytest

from tests.support.engine import TEST_LABELS, engine_or_fail, remove_test_resources

# registry, registry_noauth, fault_proxy, image_tracker; case markers and figures
pytest_plugins = ["tests.support.fixtures", "tests.support.report"]

# The CasC of a controller jenkinsctl runs registers the shared library, which
# has no default URL, and a test checkout may have no origin.  The emulator
# never clones it.  Tests of the URL rules pass their own environment.
os.environ.setdefault("JENKINSCTL_LIBRARY_URL", "https://git.example.invalid/platform/jenkinsctl.git")


@pytest.fixture(scope="session")
def docker_client():
    """The real engine.  Resources labelled io.jenkinsctl.test=1 are removed
    at the end of the session, even after failures."""
    client = engine_or_fail()
    yield client
    remove_test_resources(client)


@pytest.fixture(autouse=True)
def _forget_secrets():
    """jenkinsctl registers every secret it resolves, process-wide, so the
    CLI boundary can mask it (jenkinsctl.secrets).  In-process tests would
    otherwise mask each other's text: one test's 3-character fuzzed
    "secret" turned another's '--params-env' into '--params-***'."""
    yield
    from jenkinsctl import secrets

    secrets.forget_all()


@pytest.fixture
def test_labels() -> dict[str, str]:
    return dict(TEST_LABELS)


# Directories whose tests drive a real engine (directly, or through the
# CLI), and the fixtures that reach one.  The `engine` marker is set from
# these, so `-m "not engine"` selects exactly the tests that need none.
ENGINE_DIRS = {"agent", "cli", "deploy", "modern", "pipeline", "provision", "robustness", "scenario", "steps"}
ENGINE_FIXTURES = {"docker_client", "docker_engine"}
_TESTS = pathlib.Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):  # noqa: ARG001
    for item in items:
        parts = pathlib.Path(str(item.fspath)).resolve().relative_to(_TESTS).parts
        if parts[0] in ENGINE_DIRS or ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.engine)
