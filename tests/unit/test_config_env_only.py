"""A config made of the defaults and JENKINSCTL_* variables only (what a
pipeline's `build` and `push` usually run on) is checked without importing
jsonschema, and must come out exactly as jsonschema's check makes it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jenkinsctl import config as configmod
from jenkinsctl.errors import ConfigError

CASES = [
    ("JENKINSCTL_PROJECT", "team-a", "Bad Name"),
    ("JENKINSCTL_STATE_DIR", "/srv/state", None),
    ("JENKINSCTL_ENGINE_HOST", "tcp://10.0.0.2:2375", "http://10.0.0.2:2375"),
    ("JENKINSCTL_CONTROLLER_URL", "https://ci.example:8443/", "ftp://ci.example"),
    ("JENKINSCTL_CONTROLLER_USERNAME", "bob", None),
    ("JENKINSCTL_REGISTRY_URL", "registry.example:5000", "registry.example/team"),
    ("JENKINSCTL_BUILDER", "classic", "buildx"),
]


def _both(env, monkeypatch):
    """load_document's answer (document or ConfigError) on the fast path
    and with jsonschema forced."""
    def run():
        try:
            return configmod.load_document(None, env=env, discover=False)
        except ConfigError as exc:
            return ("error", exc.message, exc.hint)

    fast = run()
    with monkeypatch.context() as m:
        m.setattr(configmod, "_plainly_valid", lambda *a: False)
        slow = run()
    return fast, slow


@pytest.mark.parametrize("var,good,bad", CASES, ids=[c[0] for c in CASES])
def test_variables_alone_give_what_jsonschema_gives(var, good, bad, monkeypatch):
    fast, slow = _both({var: good}, monkeypatch)
    assert fast == slow and fast[0] != "error"
    if bad is not None:
        fast, slow = _both({var: bad}, monkeypatch)
        assert fast == slow and fast[0] == "error" and fast[1].startswith("environment:")


def test_plainly_valid_says_no_when_unsure():
    root = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"},
                                             "b": {"$ref": "#/$defs/b"},
                                             "c": {"anyOf": [{"type": "string"}]},
                                             "d": {"type": "integer"}}}
    assert configmod._plainly_valid(root, ("a",), "xy")
    assert not configmod._plainly_valid(root, ("a",), "yx")       # fails: jsonschema words the error
    assert not configmod._plainly_valid(root, ("b",), "x")        # a keyword it does not check
    assert not configmod._plainly_valid(root, ("c",), "x")
    assert not configmod._plainly_valid(root, ("d",), "1")
    assert not configmod._plainly_valid(root, ("e",), "x")        # no such key
    assert not configmod._plainly_valid({**root, "allOf": []}, ("a",), "xy")


def test_registry_url_alone_does_not_import_jsonschema(tmp_path):
    code = ("import sys\n"
            "from jenkinsctl.config import load_config\n"
            "c = load_config(None, env={'JENKINSCTL_REGISTRY_URL': 'reg.example:5000'})\n"
            "print(c.registry.url, 'jsonschema' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JENKINSCTL_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                         env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["reg.example:5000", "False"]
