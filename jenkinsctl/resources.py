"""Find files under the shared library's resources/ directory.

From a checkout they are read in place; an installed wheel carries the same
tree as the package ``jenkinsctl._resources`` (see setup.cfg).
"""

from __future__ import annotations

import pathlib


def resource_path(rel: str) -> pathlib.Path:
    here = pathlib.Path(__file__).resolve().parent
    checkout = here.parent / "resources" / rel
    if checkout.exists():
        return checkout
    return here / "_resources" / rel
