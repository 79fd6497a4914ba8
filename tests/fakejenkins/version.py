"""Which Jenkins the emulator is: the core and plugin versions pinned for the
controller jenkinsctl runs (resources/controller).

``PINNED`` is read through one function, ``pinned_versions()``:

1. ``jenkinsctl.controller_image.pinned_versions()`` when jenkinsctl has it
   (the controller image pins its core and every plugin there);
2. else the pins written into ``resources/controller`` (the Dockerfile's
   ``JENKINS_IMAGE`` tag and ``NAME:VERSION`` lines of plugins.txt);
3. else ``pins.json`` next to this file, which the emulator image build
   writes from 1 or 2 (the container has neither jenkinsctl nor resources/);
4. else ``SOURCES_READ``.

``SOURCES_READ`` are the exact versions whose sources the emulator's
behaviour was read from (tests/fakejenkins/README.md cites file by file).
A test fails when the pins and these drift apart: then the sources of the
new versions must be read again and the emulator and this table updated.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PINS_FILE = HERE / "pins.json"


@dataclass(frozen=True)
class Pins:
    core: str
    plugins: dict = field(default_factory=dict)


# Read from the tags of the public repositories (jenkinsci/...): the newest
# 2.555.x LTS tag, and for each plugin the newest release whose
# jenkins.baseline/jenkins.version (its minimum core) is <= that core.
SOURCES_READ = Pins(
    # jenkinsci/jenkins tag jenkins-2.568.2: read at jenkins-2.555.3, and the
    # cited core files diffed to 2.568.2 (README: "The versions it is").
    core="2.568.2",
    plugins={
        "configuration-as-code": "2117.vc05a_0b_e6b_f4e",  # baseline 2.541.1
        "credentials": "1502.v5c95e620ddfe",  # baseline 2.541.1
        "ssh-credentials": "361.vb_f6760818e8c",  # baseline 2.479.1
        "ssh-slaves": "3.1097.v868116049892",  # jenkinsci/ssh-agents-plugin, baseline 2.504.1
        "workflow-aggregator": "608.v67378e9d3db_1",  # baseline 2.479.3
        "pipeline-groovy-lib": "798.v5cc688825312",  # baseline 2.504.3
        "git": "5.10.1",  # baseline 2.504.3
        "matrix-auth": "3.2.8",  # baseline 2.479.3
    },
)


def _from_jenkinsctl() -> Pins | None:
    try:
        from jenkinsctl import controller_image
    except ImportError:
        return None
    fn = getattr(controller_image, "pinned_versions", None)
    if fn is None:
        return None
    p = fn()
    return Pins(core=str(p.core), plugins=dict(p.plugins))


def parse_resources(root: Path) -> Pins | None:
    """The pins in resources/controller, or None when it pins no core."""
    dockerfile, plugins_txt = root / "Dockerfile", root / "plugins.txt"
    if not dockerfile.exists():
        return None
    m = re.search(r"^ARG JENKINS_IMAGE=\S*?:(\d+\.\d+(?:\.\d+)?)(?:-\S*)?\s*$", dockerfile.read_text(), re.M)
    if not m:
        return None
    plugins = {}
    if plugins_txt.exists():
        for line in plugins_txt.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if ":" in line:
                name, version = line.split(":", 1)
                plugins[name.strip()] = version.strip()
    return Pins(core=m.group(1), plugins=plugins)


def pinned_versions() -> Pins:
    pins = _from_jenkinsctl()
    if pins is None:
        pins = parse_resources(HERE.parent.parent / "resources" / "controller")
    if pins is None and PINS_FILE.exists():
        data = json.loads(PINS_FILE.read_text())
        pins = Pins(core=data["core"], plugins=dict(data["plugins"]))
    return pins or SOURCES_READ


PINNED = pinned_versions()
