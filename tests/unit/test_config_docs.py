"""The configuration reference is generated from the schema; fail on drift."""

import pathlib

from jenkinsctl.config import reference_markdown, schema

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_configuration_reference_matches_schema():
    on_disk = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert on_disk == reference_markdown(), "docs/configuration.md is stale: run scripts/gen-docs"


def test_every_top_level_key_is_documented():
    doc = reference_markdown()
    for key in schema()["properties"]:
        assert f"| `{key}` |" in doc
