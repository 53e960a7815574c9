from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bethos.exceptions import RecordError
from bethos.record import (
    INT64_MAX,
    MAX_FUTURE_MS,
    MAX_NAME_LENGTH,
    AggregatedRecord,
    Signal,
    _has_control_chars,
    _require_time,
    check_signal_value,
    decode_aggregated,
    decode_latest_signals,
    encode_aggregated,
    encode_latest,
)

GOOD = {
    "schema": 1,
    "vin": "1HGCM82633A004352",
    "data": {
        "id": "1HGCM82633A004352",
        "signals": {
            "speed_kmh": {"value": 42.5, "ts": 1764111600123},
            "door_open": {"value": False, "ts": 1764111599001},
            "gear": {"value": "D", "ts": 1764111599001},
            "odometer": {"value": 12000, "ts": 1764111599001},
        },
    },
    "pod": "ingest-3",
    "received_at": 1764111601000,
    "produced_at": 1764111601050,
}


def with_changes(**changes: object) -> bytes:
    doc = orjson.loads(orjson.dumps(GOOD))
    for path, value in changes.items():
        target = doc
        *parents, last = path.split("__")
        for part in parents:
            target = target[part]
        if value is ...:
            del target[last]
        else:
            target[last] = value
    return orjson.dumps(doc)


def test_the_spec_example_decodes_and_round_trips() -> None:
    record = decode_aggregated(orjson.dumps(GOOD))
    assert record.vin == "1HGCM82633A004352"
    assert record.signals["speed_kmh"] == Signal(42.5, 1764111600123)
    assert record.signals["door_open"].value is False
    assert decode_aggregated(encode_aggregated(record)) == record


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "invalid_json"),
        (b"[1, 2]", "schema"),
        (None, "schema"),
        (with_changes(schema=2), "schema"),
        (with_changes(data__id=""), "empty_id"),
        (with_changes(data__id=...), "empty_id"),
        (with_changes(data__id="OTHER"), "vin_mismatch"),
        (with_changes(data__signals={"x": {"value": [1], "ts": 1}}), "schema"),
        (with_changes(data__signals={"x": {"value": None, "ts": 1}}), "schema"),
        (with_changes(data__signals={"x": {"value": 1, "ts": "yesterday"}}), "schema"),
        (with_changes(data__signals={"x": {"value": 1, "ts": True}}), "schema"),
        (with_changes(data__signals={"x": 5}), "schema"),
        (with_changes(received_at=1.5), "schema"),
        (
            b'{"schema": 1, "vin": "V", "data": {"id": "V", "signals": {"x": {"value": NaN}}}}',
            "invalid_json",
        ),
        (b"x" * 2_000_000, "too_large"),
        (b"\xff\xfe\x00", "encoding"),  # a UTF-16 byte order mark
    ],
)
def test_bad_records_are_rejected_with_their_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(RecordError) as info:
        decode_aggregated(raw)
    assert info.value.reason == reason


def test_latest_record_carries_updated_at_and_every_signal() -> None:
    signals = {"a": Signal(1, 10), "b": Signal("x", 30)}
    raw = encode_latest("V", signals, "p", 5, 99)
    doc = orjson.loads(raw)
    assert doc["updated_at"] == 30
    assert doc["produced_at"] == 99
    assert decode_latest_signals(raw) == ("V", signals)


def test_aggregated_encoding_has_the_spec_envelope() -> None:
    doc = orjson.loads(encode_aggregated(AggregatedRecord("V", {"s": Signal(1.5, 2)}, "p", 3, 4)))
    assert doc == {
        "schema": 1,
        "vin": "V",
        "data": {"id": "V", "signals": {"s": {"value": 1.5, "ts": 2}}},
        "pod": "p",
        "received_at": 3,
        "produced_at": 4,
    }


def test_a_message_key_must_be_its_vin_and_a_decoder_bug_becomes_a_dead_letter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bethos import record as record_module
    from bethos.record import decode_message

    raw = orjson.dumps(
        {"schema": 1, "vin": "V", "data": {"id": "V", "signals": {}}, "pod": "p"}
        | {"received_at": 1, "produced_at": 1}
    )
    assert decode_message("V", raw, now_ms=10).vin == "V"
    assert decode_message(None, raw, now_ms=10).vin == "V"
    with pytest.raises(RecordError) as mismatch:
        decode_message("W", raw, now_ms=10)
    assert mismatch.value.reason == "vin_mismatch"

    def broken(raw: object, *, now_ms: int | None = None) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(record_module, "decode_aggregated", broken)
    with pytest.raises(RecordError) as bug:
        decode_message("V", raw, now_ms=10)
    assert bug.value.reason == "decode_error" and "KeyError" in bug.value.detail


def checked_signal(name: str, body: object, ts_limit: int) -> Signal | str:
    """What a signal must decode to, from the checks one by one: its Signal or the reason."""
    try:
        if not name or len(name) > MAX_NAME_LENGTH or _has_control_chars(name):
            return "schema"
        if not isinstance(body, dict) or "value" not in body:
            return "schema"
        ts = _require_time(body, "ts", "")
        if ts > ts_limit:
            return "future_ts"
        value = check_signal_value(name, body["value"])
    except RecordError as exc:
        return exc.reason
    return Signal(value, ts)


SIGNAL_VALUES = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),  # what orjson writes
    st.sampled_from([2**63 - 1, 2**63, -(2**63), 2**64 - 1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([2.0**63, -(2.0**63), 9.2e18, -9.2e18, 1e300]),
    st.text(max_size=20),
    st.sampled_from(["x" * 65_536, "x" * 65_537]),
    st.none(),
    st.lists(st.integers(0, 9), max_size=2),
)
NOW = 1_764_111_600_000
TIMES = st.one_of(
    st.integers(-3, 3),
    st.integers(0, 2**64 - 1),
    st.integers(2**63 - 3, 2**63 + 3),
    st.integers(NOW + MAX_FUTURE_MS - 3, NOW + MAX_FUTURE_MS + 3),
)
NAMES = (
    st.text("ab\u00e9 ", min_size=1, max_size=4)
    | st.text(max_size=8)
    | st.text(min_size=255, max_size=258)
)


@settings(max_examples=1000)
@given(
    NAMES,
    st.one_of(
        st.fixed_dictionaries({"value": SIGNAL_VALUES, "ts": TIMES}),
        st.fixed_dictionaries({"ts": st.integers(0, 9)}),
        st.fixed_dictionaries({"value": SIGNAL_VALUES, "ts": st.floats() | st.booleans()}),
        SIGNAL_VALUES,
    ),
    st.none() | st.just(NOW),
)
def test_each_signal_decodes_as_its_checks_say(name: str, body: object, now_ms: int | None) -> None:
    raw = with_changes(data__signals={name: body})
    limit = INT64_MAX if now_ms is None else min(now_ms + MAX_FUTURE_MS, INT64_MAX)
    expected = checked_signal(name, body, limit)
    try:
        got: Signal | str = decode_aggregated(raw, now_ms=now_ms).signals[name]
    except RecordError as exc:
        got = exc.reason
    if (
        isinstance(expected, Signal)
        and type(expected.value) is float
        and abs(expected.value) >= 2**63
    ):
        return  # a float this large may be an integer literal out of range: checked elsewhere
    assert got == expected
    if isinstance(got, Signal):
        assert type(got.value) is type(expected.value)  # type: ignore[union-attr]
