"""The Docker engine: client factory, error translation, ownership labels.

Everything that talks to an engine gets its client from ``client()`` so a
timeout always applies and an unreachable engine is one clear error.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from jenkinsctl.errors import EngineError

if TYPE_CHECKING:  # docker is imported lazily: --help must not load it
    import docker

MANAGED_LABEL = "io.jenkinsctl.managed"
PROJECT_LABEL = "io.jenkinsctl.project"
CONFIG_HASH_LABEL = "io.jenkinsctl.config-hash"
ROLE_LABEL = "io.jenkinsctl.role"


def ownership_labels(project: str, **extra: str) -> dict[str, str]:
    labels = {MANAGED_LABEL: "true", PROJECT_LABEL: project}
    labels.update({f"io.jenkinsctl.{k.replace('_', '-')}": v for k, v in extra.items()})
    return labels


def owned_filter(project: str) -> dict[str, list[str]]:
    """A filters= argument that matches every resource jenkinsctl made for
    ``project``: what provisioning made *and* what deploy made.  Never use
    it to decide what provisioning may remove; see ``provisioned_filters``."""
    return {"label": [f"{MANAGED_LABEL}=true", f"{PROJECT_LABEL}={project}"]}


# The roles of what provisioning creates, by resource kind.  Deploy
# resources (app containers, kept versions, their volumes and networks,
# locks, proxies) share the ownership labels but carry the role "deploy"
# or none, so provisioning never sees them as its own: one host often runs
# the CI and the apps it deploys, under the same project name.
PROVISION_ROLES = {
    "container": ("controller", "agent"),
    "network": ("network",),
    "volume": ("controller-home",),
}


def provisioned_filters(project: str, kind: str) -> list[dict[str, list[str]]]:
    """One filters= argument per provisioning role of ``kind``.  The engine
    ANDs label filters, so the roles are listed one query each."""
    return [{"label": owned_filter(project)["label"] + [f"{ROLE_LABEL}={role}"]} for role in PROVISION_ROLES[kind]]


def is_provisioned(labels: dict[str, str] | None, project: str, kind: str) -> bool:
    """Whether a resource with ``labels`` is one provisioning made for ``project``."""
    labels = labels or {}
    return (labels.get(MANAGED_LABEL) == "true" and labels.get(PROJECT_LABEL) == project
            and labels.get(ROLE_LABEL) in PROVISION_ROLES[kind])


def client(host: str | None = None, *, timeout: int = 120, tls: bool = False) -> "docker.DockerClient":
    """A docker-py client for ``host`` (else DOCKER_HOST, else the local
    socket), checked with a ping so failures surface here, with a hint."""
    import docker
    import docker.errors

    host = host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        if host.startswith("ssh://"):
            # The ssh client binary reuses the user's ssh config and agent.
            c = docker.DockerClient(base_url=host, timeout=timeout, use_ssh_client=True)
        elif tls or os.environ.get("DOCKER_TLS_VERIFY"):
            env = dict(os.environ, DOCKER_HOST=host, DOCKER_TLS_VERIFY="1")
            c = docker.from_env(environment=env, timeout=timeout)
        else:
            c = docker.DockerClient(base_url=host, timeout=timeout)
        c.ping()
    except docker.errors.DockerException as exc:
        raise engine_unreachable(host, exc) from None
    except OSError as exc:
        raise engine_unreachable(host, exc) from None
    return c


def engine_unreachable(host: str, exc: BaseException) -> EngineError:
    text = str(exc)
    if "Permission denied" in text or "PermissionError" in text:
        path = host.removeprefix("unix://")
        hint = (f"this user may not use {path}; add it to the group that owns the socket "
                f"(stat -c %g {path}), e.g. 'usermod -aG docker $USER', then log in again. "
                "Never chmod 666 the socket: access to it is root on the host")
    else:
        hint = "start the engine (dockerd), or point DOCKER_HOST / engine.host at one that runs"
    return EngineError(f"cannot reach the Docker engine at {host}: {text}", hint=hint, host=host)


def api_error(action: str, exc: BaseException) -> EngineError:
    """Turn a docker.errors.APIError into an EngineError naming the action."""
    explanation = getattr(exc, "explanation", None) or str(exc)
    return EngineError(f"{action}: {explanation}")
