"""The floors import one way; the event log format; dead letters; the Kafka DDL."""

from __future__ import annotations

import ast
import base64
from pathlib import Path

import orjson
from hypothesis import given
from hypothesis import strategies as st

from bethos.config import KafkaSettings
from bethos.deadletter import dead_letter
from bethos.logevents import format_event, parse_event
from connectors.kafka.tables import source_table_ddl, upsert_sink_ddl

ROOT = Path(__file__).resolve().parents[2]


def imports_of(path: Path) -> set[str]:
    """The modules a file imports, absolute names (relative imports are not used here)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def offenders(folder: str, forbidden: tuple[str, ...], skip: str | None = None) -> list[str]:
    """Each file under `folder` that imports a module of `forbidden`, with those it imports."""
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        relative = path.relative_to(ROOT)
        if skip is not None and skip in relative.parts:
            continue
        bad = sorted(
            name
            for name in imports_of(path)
            if any(name == f or name.startswith(f + ".") for f in forbidden)
        )
        if bad:
            found.append(f"{relative}: {', '.join(bad)}")
    return found


# The floors, bottom first: each imports only the floors below it and itself
# (docs/ARCHITECTURE.md). `bethos_flink` is the only one importing Flink.
FLOORS = ("bethos", "connectors", "bethos_flink", "jobs", "devstack")
FLINK_FLOOR = "bethos_flink"

# The product core's ground floor: what connectors may import of it.
GROUND_FLOOR = (
    "bethos.config",
    "bethos.exceptions",
    "bethos.fetch_result",
    "bethos.record",
    "bethos.resource_map",
    "bethos.retry",
    "bethos.sections",
    "bethos.strategy_registry",
)


def test_each_floor_imports_only_the_floors_below_it() -> None:
    found = []
    for level, floor in enumerate(FLOORS):
        above = tuple(FLOORS[level + 1 :])
        found += offenders(floor, above)
        if floor != FLINK_FLOOR:
            found += offenders(floor, ("pyflink",))
    assert found == []


def test_arrows_inside_the_core() -> None:
    # The settings import no strategy: the registry, which imports nothing of bethos, names each
    # strategy's modules by path, and the settings import the one a file names.
    assert offenders("bethos/config", ("bethos.strategies",)) == []
    registry = imports_of(ROOT / "bethos" / "strategy_registry.py")
    assert [name for name in registry if name.split(".")[0] in (*FLOORS, "pyflink")] == []
    # Connectors import only the core's ground floor: never the source, the strategies, the
    # merge rule.
    for path in sorted((ROOT / "connectors").rglob("*.py")):
        for name in imports_of(path):
            if name.startswith("bethos.") and not name.startswith(GROUND_FLOOR):
                raise AssertionError(f"{path.relative_to(ROOT)} imports {name}")


def test_entry_points_are_thin() -> None:
    # The settings and the Flink layer only.
    for path in sorted((ROOT / "jobs").rglob("*.py")):
        for name in imports_of(path):
            top = name.split(".")[0]
            if top in FLOORS and not name.startswith(("bethos.config", FLINK_FLOOR)):
                raise AssertionError(f"{path.relative_to(ROOT)} imports {name}")


def test_event_lines() -> None:
    line = format_event("latest_merger", "flush", flush_duration_ms=12, err="a b")
    assert line == '[latest_merger] event=flush flush_duration_ms=12 err="a b"'


def test_dead_letters_keep_the_original_bytes() -> None:
    doc = orjson.loads(dead_letter(b"\xff\x00", "invalid_json", "bad", {"offset": 3}, 9))
    assert doc["reason"] == "invalid_json"
    assert base64.b64decode(doc["original"]) == b"\xff\x00"
    assert doc["original_encoding"] == "base64"
    assert doc["origin"] == {"offset": 3}


def test_kafka_ddl_quotes_values_and_passes_properties_through() -> None:
    kafka = KafkaSettings(brokers="h:1", properties={"client.id": "it's"})
    ddl = source_table_ddl("t", "top'ic", kafka, "g", from_earliest=True)
    assert "'top''ic'" in ddl
    assert "'properties.client.id' = 'it''s'" in ddl
    assert "'scan.startup.mode' = 'earliest-offset'" in ddl
    assert "PRIMARY KEY (`key`)" in upsert_sink_ddl("o", "t", kafka)


@given(st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), st.text(), max_size=5))
def test_event_lines_parse_back(fields: dict[str, str]) -> None:
    fields.pop("event", None)
    line = "2026-11-26 01:00:00,000 INFO x [] - " + format_event("comp", "poll", **fields)
    event = parse_event(line)
    assert event is not None
    assert (event.component, event.event, event.fields) == ("comp", "poll", fields)
    assert event.prefix.startswith("2026-11-26 01:00:00,000")
