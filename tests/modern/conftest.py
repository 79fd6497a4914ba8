"""The second engine: Debian 13's dockerd 26.1 refusing API < 1.44 (as
Docker 29 does), started once per test run and shared by every test here
(tests.support.modern_engine explains how it runs)."""

from __future__ import annotations

import pytest

from tests.support.agent import agent_image  # noqa: F401
from tests.support.engine import IN_CI


@pytest.fixture(scope="session")
def modern_engine():
    from tests.support.modern_engine import start_modern_engine, stop_modern_engine

    try:
        eng = start_modern_engine(log=lambda m: print(m, flush=True))
    except RuntimeError as exc:
        if IN_CI:
            pytest.fail(f"the modern engine did not start: {exc}")
        pytest.skip(f"the modern engine did not start: {exc}")
    yield eng
    stop_modern_engine(eng)


@pytest.fixture(scope="session")
def modern_client(modern_engine):
    c = modern_engine.client()
    yield c
    c.close()
