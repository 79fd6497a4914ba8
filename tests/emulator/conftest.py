"""Conformance tests of the Jenkins emulator, driven by the real python-jenkins."""
import sys
from pathlib import Path

try:
    import tests.fakejenkins  # noqa: F401
except ImportError:  # pytest run without the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fakejenkins.fixtures import (  # noqa: E402,F401
    client_key,
    docker_engine,
    emulator_image,
    fake_jenkins,
    fake_jenkins_factory,
    jenkins_client,
    silent_server,
    sshd_agent_factory,
    sshd_image,
    sshd_image_java17,
    test_network,
)
