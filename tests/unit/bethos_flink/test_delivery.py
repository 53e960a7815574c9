"""Buffered delivery run in plain Python (harness.py): inline batches and their flush line,
store writes and their retries. No JVM."""

from __future__ import annotations

import logging
import uuid

import orjson
import pytest

from bethos.exceptions import StoreError
from bethos.logevents import parse_event
from bethos.strategies.inline import Inline, batch_key
from bethos.strategies.state_store import StateStore
from bethos_flink.strategies import inline as inline_wiring
from bethos_flink.strategies.inline import BatchFunction
from bethos_flink.strategies.state_store import StoreWriter, store_for
from tests.unit.bethos_flink.harness import Harness
from tests.unit.bethos_flink.test_merge_function import Clock

BUCKET = 5


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, str]]:
    parsed = (parse_event(record.getMessage()) for record in caplog.records)
    return [event.fields for event in parsed if event is not None and event.event == name]


def batcher(monkeypatch: pytest.MonkeyPatch) -> Harness:
    options = Inline.model_validate(
        {
            "flush_interval": "1s",
            "inline": {"sink": "kafka", "topic": "t", "batch_size": 4, "linger": "200ms"},
        }
    )
    run = Harness(BatchFunction(options.build()), now=1_010)
    monkeypatch.setattr(inline_wiring, "time", Clock(run))
    return run


def test_batches_hold_every_vin_and_the_flush_line_counts_them(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    run = batcher(monkeypatch)
    # One flush's emissions through one bucket: 9 records and a tombstone.
    for i in range(10):
        run.element(BUCKET, (f"V{i}", None if i == 7 else f'{{"vin":"V{i}"}}'))
    assert len(run.output) == 2  # two full batches at once; the rest waits for the linger
    run.advance(1_300)
    assert len(run.output) == 3
    assert {row[0] for row in run.output} == {batch_key(BUCKET)}
    batches = [orjson.loads(row[1]) for row in run.output]
    assert [len(batch) for batch in batches] == [4, 4, 2]
    assert [record["vin"] for batch in batches for record in batch] == [f"V{i}" for i in range(10)]
    assert batches[1][3] == {"schema": 1, "vin": "V7", "data": None}
    assert events(caplog, "flush") == []
    # A timer at the end of the flush interval writes the flush's line: 3 messages holding
    # 9 records, before anything of the next flush.
    run.advance(2_001)
    (flush,) = events(caplog, "flush")
    assert (flush["message_count"], flush["emitted"]) == ("3", "9")
    assert "vin_count" not in flush
    run.element(BUCKET, ("V1", '{"vin":"V1"}'))
    run.advance(2_300)
    assert len(events(caplog, "flush")) == 1
    run.close()
    (shutdown,) = events(caplog, "shutdown_flush")
    assert (shutdown["message_count"], shutdown["emitted"]) == ("1", "1")
    assert run.counters["delivered"].count == 11


def store_writer(batch_size: int = 2) -> tuple[Harness, StateStore]:
    options = StateStore.model_validate(
        {
            "state_store": {
                "backend": "memory",
                "key_prefix": uuid.uuid4().hex,
                "batch_size": batch_size,
                "linger": "100ms",
            }
        }
    )
    return Harness(StoreWriter(options.state_store, options.build()), now=0), options


def test_the_store_writer_writes_the_newest_record_per_vin() -> None:
    run, options = store_writer(batch_size=3)
    for vin, value in [("A", '{"v":1}'), ("B", '{"v":1}'), ("A", '{"v":2}')]:
        run.element(BUCKET, (vin, value))
    store = store_for(options.state_store)
    assert (store.get("A"), store.get("B")) == (b'{"v":2}', b'{"v":1}')
    run.element(BUCKET, ("B", None))
    run.advance(100)
    assert store.get("B") is None and store.count() == 1
    assert run.output == []


def test_a_failed_store_write_keeps_the_buffer_and_retries(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    run, options = store_writer(batch_size=2)
    store = store_for(options.state_store)
    write = store.write

    def down(entries: object) -> int:
        raise StoreError("redis at here:1: write failed: down")

    monkeypatch.setattr(store, "write", down)
    run.element(BUCKET, ("A", '{"v":1}'))
    run.element(BUCKET, ("B", '{"v":1}'))
    (error,) = events(caplog, "flush_error")
    assert (error["vin_count"], error["attempt"]) == ("2", "1")
    assert run.state[("buffered", BUCKET)] == 2
    monkeypatch.setattr(store, "write", write)
    run.element(BUCKET, ("A", '{"v":2}'))  # buffered behind the failure, not delivered
    assert store.count() == 0
    run.advance(20_000)
    assert (store.get("A"), store.get("B")) == (b'{"v":2}', b'{"v":1}')
    assert ("buffer", BUCKET) not in run.state and run.counters["flush_errors"].count == 1
