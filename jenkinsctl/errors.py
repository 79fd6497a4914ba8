"""One error root for jenkinsctl.

Every failure a user can act on is a JenkinsctlError carrying a message and
a hint.  Only jenkinsctl.cli turns these into exit codes, so library code
raises and never exits.  The exit codes are documented in the README.
"""

from __future__ import annotations

TYPE_CHECKING = False  # every command imports this module; typing is not free
if TYPE_CHECKING:
    from typing import Any


class JenkinsctlError(Exception):
    """A failure with a message for a person and a hint on what to do next."""

    exit_code = 1
    category = "general"

    def __init__(self, message: str, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # Machine-readable extras (file, line, key, outcome...) for
        # --output json and the pipeline step's error-details file.
        self.details = details
        # Set by a command that has something to show even though it failed.
        self.result: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "message": self.message,
            "category": self.category,
            "exit_code": self.exit_code,
        }
        if self.hint:
            out["hint"] = self.hint
        if self.details:
            out["details"] = self.details
        return out


class UsageError(JenkinsctlError):
    """Bad flags or arguments on the command line."""

    exit_code = 2
    category = "usage"


class ConfigError(JenkinsctlError):
    """The configuration file or a step's parameters are invalid."""

    exit_code = 2
    category = "config"


class EngineError(JenkinsctlError):
    """The Docker engine is unreachable or refused an operation."""

    exit_code = 3
    category = "engine"


class EngineNotFound(EngineError):
    """The engine has no such object (its answer 404): image, container,
    network, volume or service."""


class EngineConflict(EngineError):
    """The engine refused an operation that conflicts with an object's
    state (its answer 409): a name in use, an image a container uses."""


class EngineVersionError(EngineError):
    """The engine and a client share no API version: Docker 29 refuses
    clients older than API 1.44 (Debian 12's CLI 20.10 speaks 1.41).  The
    fix is a newer client, never a change to the Dockerfile."""

    category = "engine-version"


class BuildError(JenkinsctlError):
    """An image build failed."""

    exit_code = 4
    category = "build"


class RegistryError(JenkinsctlError):
    """A push, pull or login against a registry failed."""

    exit_code = 5
    category = "registry"


class DeployError(JenkinsctlError):
    """A deployment failed; the previous version is still serving."""

    exit_code = 6
    category = "deploy"


class JenkinsError(JenkinsctlError):
    """The Jenkins controller is unreachable or refused a request."""

    exit_code = 7
    category = "jenkins"


class JenkinsNotFound(JenkinsError):
    """The controller answered 404: the node, credential or page is not there."""

    category = "jenkins-not-found"


class JenkinsAuthError(JenkinsError):
    """The controller rejected the credentials (401) or a permission (403)."""

    category = "jenkins-auth"


class ProvisionError(JenkinsctlError):
    """plan/apply/down could not converge; what was done is in details."""

    exit_code = 8
    category = "provision"


class CheckFailed(JenkinsctlError):
    """`jenkinsctl doctor` found at least one failing check."""

    exit_code = 9
    category = "doctor"


class Timeout(JenkinsctlError):
    """A wait or a remote call exceeded its time limit."""

    exit_code = 10
    category = "timeout"


class Interrupted(JenkinsctlError):
    """SIGTERM or SIGINT arrived; the resource in progress was finished or
    undone first.  The exit code is the shell's: 128 + the signal number."""

    exit_code = 143
    category = "interrupted"

    def __init__(self, signum: int, message: str | None = None) -> None:
        import signal

        name = signal.Signals(signum).name
        super().__init__(message or f"interrupted by {name}",
                         hint="the resource in progress was finished or undone; run the command again to converge")
        self.signum = signum
        self.exit_code = 128 + signum
