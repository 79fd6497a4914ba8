"""The controller container is configured only by the generated CasC and
its secret files; a CasC the pinned controller rejects fails apply at once,
with the controller's own words."""

from __future__ import annotations

import time

import pytest

from jenkinsctl import casc as jcasc
from jenkinsctl.errors import JenkinsctlError


def test_casc_with_a_removed_attribute_fails_apply_clearly_within_the_ready_timeout(project, monkeypatch):
    real = jcasc.casc_document

    def with_removed_key(*args, **kwargs):
        doc = real(*args, **kwargs)
        # What jenkinsctl generated before Jenkins 2.543 removed the option.
        doc["jenkins"]["crumbIssuer"] = {"standard": {"excludeClientIPFromCrumb": False}}
        return doc

    monkeypatch.setattr(jcasc, "casc_document", with_removed_key)
    cfg = project.config(agents=[{"name": "agent", "count": 1}], ready_timeout=60)
    start = time.monotonic()
    with pytest.raises(JenkinsctlError) as err:
        project.provisioner(cfg).apply(wait_timeout=60)
    took = time.monotonic() - start
    assert took < 60, took
    msg = err.value.message
    assert "configuration-as-code was rejected" in msg and "excludeClientIPFromCrumb" in msg, msg
    assert "docker logs" in (err.value.hint or "")
    logs = project.client.containers.get(f"{project.name}-controller").logs().decode()
    assert "UnknownAttributesException: standard: Invalid configuration elements for type: class " \
           "hudson.security.csrf.DefaultCrumbIssuer : excludeClientIPFromCrumb." in logs
