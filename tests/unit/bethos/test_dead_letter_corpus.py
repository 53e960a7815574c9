"""The dead-letter corpus: every bad record is rejected with its reason, and nothing else escapes.

Duplicate keys in a JSON object are not an error: orjson keeps the last occurrence, and so does
the decoder (see `test_duplicate_keys_keep_the_last_occurrence`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bethos.exceptions import RecordError
from bethos.record import (
    MAX_FUTURE_MS,
    AggregatedRecord,
    decode_aggregated,
    encode_aggregated,
)
from tests.data.bad_records import BAD_RECORDS, GOOD_RECORDS, NOW

KNOWN_REASONS = {
    "invalid_json",
    "encoding",
    "schema",
    "empty_id",
    "vin_mismatch",
    "too_large",
    "too_deep",
    "future_ts",
    "before_epoch",
}


def decode_or_reject(raw: bytes | str | None, now_ms: int | None = NOW) -> AggregatedRecord | None:
    """Decode, or return None on RecordError; any other exception fails the test."""
    try:
        record = decode_aggregated(raw, now_ms=now_ms)
    except RecordError as exc:
        assert exc.reason in KNOWN_REASONS, exc
        return None
    assert isinstance(record, AggregatedRecord)
    assert decode_aggregated(encode_aggregated(record)) == record
    return record


@pytest.mark.parametrize(
    ("raw", "reason"),
    [pytest.param(raw, reason, id=name) for name, raw, reason in BAD_RECORDS],
)
def test_bad_record_is_rejected_with_its_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(RecordError) as info:
        decode_aggregated(raw, now_ms=NOW)
    assert info.value.reason == reason, info.value.detail


def test_the_corpus_has_at_least_30_distinct_cases() -> None:
    names = [name for name, _, _ in BAD_RECORDS]
    assert len(set(names)) == len(names), "case names must be unique"
    assert len(set(names)) >= 30
    assert {reason for _, _, reason in BAD_RECORDS} == KNOWN_REASONS


def test_the_corpus_module_imports_no_flink() -> None:
    import tests.data.bad_records as corpus

    tree = ast.parse(Path(corpus.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name.split(".")[0] in {"pyflink", "bethos"} for name in imported), imported


@pytest.mark.parametrize("raw", GOOD_RECORDS, ids=lambda raw: raw[:40].decode(errors="replace"))
def test_good_record_decodes(raw: bytes) -> None:
    record = decode_aggregated(raw, now_ms=NOW)
    assert record.vin == orjson.loads(raw)["data"]["id"]
    assert decode_aggregated(raw) == record  # now_ms is optional
    assert decode_aggregated(raw.decode("utf-8")) == record  # text in, same record
    assert decode_aggregated(encode_aggregated(record)) == record


def test_good_records_cover_every_value_type() -> None:
    types = {
        type(signal.value)
        for raw in GOOD_RECORDS
        for signal in decode_aggregated(raw).signals.values()
    }
    assert types == {bool, int, float, str}
    assert len(GOOD_RECORDS) >= 5


def test_future_ts_needs_now_ms_and_the_limit_is_one_day() -> None:
    future = dict(BAD_RECORDS_BY_NAME)["ts_far_in_future"]
    assert future is not None
    assert decode_aggregated(future).signals["x"].ts == NOW + MAX_FUTURE_MS + 1
    assert MAX_FUTURE_MS == 86_400_000
    edge = future.replace(str(NOW + MAX_FUTURE_MS + 1).encode(), str(NOW + MAX_FUTURE_MS).encode())
    assert decode_aggregated(edge, now_ms=NOW).signals["x"].ts == NOW + MAX_FUTURE_MS


def test_before_epoch_applies_without_now_ms() -> None:
    for name in ("ts_negative", "received_at_negative", "produced_at_negative"):
        with pytest.raises(RecordError) as info:
            decode_aggregated(BAD_RECORDS_BY_NAME[name])
        assert info.value.reason == "before_epoch", name


def test_duplicate_keys_keep_the_last_occurrence() -> None:
    good = GOOD_RECORDS[0]
    vin = orjson.loads(good)["vin"]
    first_wrong = good.replace(f'"vin":"{vin}"'.encode(), f'"vin":"X","vin":"{vin}"'.encode())
    last_wrong = good.replace(f'"vin":"{vin}"'.encode(), f'"vin":"{vin}","vin":"X"'.encode())
    assert first_wrong != good != last_wrong
    assert decode_aggregated(first_wrong).vin == vin
    with pytest.raises(RecordError) as info:
        decode_aggregated(last_wrong)
    assert info.value.reason == "vin_mismatch"


def test_text_input_with_bad_encoding_is_rejected_as_encoding() -> None:
    good = GOOD_RECORDS[0].decode()
    for text in ("\ufeff" + good, good.replace("ingest-3", "ingest-\ud800")):
        with pytest.raises(RecordError) as info:
            decode_aggregated(text)
        assert info.value.reason == "encoding"


def test_wrong_input_type_is_a_record_error() -> None:
    with pytest.raises(RecordError) as info:
        decode_aggregated(12345)  # type: ignore[arg-type]
    assert info.value.reason == "schema"


BAD_RECORDS_BY_NAME = {name: raw for name, raw, _ in BAD_RECORDS}

# --- the safety net: whatever comes in, the decoder returns a record or raises RecordError ---

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=2_000))
@example(b"")
@example(b"[" * 100_000)
@example(b"{" * 100_000)
@example(b'{"a":' * 100_000)
@example(b"\x00\x00\x00")
@example(b"\xef\xbb\xbf")
@example(b"\xfe\xff\x00")
def test_random_bytes_never_raise_anything_but_record_error(raw: bytes) -> None:
    decode_or_reject(raw)


@FUZZ
@given(st.text(max_size=2_000))
@example("")
@example("[" * 100_000)
@example("\ud800")
@example("\ufeff{}")
def test_random_text_never_raises_anything_but_record_error(raw: str) -> None:
    decode_or_reject(raw)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _set(doc: object, path: list[str], value: object) -> None:
    for part in path[:-1]:
        if not isinstance(doc, dict) or part not in doc:
            return
        doc = doc[part]
    if isinstance(doc, dict):
        doc[path[-1]] = value


ENVELOPE_PATHS = [
    ["schema"],
    ["vin"],
    ["data"],
    ["data", "id"],
    ["data", "signals"],
    ["data", "signals", "speed_kmh"],
    ["data", "signals", "speed_kmh", "value"],
    ["data", "signals", "speed_kmh", "ts"],
    ["pod"],
    ["received_at"],
    ["produced_at"],
]


@FUZZ
@given(
    st.sampled_from(GOOD_RECORDS[:1]),
    st.lists(st.tuples(st.sampled_from(ENVELOPE_PATHS), json_values), min_size=1, max_size=3),
)
def test_mutated_records_never_raise_anything_but_record_error(
    good: bytes, changes: list[tuple[list[str], object]]
) -> None:
    doc = orjson.loads(good)
    for path, value in changes:
        _set(doc, path, value)
    try:
        raw = orjson.dumps(doc)
    except TypeError:  # orjson cannot write integers beyond 64 bits; the stdlib can
        import json

        raw = json.dumps(doc).encode()
    decode_or_reject(raw)


@FUZZ
@given(st.sampled_from(GOOD_RECORDS), st.data())
def test_damaged_good_records_never_raise_anything_but_record_error(
    good: bytes, data: st.DataObject
) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(good)))
    junk = data.draw(st.binary(max_size=8))
    decode_or_reject(good[:cut] + junk + good[cut + len(junk) :])
