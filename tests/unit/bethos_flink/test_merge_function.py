"""The Flink adapters around the strategies' logic, run in plain Python (tests/unit/bethos/
flink/harness.py): what they emit, keep in state and log. No JVM."""

from __future__ import annotations

import gc
import logging
from types import SimpleNamespace

import orjson
import pytest
from pyflink.common import RowKind

from bethos.logevents import parse_event
from bethos.merge_rule import Entry, VinState
from bethos.record import AggregatedRecord, Signal, decode_latest_signals, encode_aggregated
from bethos.strategies import flushing
from bethos.strategies.flushing import FlushLogic
from bethos_flink import merge_function
from bethos_flink.merge_function import DEAD_LETTERS, MergeFunction
from bethos_flink.rows import ORIGIN_AGGREGATED, ORIGIN_LATEST
from tests.unit.bethos_flink.harness import Harness


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
    monkeypatch.setattr(merge_function, "time", Clock(harness))
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
    # One Entry per VIN under `vin_entry`, stored as the bytes of Entry.saved().
    saved = run.state[("vin_entry", "A")]
    assert isinstance(saved, bytes)
    # Nothing left to emit: A's next timer is its expiry (100 + 2_500), sooner than its census;
    # it was counted in census period 0.
    assert Entry.load(saved) == Entry(
        VinState({"speed": (1.0, 10, 1)}, "p", 1), False, 2_600, 100, 0, merged_input=True
    )

    run.output.clear()
    run.advance(1_900)
    run.element(*message("A", 20, speed=2.0))
    # At 2_000: A changed and flushes; at 2_600 B and C have had no reading for the TTL.
    run.advance(3_000)
    tombstones = [row for row in run.output if row[1] is None]
    assert sorted(row[0] for row in tombstones) == ["B", "C"]
    assert all(row.get_row_kind() is RowKind.DELETE for row in tombstones)
    assert ("vin_entry", "B") not in run.state
    flushes = events(caplog, "flush")
    # The flush at 1_000: three records; at 2_000: A's record (only a VIN with something to
    # emit has a flush timer); (the one of (2_000, 3_000] is under way).
    assert [(f["vin_count"], f["message_count"], f["emitted"]) for f in flushes] == [
        ("3", "3", "3"),
        ("1", "1", "1"),
    ]
    run.close()
    # The flush of (2_000, 3_000]: B and C two tombstones: two messages, no record. A's timer
    # at 2_600 was overtaken by its flush at 2_000 and did nothing.
    (shutdown,) = events(caplog, "shutdown_flush")
    assert (shutdown["vin_count"], shutdown["message_count"], shutdown["emitted"]) == (
        "2",
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
    # An older record of the VIN (the topic is not compacted yet) changes nothing to emit.
    older = AggregatedRecord("A", {"rpm": Signal(700.0, 5)}, "p", 1, 0)
    run.element("A", ("A", encode_aggregated(older), "latest", 0, 9, ORIGIN_LATEST))
    run.advance(2_000)
    assert run.output == []
    # A tombstone in the latest topic forgets a VIN that nothing newer touched.
    run.element("A", ("A", None, "latest", 0, 11, ORIGIN_LATEST))
    assert ("vin_entry", "A") not in run.state


def latest(vin: str, ts: int, offset: int, **values: float) -> tuple[str, tuple[object, ...]]:
    """`message`'s record, read from the latest topic at `offset`."""
    _, row = message(vin, ts, **values)
    return vin, (*row[:2], "latest", 0, offset, ORIGIN_LATEST)


def test_a_latest_record_read_after_the_input_flushed_its_vin_is_emitted_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both topics are read at once: the input's record of A may flush before the latest
    topic's is read, and the flush replaced the topic's record with one without `rpm`."""
    run = merger(monkeypatch, FlushLogic(1_000))
    run.element(*message("A", 20, speed=2.0))
    run.advance(1_000)
    assert [decode_latest_signals(row[1])[1] for row in run.output] == [{"speed": Signal(2.0, 20)}]
    run.output.clear()
    run.element(*latest("A", 10, 3, speed=1.0, rpm=700.0))
    run.advance(2_000)
    assert [decode_latest_signals(row[1])[1] for row in run.output] == [
        {"speed": Signal(2.0, 20), "rpm": Signal(700.0, 10)}
    ]
    # What adds nothing is not emitted again.
    run.output.clear()
    run.element(*latest("A", 5, 2, speed=0.5))
    run.advance(3_000)
    assert run.output == []


def test_a_latest_tombstone_read_after_the_input_reached_its_vin_forgets_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = merger(monkeypatch, FlushLogic(1_000))
    run.element(*message("A", 20, speed=2.0))
    run.advance(1_000)
    run.element("A", ("A", None, "latest", 0, 11, ORIGIN_LATEST))
    assert Entry.load(run.state[("vin_entry", "A")]).state.signals == {"speed": (2.0, 20, 1)}


def test_an_unreadable_record_of_the_latest_topic_is_dead_lettered_counted_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    run = merger(monkeypatch, FlushLogic(1_000))
    with caplog.at_level(logging.ERROR):
        run.element("B", ("B", b"{not json", "latest", 1, 5, ORIGIN_LATEST))
    ((tag, row),) = run.output
    assert tag is DEAD_LETTERS and row[0] == "B"
    letter = orjson.loads(row[1])
    assert letter["origin"] == {"topic": "latest", "partition": 1, "offset": 5}
    assert run.counters["dead_lettered"].count == 1
    assert "event=error" in caplog.text and "topic=latest" in caplog.text
    assert run.state == {} and run.timers == []


class Timeline(logging.Handler):
    """What a merge did, in order: each fired timer (("vin", ts) for a VIN's own flush timer,
    ("close", ts) for any other) and each `event=flush` line (("flush", fields))."""

    def __init__(self, run: Harness) -> None:
        super().__init__()
        self.steps: list[tuple[str, object]] = []
        on_timer = run.function.on_timer

        def spy(timestamp: int, ctx: object) -> object:
            entry = Entry.load(run.state.get(("vin_entry", run.key)))
            self.steps.append(("vin" if entry.next_flush == timestamp else "close", timestamp))
            return on_timer(timestamp, ctx)

        run.function.on_timer = spy
        merge_function.log.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        event = parse_event(record.getMessage())
        if event is not None and event.event == "flush":
            self.steps.append(("flush", event.fields))

    def flushes(self, interval: int) -> list[tuple[int, dict[str, str]]]:
        """(flush, its line) for every line, each checked to follow the last timer of its flush
        and to precede every timer of the next."""
        lines: list[tuple[int, dict[str, str]]] = []
        timers: list[int] = []
        for kind, value in self.steps:
            if kind == "vin":
                assert isinstance(value, int)
                timers.append(value)
            elif kind == "flush":
                assert isinstance(value, dict)
                buckets = {(timestamp - 1) // interval for timestamp in timers}
                assert len(buckets) == 1, f"one line for the timers {timers}"
                assert int(value["vin_count"]) == len(timers)
                lines.append((buckets.pop(), value))
                timers = []
        return lines


def clocked_merger(monkeypatch: pytest.MonkeyPatch, flush: FlushLogic) -> Harness:
    run = merger(monkeypatch, flush)
    clock = Clock(run)
    monkeypatch.setattr(flushing, "time", SimpleNamespace(time=clock.time, monotonic=clock.time))
    return run


def test_a_flush_line_is_written_right_after_its_last_timer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    run = clocked_merger(monkeypatch, FlushLogic(1_000))
    timeline = Timeline(run)
    for vin in ("A", "B", "C"):
        run.element(*message(vin, 10, speed=1.0))
    run.advance(1_000)
    assert events(caplog, "flush") == []
    run.advance(1_001)  # 1 ms after the aligned flush at 1_000, not at the next flush
    assert [
        (f["vin_count"], f["message_count"], f["emitted"]) for f in events(caplog, "flush")
    ] == [("3", "3", "3")]
    run.element(*message("B", 20, speed=2.0))
    run.advance(3_500)
    lines = timeline.flushes(1_000)
    # B changed at 1_001: its flush at 2_000. No VIN has anything to emit after it, and no
    # census timer falls before 3_500 (A, B, C: 4_475, 3_513, 5_863), so no third flush.
    assert [(bucket, line["emitted"]) for bucket, line in lines] == [(0, "3"), (1, "1")]
    # The closing timers share no time with a VIN's timer, so each flush has its line.
    assert [value for kind, value in timeline.steps if kind == "close"] == [1_001, 2_001]
    assert all(line["flush_duration_ms"] == "0" for _, line in lines)


def test_staggered_flushes_are_written_at_the_end_of_their_interval(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    interval = 1_000
    run = clocked_merger(monkeypatch, FlushLogic(interval, stagger=True))
    timeline = Timeline(run)
    vins = [f"VIN{i:03d}" for i in range(40)]
    for vin in vins:
        run.element(*message(vin, 10, speed=1.0))
    run.advance(11_001)
    lines = timeline.flushes(interval)
    # The first interval held the VINs whose offset lies after the records' arrival (100), the
    # second the others; later ones only census timers (one per VIN per 5 intervals).
    assert [bucket for bucket, _ in lines][:2] == [0, 1]
    assert sum(int(line["emitted"]) for _, line in lines) == len(vins)
    assert sum(int(line["emitted"]) for _, line in lines[:2]) == len(vins)
    # Then each VIN's census timer, once per census period: one or two by 11_001.
    timers = sum(int(line["vin_count"]) for _, line in lines)
    assert 2 * len(vins) <= timers <= 3 * len(vins)
    closes = [value for kind, value in timeline.steps if kind == "close"]
    assert {bucket * interval + interval + 1 for bucket, _ in lines} <= set(closes)
    # Every VIN was counted in the census period (5_000, 10_000].
    assert run.context.metrics.counters["vins_held"].count == len(vins)


def test_last_flush_at_is_when_the_newest_flush_completed(monkeypatch: pytest.MonkeyPatch) -> None:
    run = clocked_merger(monkeypatch, FlushLogic(1_000))

    def last_flush_at() -> int:
        return run.context.metrics.counters["last_flush_at_ms"].count

    run.element(*message("A", 10, speed=1.0))
    assert last_flush_at() == 0
    run.advance(1_000)
    assert last_flush_at() == 0  # under way until its closing timer
    run.advance(1_500)
    assert last_flush_at() == 1_000
    run.element(*message("A", 20, speed=2.0))
    run.advance(2_001)
    assert last_flush_at() == 2_000


def test_a_torn_down_merge_writes_the_shutdown_line_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The merges of earlier tests write their own line when collected: before, not during.
    gc.collect()
    caplog.set_level(logging.INFO)
    run = merger(monkeypatch, FlushLogic(1_000))
    run.element(*message("A", 10, speed=1.0))
    run.advance(1_500)
    # Torn down between two flushes (a stop with a savepoint): a shutdown line of zeros.
    # Clearing the thread-local data is what tearing down the operator's thread state does.
    run.function.shutdown.local.__dict__.clear()
    run.close()  # where Flink calls close() too (`--drain`), no second line
    (shutdown,) = events(caplog, "shutdown_flush")
    assert shutdown == {
        "flush_duration_ms": "0",
        "vin_count": "0",
        "message_count": "0",
        "emitted": "0",
        "longest_timer_run_ms": "0",
    }


def test_a_census_counts_held_and_silent_vins_and_names_the_most_silent(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # Census every 5 s; silent after 3 s or 8 s without a newer reading (event time).
    run = merger(monkeypatch, FlushLogic(1_000, silence_thresholds_ms=(3_000, 8_000)))
    run.element(*message("A", 50, speed=1.0))  # its reading from 50 ms
    run.element(*message("B", 90, speed=1.0))
    run.advance(4_000)
    run.element(*message("B", 4_000, speed=2.0))  # B reports again, A does not
    # Census timers (offsets in 5 s): A at 4_475 and 9_475, B at 8_513 after its flush at
    # 5_000; the period (5_000, 10_000] is counted when the next one's first timer fires.
    run.advance(15_000)
    counts = events(caplog, "census")
    assert counts, "a census line per census period"
    last = counts[-1]
    assert (last["vins_held"], last["silent_3s"], last["silent_8s"]) == ("2", "2", "1")
    assert last["most_silent"].split(",")[0].startswith("A:")
    metrics = run.context.metrics.counters
    assert metrics["vins_held"].count == 2
    assert metrics["silent_for.3s.vins_silent"].count == 2
    assert metrics["silent_for.8s.vins_silent"].count == 1
