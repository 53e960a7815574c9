"""The Flink adapters around the strategies' logic, run in plain Python (tests/unit/bethos/
flink/harness.py): what they emit, keep in state and log. No JVM."""

from __future__ import annotations

import logging

import orjson
import pytest
from pyflink.common import RowKind

from bethos.flink import merge
from bethos.flink.merge import DEAD_LETTERS, MergeFunction
from bethos.flink.rows import ORIGIN_AGGREGATED, ORIGIN_LATEST
from bethos.logevents import parse_event
from bethos.merge import Entry, VinState
from bethos.record import AggregatedRecord, Signal, decode_latest_signals, encode_aggregated
from bethos.strategies.flushing import FlushLogic
from tests.unit.bethos.flink.harness import Harness


class Clock:
    def __init__(self, harness: Harness) -> None:
        self.harness = harness

    def time(self) -> float:
        return self.harness.now / 1000


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, str]]:
    found = []
    for record in caplog.records:
        event = parse_event(record.getMessage())
        if event is not None and event.event == name:
            found.append(event.fields)
    return found


def merger(monkeypatch: pytest.MonkeyPatch, flush: FlushLogic, **options: bool) -> Harness:
    harness = Harness(MergeFunction(flush, **options), now=100)
    monkeypatch.setattr(merge, "time", Clock(harness))
    return harness


def message(vin: str, ts: int, **values: float) -> tuple[str, tuple[object, ...]]:
    record = AggregatedRecord(vin, {k: Signal(v, ts) for k, v in values.items()}, "p", 1, 0)
    return vin, (vin, encode_aggregated(record), "aggregated", 0, ts, ORIGIN_AGGREGATED)


def test_a_flush_emits_changed_vins_and_logs_what_it_sent(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    run = merger(monkeypatch, FlushLogic(1_000, ttl_ms=2_500))
    for vin in ("A", "B", "C"):
        run.element(*message(vin, 10, speed=1.0))
    run.advance(1_000)
    assert sorted(row[0] for row in run.output) == ["A", "B", "C"]
    assert decode_latest_signals(run.output[0][1])[1] == {"speed": Signal(1.0, 10)}
    # One Entry per VIN under `vin_entry`, stored as the plain tuple of Entry.saved().
    saved = run.state[("vin_entry", "A")]
    assert isinstance(saved, tuple) and len(saved) == 6
    assert Entry.load(saved) == Entry(VinState({"speed": (1.0, 10, 1)}, "p", 1), False, 2_000, 100)

    run.output.clear()
    run.advance(1_900)
    run.element(*message("A", 20, speed=2.0))
    # At 2_000: A changed, B and C did not; at 3_000 B and C have had no reading for the TTL.
    run.advance(3_000)
    tombstones = [row for row in run.output if row[1] is None]
    assert sorted(row[0] for row in tombstones) == ["B", "C"]
    assert all(row.get_row_kind() is RowKind.DELETE for row in tombstones)
    assert ("vin_entry", "B") not in run.state
    flushes = events(caplog, "flush")
    # The flush at 1_000: three records; at 2_000: one record; (3_000 is under way).
    assert [(f["vin_count"], f["message_count"], f["emitted"]) for f in flushes] == [
        ("3", "3", "3"),
        ("3", "1", "1"),
    ]
    run.close()
    # The flush at 3_000: A's timer emitted nothing new, B and C two tombstones: two messages,
    # no record.
    (shutdown,) = events(caplog, "shutdown_flush")
    assert (shutdown["vin_count"], shutdown["message_count"], shutdown["emitted"]) == (
        "3",
        "2",
        "0",
    )
    assert run.counters["expired"].count == 2


def test_with_batches_formed_downstream_the_merge_leaves_message_count_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    run = merger(
        monkeypatch, FlushLogic(1_000), tombstones_as_delete=False, messages_downstream=True
    )
    run.element(*message("A", 10, speed=1.0))
    run.advance(2_000)
    (flush,) = events(caplog, "flush")
    assert "message_count" not in flush
    assert (flush["vin_count"], flush["emitted"]) == ("1", "1")


def test_a_bad_record_goes_to_the_dead_letters(monkeypatch: pytest.MonkeyPatch) -> None:
    run = merger(monkeypatch, FlushLogic(1_000))
    run.element("V1", ("V1", b"{not json", "aggregated", 3, 77, ORIGIN_AGGREGATED))
    ((tag, row),) = run.output
    assert tag is DEAD_LETTERS and row[0] == "V1"
    letter = orjson.loads(row[1])
    assert letter["origin"] == {"topic": "aggregated", "partition": 3, "offset": 77}
    assert run.timers == [] and run.state == {}


def test_the_latest_topic_loads_state_without_marking_it_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = merger(monkeypatch, FlushLogic(1_000))
    vin, row = message("A", 10, speed=1.0)
    run.element(vin, (*row[:5], ORIGIN_LATEST))
    run.advance(1_000)
    assert run.output == []
    # A tombstone in the latest topic forgets a VIN that nothing newer touched.
    run.element("A", ("A", None, "latest", 0, 11, ORIGIN_LATEST))
    assert ("vin_entry", "A") not in run.state
