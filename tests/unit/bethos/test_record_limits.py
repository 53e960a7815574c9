from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from bethos.merge_rule import VinState
from bethos.record import AggregatedRecord, Signal, SignalValue
from bethos.record_limits import (
    RECORD_TOO_LARGE,
    TOO_MANY_SIGNALS,
    VALUE_TOO_LARGE,
    RecordLimits,
    latest_size,
    merge_bounded,
    size_bound,
)


def record(
    signals: dict[str, SignalValue], ts: int = 1_000, received_at: int = 1
) -> AggregatedRecord:
    return AggregatedRecord(
        "V1", {name: Signal(value, ts) for name, value in signals.items()}, "pod", received_at, 0
    )


def test_within_the_limits_it_merges_like_the_merge_rule() -> None:
    bounded, plain = VinState(), VinState()
    for r in (
        record({"a": 1.0, "b": "x"}),
        record({"a": 2.0}, ts=500),
        record({"c": True}, ts=2_000),
    ):
        assert merge_bounded(bounded, r, RecordLimits()) == (plain.merge_record(r), [])
    assert bounded == plain


@given(
    st.lists(
        st.tuples(
            st.dictionaries(
                st.text("abcde", min_size=1, max_size=2),
                st.one_of(
                    st.booleans(),
                    st.integers(-5, 5),
                    st.floats(-5, 5, allow_nan=False),
                    st.text("xy", max_size=3),
                ),
                max_size=6,
            ),
            st.integers(0, 4),
            st.integers(0, 3),
        ),
        max_size=15,
    )
)
def test_within_the_limits_any_mix_of_records_merges_like_the_merge_rule(
    updates: list[tuple[dict[str, SignalValue], int, int]],
) -> None:
    bounded, plain = VinState(), VinState()
    for signals, ts, received_at in updates:
        r = record(signals, ts=ts, received_at=received_at)
        assert merge_bounded(bounded, r, RecordLimits()) == (plain.merge_record(r), [])
        assert bounded == plain


def test_new_signals_beyond_the_count_are_refused_in_name_order() -> None:
    state = VinState()
    limits = RecordLimits(max_signals=3)
    merge_bounded(state, record({"a": 1.0, "b": 1.0}), limits)
    changed, refused = merge_bounded(
        state, record({"a": 5.0, "z": 1.0, "c": 1.0, "d": 1.0}, ts=2_000), limits
    )
    assert changed
    assert sorted(state.signals) == ["a", "b", "c"]
    assert state.signals["a"][0] == 5.0
    (kept_out,) = refused
    assert kept_out.reason == TOO_MANY_SIGNALS and sorted(kept_out.signals) == ["d", "z"]
    # Known signals still update when the VIN is full.
    changed, refused = merge_bounded(state, record({"b": 7.0, "e": 1.0}, ts=3_000), limits)
    assert changed and state.signals["b"][0] == 7.0 and refused[0].signals.keys() == {"e"}


def test_a_string_longer_than_the_value_limit_is_refused() -> None:
    state = VinState()
    changed, refused = merge_bounded(
        state, record({"a": "é" * 6, "b": 1.0}), RecordLimits(max_value_bytes=10)
    )
    assert changed and list(state.signals) == ["b"]
    (kept_out,) = refused
    assert kept_out.reason == VALUE_TOO_LARGE and list(kept_out.signals) == ["a"]


def test_what_would_make_the_record_too_large_is_taken_back_and_the_rest_kept() -> None:
    limits = RecordLimits(max_record_bytes=2_000)
    state = VinState()
    assert merge_bounded(state, record({f"s{i:03d}": float(i) for i in range(20)}), limits)[1] == []
    before = dict(state.signals)
    grow = {f"new{i:03d}": "x" * 50 for i in range(40)}
    changed, refused = merge_bounded(state, record({**grow, "s000": 99.0}, ts=2_000), limits)
    assert changed, "the update of a known number stays"
    assert state.signals["s000"][0] == 99.0
    assert set(state.signals) == set(before)
    (kept_out,) = refused
    assert kept_out.reason == RECORD_TOO_LARGE and set(kept_out.signals) == set(grow)
    # A longer string for a known signal is taken back too, to its previous value.
    merge_bounded(state, record({"s001": "short"}, ts=3_000), limits)
    changed, refused = merge_bounded(state, record({"s001": "y" * 3_000}, ts=4_000), limits)
    assert not changed and state.signals["s001"][0] == "short"
    assert refused[0].reason == RECORD_TOO_LARGE


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.text("abcdefgh", min_size=1, max_size=3),
            st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=80)),
            max_size=12,
        ),
        max_size=12,
    ),
    st.integers(5, 30),
    st.integers(600, 3_000),
)
def test_the_latest_record_never_breaks_a_limit(
    updates: list[dict[str, SignalValue]], max_signals: int, max_record_bytes: int
) -> None:
    limits = RecordLimits(
        max_signals=max_signals, max_value_bytes=60, max_record_bytes=max_record_bytes
    )
    state = VinState()
    for ts, signals in enumerate(updates, start=1):
        merge_bounded(state, record(signals, ts=ts), limits)
        assert len(state.signals) <= max_signals
        assert latest_size("V1", state) <= max_record_bytes
        assert all(
            len(value.encode()) <= 60
            for value, _, _ in state.signals.values()
            if isinstance(value, str)
        )


@settings(max_examples=300)
@given(
    st.text(min_size=1, max_size=20),
    st.text(max_size=20),
    st.dictionaries(
        st.text(min_size=1, max_size=30),
        st.one_of(
            st.booleans(),
            st.integers(min_value=-(2**63), max_value=2**63 - 1),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(max_size=60),
        ),
        max_size=15,
    ),
)
def test_the_cheap_size_bound_is_never_below_the_encoded_one(
    vin: str, pod: str, signals: dict[str, SignalValue]
) -> None:
    state = VinState()
    state.merge_record(
        AggregatedRecord(vin, {k: Signal(v, 7) for k, v in signals.items()}, pod, 1, 0)
    )
    assert latest_size(vin, state) <= size_bound(vin, state)


def test_the_widest_number_is_as_long_as_any_float_orjson_writes() -> None:
    widest = len(orjson.dumps(-1.7976931348623157e308))
    for value in (-2.2250738585072014e-308, -1.2345678901234567e-300, -(2.0**63), 5e-324):
        assert len(orjson.dumps(value)) <= widest
    assert widest == 24
    # The case that found the bound one byte short per number (orjson's `e+308`).
    state = VinState()
    signals = {"\x1f": Signal(False, 7), "\x1e": Signal(False, 7)}
    state.merge_record(AggregatedRecord("0", signals, "", 1, 0))
    assert latest_size("0", state) <= size_bound("0", state)
