"""Find files under the shared library's resources/ directory.

From a checkout they are read in place; an installed wheel carries the same
tree as the package ``jenkinsctl._resources`` (see setup.cfg).
"""

from __future__ import annotations

import json
import pathlib
from typing import Any


def resource_path(rel: str) -> pathlib.Path:
    here = pathlib.Path(__file__).resolve().parent
    checkout = here.parent / "resources" / rel
    if checkout.exists():
        return checkout
    return here / "_resources" / rel


def config_schema() -> dict[str, Any]:
    """resources/schemas/config.schema.json: what the config loader
    validates against and what the step docs take their defaults from."""
    with resource_path("schemas/config.schema.json").open(encoding="utf-8") as fh:
        return json.load(fh)
