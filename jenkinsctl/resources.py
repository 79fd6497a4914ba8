"""Find files under the shared library's resources/ directory.

From a checkout they are read in place; an installed wheel carries the same
tree as the package ``jenkinsctl._resources`` (see setup.cfg).
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False  # every command that reads the config imports this module
if TYPE_CHECKING:
    import pathlib
    from typing import Any


def _resource_file(rel: str) -> str:
    here = os.path.dirname(os.path.realpath(__file__))
    checkout = os.path.join(os.path.dirname(here), "resources", rel)
    if os.path.exists(checkout):
        return checkout
    return os.path.join(here, "_resources", rel)


def resource_path(rel: str) -> pathlib.Path:
    import pathlib  # not for the config's schema: pathlib's import is a cost of every build

    return pathlib.Path(_resource_file(rel))


def config_schema() -> dict[str, Any]:
    """resources/schemas/config.schema.json: what the config loader
    validates against and what the step docs take their defaults from."""
    with open(_resource_file("schemas/config.schema.json"), encoding="utf-8") as fh:
        return json.load(fh)
