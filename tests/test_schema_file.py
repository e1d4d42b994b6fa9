"""The committed JSON Schema for foreign producers matches the code."""

from devtools.export_schema import SCHEMA_PATH, render_schema


def test_committed_schema_is_current():
    assert SCHEMA_PATH.read_text() == render_schema(), "run: python -m devtools.export_schema"
