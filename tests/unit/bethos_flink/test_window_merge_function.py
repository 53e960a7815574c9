"""`window_stream`'s keyed function in plain Python (harness.py): the latest topic's records at
a stateless start."""

from __future__ import annotations

import pytest

from bethos.record import AggregatedRecord, Signal, decode_latest_signals, encode_aggregated
from bethos.strategies.window_stream import WindowLogic
from bethos_flink.rows import ORIGIN_AGGREGATED, ORIGIN_LATEST
from bethos_flink.strategies import window_stream
from tests.unit.bethos_flink import harness
from tests.unit.bethos_flink.harness import Harness


def row(origin: str, offset: int, ts: int, **values: float) -> tuple[object, ...]:
    record = AggregatedRecord("V1", {k: Signal(v, ts) for k, v in values.items()}, "p", 1, 0)
    return ("V1", encode_aggregated(record), origin, 0, offset, origin)


def test_a_latest_record_read_after_a_window_emitted_is_emitted_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(harness.TimerService, "current_watermark", lambda self: 0)
    monkeypatch.setattr(
        harness.TimerService, "register_event_time_timer", lambda self, at: None, raising=False
    )
    run = Harness(window_stream.WindowMergeFunction(WindowLogic(size_ms=10_000)), now=100)
    run.element("V1", row(ORIGIN_AGGREGATED, 1, 5, speed=2.0))
    run.key = "V1"
    run.output.extend(run.function.on_timer(9_999, harness.Context(run)))
    assert [decode_latest_signals(r[1])[1] for r in run.output] == [{"speed": Signal(2.0, 5)}]
    run.output.clear()
    run.element("V1", row(ORIGIN_LATEST, 7, 3, speed=1.0, rpm=700.0))
    assert [decode_latest_signals(r[1])[1] for r in run.output] == [
        {"speed": Signal(2.0, 5), "rpm": Signal(700.0, 3)}
    ]
