from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bethos.merge_rule import Entry, VinState
from bethos.record import AggregatedRecord, Signal, decode_latest_signals
from bethos.strategies import flushing
from bethos.strategies.flushing import (
    CENSUS_EVERY,
    EXPIRED,
    NO_TURN,
    Census,
    DeliveryPlan,
    Flushed,
    FlushLogic,
    FlushTracker,
    FlushTurn,
    TimerRuns,
    expired,
    flush_due,
    stagger_offset,
)


class FakeClock:
    """Wall and monotonic time that move only when a test moves them."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


@given(st.integers(0, 10**13), st.integers(1, 10**7), st.data())
def test_flush_due_is_the_next_slot_after_now(now: int, interval: int, data: st.DataObject) -> None:
    offset = data.draw(st.integers(0, interval - 1))
    due = flush_due(now, interval, offset)
    assert now < due <= now + interval
    assert (due - offset) % interval == 0


def test_aligned_flushes_land_on_multiples_of_the_interval() -> None:
    assert flush_due(119_999, 120_000) == 120_000
    assert flush_due(120_000, 120_000) == 240_000


def test_stagger_offsets_are_stable_and_spread() -> None:
    interval = 120_000
    offsets = [stagger_offset(f"VIN{i:06d}", interval) for i in range(10_000)]
    assert offsets == [stagger_offset(f"VIN{i:06d}", interval) for i in range(10_000)]
    assert all(0 <= o < interval for o in offsets)
    # Spread: every tenth of the interval gets between 5% and 15% of the VINs.
    tenths = [0] * 10
    for offset in offsets:
        tenths[offset * 10 // interval] += 1
    assert all(500 <= n <= 1500 for n in tenths)


@pytest.mark.parametrize("interval", [120_000, 60_000, 7_000, 1_000, 600, 250])
def test_staggered_flushes_share_a_few_hundred_instants(interval: int) -> None:
    # Flink wakes the task once per distinct timer instant: VINs share STAGGER_SLOTS of them.
    offsets = {stagger_offset(f"VIN{i:06d}", interval) for i in range(20_000)}
    step = max(1, interval // flushing.STAGGER_SLOTS)
    assert len(offsets) == -(-interval // step) <= 2 * flushing.STAGGER_SLOTS
    assert all(o % step == 0 and 0 <= o < interval for o in offsets)


def test_expiry_needs_a_ttl_and_a_reading() -> None:
    assert expired(1_000, 61_000, 60_000)
    assert not expired(1_000, 60_999, 60_000)
    assert not expired(1_000, 10**12, None)
    assert not expired(None, 10**12, 60_000)


def test_the_tracker_groups_one_interval_of_timers_into_one_flush() -> None:
    tracker = FlushTracker(interval_ms=1_000)
    # The first timer of a flush asks for the timer that closes it.
    assert tracker.on_timer(1_000) == FlushTurn(None, 1_001)
    tracker.on_emit()
    assert tracker.on_timer(1_000) is NO_TURN
    # Its closing timer was lost: the next flush's first timer returns it.
    finished, close_at = tracker.on_timer(2_000)
    assert finished is not None and close_at == 2_001
    assert (finished.vin_count, finished.emitted, finished.message_count) == (2, 1, 1)
    final = tracker.finish()
    assert final is not None and final.vin_count == 1
    assert tracker.finish() is None


@pytest.mark.parametrize("timers", [[1_000, 1_000], [1_001, 1_500, 1_999, 2_000]])
def test_a_closing_timer_ends_its_flush_and_only_its_own(timers: list[int]) -> None:
    tracker = FlushTracker(interval_ms=1_000)
    turns = [tracker.on_timer(timestamp) for timestamp in timers]
    close_at = turns[0].close_at
    assert close_at == tracker.close_at(timers[0]) == timers[-1] + 1
    assert all(turn is NO_TURN for turn in turns[1:])
    # A timer left behind by a forgotten VIN, or the close of another flush, is no close.
    assert tracker.on_closing_timer(timers[-1]) is None
    assert tracker.on_closing_timer(close_at - 1_000) is None
    summary = tracker.on_closing_timer(close_at)
    assert summary is not None and summary.vin_count == len(timers)
    # A second closing timer of the same flush (another run's) writes no second line.
    assert tracker.on_closing_timer(close_at) is None


def test_the_tracker_knows_when_the_newest_flush_completed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock(1_700_000_000.0)
    monkeypatch.setattr(flushing, "time", clock)
    tracker = FlushTracker(interval_ms=1_000)
    assert tracker.last_at_ms == 0
    tracker.on_timer(1_000)
    clock.now += 0.25
    tracker.on_timer(1_000)  # the flush's last timer, at 1_700_000_000_250 ms
    clock.now += 0.5
    assert tracker.on_closing_timer(1_001) is not None
    assert tracker.last_at_ms == 1_700_000_000_250
    assert tracker.last is not None and tracker.last.duration_ms == 250


def test_batches_are_json_arrays_with_tombstones_as_null_data() -> None:
    from bethos.strategies.flushing import delivery_bucket, encode_batch

    batch = orjson.loads(encode_batch([("A", b'{"vin":"A","data":{}}'), ("B", None)]))
    assert batch == [{"vin": "A", "data": {}}, {"schema": 1, "vin": "B", "data": None}]
    assert orjson.loads(encode_batch([])) == []
    assert delivery_bucket("VIN1") == delivery_bucket("VIN1")
    assert len({delivery_bucket(f"V{i}") for i in range(2_000)}) == 128


def record(vin: str = "V1", ts: int = 5, **values: float) -> AggregatedRecord:
    signals = {name: Signal(value, ts) for name, value in values.items()}
    return AggregatedRecord(vin, signals, "p", 1, 0)


def merge(logic: FlushLogic, entry: Entry, rec: AggregatedRecord, now: int) -> int | None:
    """What MergeFunction does with a record."""
    return logic.on_record(entry, rec.vin, now, entry.state.merge_record(rec))


def test_a_record_schedules_one_aligned_flush_timer() -> None:
    logic = FlushLogic(interval_ms=1_000, stagger=False)
    entry = Entry(VinState())
    assert merge(logic, entry, record(speed=1.0), now=1_250) == 2_000
    # One pending timer per VIN: the next records register none.
    assert merge(logic, entry, record(speed=2.0, ts=6), now=1_900) is None
    assert entry.next_flush == 2_000 and entry.dirty
    # Without a TTL the last reading's time is not kept (a state write saved per record).
    assert entry.last_seen is None


def test_a_staggered_flush_lands_on_the_vins_own_offset() -> None:
    logic = FlushLogic(interval_ms=120_000, stagger=True)
    offset = stagger_offset("V1", 120_000)
    due = logic.on_record(Entry(VinState()), "V1", now_ms=10**12, changed=True)
    assert due is not None and (due - offset) % 120_000 == 0
    assert 10**12 < due <= 10**12 + 120_000


def test_a_timer_emits_a_changed_vin_once_then_nothing_until_it_changes() -> None:
    logic = FlushLogic(interval_ms=1_000, stagger=False)
    entry = Entry(VinState())
    merge(logic, entry, record(speed=1.0), now=500)
    flushed = logic.on_timer(entry, "V1", timestamp_ms=1_000, now_ms=1_003)
    assert flushed.value is not None and not flushed.expired
    vin, signals = decode_latest_signals(flushed.value)
    assert (vin, signals) == ("V1", {"speed": Signal(1.0, 5)})
    assert orjson.loads(flushed.value)["produced_at"] == 1_003
    # Nothing to emit: no flush timer, only the VIN's census, at its own offset in the next
    # census period (staggered even when the flushes are not).
    census = 1_000 * CENSUS_EVERY
    assert not entry.dirty and entry.next_flush == flush_due(
        1_000, census, stagger_offset("V1", census)
    )
    assert 1_000 < entry.next_flush <= 1_000 + census
    # A duplicate changes nothing: the census timer stays the one pending.
    assert merge(logic, entry, record(speed=1.0), now=1_500) is None
    census_at = entry.next_flush
    assert logic.on_timer(entry, "V1", census_at, census_at) == Flushed(None)
    assert entry.next_flush == census_at + census
    # A change asks for the VIN's next flush slot, ahead of its census.
    due = merge(logic, entry, record(speed=2.0, ts=6), now=census_at + 10)
    assert due == (census_at // 1_000 + 1) * 1_000 and entry.next_flush == due
    assert logic.on_timer(entry, "V1", due, due).value is not None


def test_every_vin_is_counted_once_per_census_period() -> None:
    tracker = Census(period_ms=5_000)
    entries = [Entry(VinState()) for _ in range(3)]
    # Period 0 (timers in (0, 5_000]): the VINs' timers, one VIN twice.
    for entry, timestamp in zip(entries, (1_000, 2_000, 5_000), strict=True):
        assert tracker.on_timer(entry, "V", timestamp, timestamp) is None
    assert tracker.on_timer(entries[0], "V", 4_000, 4_000) is None
    # The first timer of the next period ends the count of the last one.
    counted = tracker.on_timer(entries[1], "V", 5_500, 5_500)
    assert counted is not None and counted.held == 3
    assert tracker.on_timer(entries[1], "V", 6_000, 6_000) is None
    assert tracker.on_timer(entries[2], "V", 9_000, 9_000) is None
    counted = tracker.on_timer(entries[0], "V", 10_001, 10_001)
    assert counted is not None and counted.held == 2
    # A timer of an earlier period (a late one) ends nothing.
    assert tracker.on_timer(entries[0], "V", 9_999, 9_999) is None


def test_the_census_counts_the_vins_silent_past_each_threshold() -> None:
    tracker = Census(period_ms=1_000_000, thresholds_ms=(600_000, 3_600_000), keep=2)
    now = 10_000_000
    # Newest readings 1 min, 20 min, 2 h and 3 h before the census; one VIN without signals.
    for vin, age in (("A", 60_000), ("B", 1_200_000), ("C", 7_200_000), ("D", 10_800_000)):
        entry = Entry(VinState({"x": (1.0, now - age - 5, 0), "y": (2.0, now - age, 0)}))
        assert tracker.on_timer(entry, vin, now - 1, now) is None
    tracker.on_timer(Entry(VinState()), "E", now - 1, now)
    counted = tracker.on_timer(Entry(VinState()), "F", now + 1_000_000, now)
    assert counted is not None
    assert (counted.held, counted.silent) == (5, (3, 2))
    assert counted.most_silent == (("D", 10_800_000), ("C", 7_200_000))
    # The next period starts from zero.
    later = tracker.on_timer(Entry(VinState()), "G", now + 2_000_000, now)
    assert later is not None and (later.held, later.silent, later.most_silent) == (1, (0, 0), ())


def test_emit_all_emits_every_vin_on_every_timer() -> None:
    logic = FlushLogic(interval_ms=1_000, emit_all=True)
    entry = Entry(VinState())
    merge(logic, entry, record(speed=1.0), now=500)
    assert logic.on_timer(entry, "V1", 1_000, 1_000).value is not None
    assert logic.on_timer(entry, "V1", 2_000, 2_000).value is not None


def test_a_vin_without_readings_for_its_ttl_expires_once() -> None:
    logic = FlushLogic(interval_ms=1_000, stagger=False, ttl_ms=2_500)
    entry = Entry(VinState())
    merge(logic, entry, record(speed=1.0), now=500)
    assert entry.last_seen == 500
    assert logic.on_timer(entry, "V1", 1_000, 1_000).value is not None
    # Nothing to emit: the next timer is its census or its expiry, whichever comes first.
    census = flush_due(1_000, 5_000, stagger_offset("V1", 5_000))
    assert entry.next_flush == min(census, 3_000)
    if census < 3_000:
        assert logic.on_timer(entry, "V1", census, census) == Flushed(None)
    assert entry.next_flush == 3_000
    # 3_000 - 500 >= 2_500: a tombstone, no next timer (the caller forgets the VIN).
    assert logic.on_timer(entry, "V1", 3_000, 3_000) == EXPIRED
    assert entry.next_flush == 3_000
    # A new reading keeps a VIN alive.
    fresh = Entry(VinState())
    merge(logic, fresh, record(speed=1.0), now=500)
    merge(logic, fresh, record(speed=2.0, ts=9), now=2_900)
    assert not logic.on_timer(fresh, "V1", 3_000, 3_000).expired


def test_the_flush_logic_pickles() -> None:
    import pickle

    logic = FlushLogic(1_000, emit_all=True, stagger=True, ttl_ms=5)
    assert pickle.loads(pickle.dumps(logic)) == logic


def test_tombstones_are_messages_but_not_emitted_records() -> None:
    tracker = FlushTracker(interval_ms=1_000)
    for _ in range(3):
        tracker.on_timer(1_000)
    tracker.on_emit()
    tracker.on_emit()
    tracker.on_tombstone()
    summary = tracker.finish()
    assert summary is not None
    assert summary.fields() == {
        "flush_duration_ms": summary.duration_ms,
        "vin_count": 3,
        "message_count": 3,
        "emitted": 2,
        "longest_timer_run_ms": summary.longest_run_ms,
    }


def test_a_merge_whose_messages_are_formed_downstream_leaves_out_message_count() -> None:
    tracker = FlushTracker(interval_ms=1_000, counts_messages=False)
    tracker.on_timer(1_000)
    tracker.on_emit()
    summary = tracker.finish()
    assert summary is not None and summary.message_count is None
    assert list(summary.fields()) == [
        "flush_duration_ms",
        "vin_count",
        "emitted",
        "longest_timer_run_ms",
    ]
    assert tracker.empty().fields() == {
        "flush_duration_ms": 0,
        "vin_count": 0,
        "emitted": 0,
        "longest_timer_run_ms": 0,
    }


def test_a_batcher_counts_its_batches_per_flush_interval() -> None:
    tracker = FlushTracker(interval_ms=1_000, counts_vins=False)
    # A flush at 1_000: its VINs arrive in a burst and leave in batches (linger 200 ms).
    assert tracker.on_delivery(1_010, emitted=8, messages=2) == FlushTurn(None, 2_001)
    assert tracker.on_delivery(1_200, emitted=2, messages=1) is NO_TURN
    # Without its closing timer, the next interval's first delivery ends the flush.
    summary, _ = tracker.on_delivery(2_050, emitted=4, messages=1)
    assert summary is not None
    assert summary.fields() == {
        "flush_duration_ms": summary.duration_ms,
        "message_count": 3,
        "emitted": 10,
    }
    final = tracker.finish()
    assert final is not None and (final.message_count, final.emitted) == (1, 4)
    assert tracker.finish() is None


def test_delivery_keeps_the_newest_value_per_vin_in_order_of_arrival() -> None:
    plan = DeliveryPlan(batch_size=2, linger_ms=200)
    buffered = [("A", b"1"), ("B", b"1"), ("A", b"2"), ("C", None), ("B", None)]
    pending = plan.pending(buffered)
    assert pending == [("A", b"2"), ("C", None), ("B", None)]
    assert plan.batches(pending) == [[("A", b"2"), ("C", None)], [("B", None)]]
    assert plan.batches([]) == []
    assert not plan.full(1) and plan.full(2)


@given(st.integers(1, 30), st.integers(1, 10_000))
def test_delivery_retries_back_off_within_bounds(failures: int, seed: int) -> None:
    import random

    plan = DeliveryPlan(batch_size=10, linger_ms=200, max_retry_ms=10_000)
    delay = plan.retry_in(failures, random.Random(seed))
    assert 100 <= delay <= 10_000


def test_timer_callbacks_of_one_timestamp_are_one_go_until_a_record_is_read() -> None:
    runs = TimerRuns()
    for i in range(300):  # an aligned flush: 300 timers of one timestamp, 0.5 ms each
        runs.on_timer(1_000, 10.0 + i * 0.0005)
    runs.on_timer(999, 10.2)  # an earlier timer still due: the same go
    assert runs.take_ms() == 200
    for i in range(300):  # staggered: a timestamp each, so a go each
        runs.on_timer(2_000 + i, 20.0 + i * 0.0005)
    assert runs.take_ms() == 0
    runs.on_timer(3_000, 30.0)
    runs.on_input()  # a record read between two callbacks of one timestamp: two goes
    runs.on_timer(3_000, 30.1)
    runs.on_timer(3_000, 30.15)
    assert runs.take_ms() == 50
    assert runs.take_ms() == 0


def test_a_flush_reports_its_longest_run_of_timer_callbacks() -> None:
    tracker = FlushTracker(interval_ms=1_000)
    tracker.on_timer(1_000)
    tracker.on_timer(1_000)
    tracker.runs.longest_s = 0.25  # as if the callbacks had taken 250 ms in one go
    summary = tracker.finish()
    assert summary is not None and summary.fields()["longest_timer_run_ms"] == 250
    tracker.on_timer(2_000)
    later = tracker.finish()
    assert later is not None and later.longest_run_ms < 250
