"""The domain imports no Flink; the event log format; dead letters; the Kafka DDL."""

from __future__ import annotations

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


def test_domain_and_connectors_import_no_flink() -> None:
    offenders = []
    for folder in ("bethos", "connectors"):
        for path in (ROOT / folder).rglob("*.py"):
            if "flink" in path.relative_to(ROOT).parts:
                continue
            text = path.read_text()
            if "import pyflink" in text or "from pyflink" in text:
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


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
    kafka = KafkaSettings(brokers="h:1", properties={"security.protocol": "SASL_SSL"})
    ddl = source_table_ddl("t", "top'ic", kafka, "g", from_earliest=True)
    assert "'top''ic'" in ddl
    assert "'properties.security.protocol' = 'SASL_SSL'" in ddl
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
