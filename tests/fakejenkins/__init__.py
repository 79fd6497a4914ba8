"""A faithful emulator of the Jenkins controller REST API, for tests only.

No shipped code imports this package.  See ``server.FakeJenkins`` (in-process),
``python -m tests.fakejenkins`` (standalone) and ``image.build_image`` (container).
"""
from .server import JENKINS_VERSION, Computer, FakeJenkins, User
from .silent import SilentServer

__all__ = ["FakeJenkins", "User", "Computer", "SilentServer", "JENKINS_VERSION"]
