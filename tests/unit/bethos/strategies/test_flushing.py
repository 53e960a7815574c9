from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bethos.strategies.flushing import FlushTracker, expired, flush_due, stagger_offset


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


def test_expiry_needs_a_ttl_and_a_reading() -> None:
    assert expired(1_000, 61_000, 60_000)
    assert not expired(1_000, 60_999, 60_000)
    assert not expired(1_000, 10**12, None)
    assert not expired(None, 10**12, 60_000)


def test_the_tracker_groups_one_interval_of_timers_into_one_flush() -> None:
    tracker = FlushTracker(interval_ms=1_000)
    assert tracker.on_timer(1_000) is None
    tracker.on_emit()
    assert tracker.on_timer(1_000) is None
    summary = tracker.on_timer(2_000)
    assert summary is not None
    assert (summary.vin_count, summary.emitted, summary.message_count) == (2, 1, 1)
    final = tracker.finish()
    assert final is not None and final.vin_count == 1
    assert tracker.finish() is None


def test_batches_are_json_arrays_with_tombstones_as_null_data() -> None:
    import orjson

    from bethos.strategies.flushing import delivery_bucket, encode_batch

    batch = orjson.loads(encode_batch([("A", b'{"vin":"A","data":{}}'), ("B", None)]))
    assert batch == [{"vin": "A", "data": {}}, {"schema": 1, "vin": "B", "data": None}]
    assert orjson.loads(encode_batch([])) == []
    assert delivery_bucket("VIN1") == delivery_bucket("VIN1")
    assert len({delivery_bucket(f"V{i}") for i in range(2_000)}) == 128
