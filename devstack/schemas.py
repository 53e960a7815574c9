"""The JSON Schemas (draft 2020-12) of the three records bethos writes, from `schemas/` at the
project's root: `aggregated`, `latest` and `dead_letter` (docs/CONTRACT.md).

They are for the topics' users and for the tests, so neither a job's zip (`bethos package`) nor
the image holds them. This only reads them: validating is the caller's (the tests use
`jsonschema`, a development dependency).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devstack import paths

SCHEMA_DIR = paths.PROJECT_ROOT / "schemas"
NAMES = ("aggregated", "latest", "dead_letter")


def schema_path(name: str) -> Path:
    """The file of the schema `name` (one of NAMES)."""
    if name not in NAMES:
        raise ValueError(f"no schema {name!r}: one of {', '.join(NAMES)}")
    return SCHEMA_DIR / f"{name}.schema.json"


def load(name: str) -> dict[str, Any]:
    """The schema `name`, parsed."""
    schema: dict[str, Any] = json.loads(schema_path(name).read_text(encoding="utf-8"))
    return schema


def load_all() -> dict[str, dict[str, Any]]:
    """Every schema by name."""
    return {name: load(name) for name in NAMES}
