from __future__ import annotations

import orjson
import pytest

from bethos.exceptions import RecordError
from bethos.record import (
    AggregatedRecord,
    Signal,
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
