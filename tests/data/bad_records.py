"""A corpus of aggregated records that must be dead-lettered, and some that must not.

`BAD_RECORDS` holds (case name, raw Kafka value, expected RecordError reason); decode each with
`decode_aggregated(raw, now_ms=NOW)`. `GOOD_RECORDS` are valid records with varied value types,
for mixing into streams. Pure data: this module imports nothing from Flink (nor from bethos), so
integration tests can produce it to Kafka as is.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

NOW = 1_764_111_601_000
"""A fixed "now" (epoch ms, 2025-11-25) for the future-timestamp cases."""
DAY_MS = 86_400_000

VIN = "1HGCM82633A004352"

_TEMPLATE: dict[str, Any] = {
    "schema": 1,
    "vin": VIN,
    "data": {
        "id": VIN,
        "signals": {
            "speed_kmh": {"value": 42.5, "ts": NOW - 877},
            "door_open": {"value": False, "ts": NOW - 1999},
        },
    },
    "pod": "ingest-3",
    "received_at": NOW,
    "produced_at": NOW + 50,
}

_DELETE = object()


def _doc(**changes: object) -> dict[str, Any]:
    """The template with `a__b=value` set (or deleted, with `_DELETE`)."""
    doc = copy.deepcopy(_TEMPLATE)
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = doc
        for part in parents:
            target = target[part]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return doc


def _rec(**changes: object) -> bytes:
    return orjson.dumps(_doc(**changes))


def _signal(value: object, ts: object = NOW) -> bytes:
    """The template with one signal `x` of this value and ts (orjson-encodable ones)."""
    return _rec(data__signals={"x": {"value": value, "ts": ts}})


def _splice(placeholder: str, literal: bytes, **changes: object) -> bytes:
    """Encode the template, then put a literal orjson cannot write (NaN, 2**64, ...) in place."""
    raw = _rec(**changes)
    marker = orjson.dumps(placeholder)
    assert marker in raw
    return raw.replace(marker, literal, 1)


_GOOD = orjson.dumps(_TEMPLATE)
_GOOD_TEXT = _GOOD.decode()

_too_many_signals = {f"s{i}": {"value": i, "ts": NOW} for i in range(10_001)}
_deep = b'{"schema":1,"x":' + b"[" * 10_000 + b"]" * 10_000 + b"}"
_padding = "p" * 1_100_000

BAD_RECORDS: list[tuple[str, bytes | None, str]] = [
    # --- not JSON at all --------------------------------------------------------------------
    ("null_kafka_value", None, "schema"),
    ("empty_bytes", b"", "invalid_json"),
    ("whitespace_only", b"  \n\t ", "invalid_json"),
    ("not_json", b"not json", "invalid_json"),
    ("truncated_json", _GOOD[: len(_GOOD) // 2], "invalid_json"),
    ("trailing_garbage", _GOOD + b"}", "invalid_json"),
    ("two_documents", _GOOD + b"\n" + _GOOD, "invalid_json"),
    ("single_quoted_json", _GOOD_TEXT.replace('"', "'").encode(), "invalid_json"),
    ("trailing_comma", _GOOD[:-1] + b",}", "invalid_json"),
    ("raw_control_char_in_string", _GOOD.replace(b'"ingest-3"', b'"ingest\x01"'), "invalid_json"),
    (
        "nan_literal",
        _splice("@NAN@", b"NaN", data__signals={"x": {"value": "@NAN@", "ts": 1}}),
        "invalid_json",
    ),
    (
        "infinity_literal",
        _splice("@INF@", b"Infinity", data__signals={"x": {"value": "@INF@", "ts": 1}}),
        "invalid_json",
    ),
    (
        "number_overflows_double",
        _splice("@BIG@", b"1e400", data__signals={"x": {"value": "@BIG@", "ts": 1}}),
        "invalid_json",
    ),
    ("lone_surrogate_escape", _signal("@S@").replace(b'"@S@"', b'"\\ud800"'), "invalid_json"),
    # --- not UTF-8 ----------------------------------------------------------------------------
    ("invalid_utf8", _GOOD.replace(b"ingest-3", b"ingest-\xff"), "encoding"),
    ("invalid_utf8_lone_byte", b"\xff", "encoding"),
    ("utf16_bom_fragment", b"\xff\xfe\x00", "encoding"),
    ("overlong_utf8", _GOOD.replace(b"ingest-3", b"ingest-\xc0\xaf"), "encoding"),
    ("utf8_encoded_surrogate", _GOOD.replace(b"ingest-3", b"ingest-\xed\xa0\x80"), "encoding"),
    ("latin1_bytes", _rec(pod="Citroën Grenoble").decode().encode("latin-1"), "encoding"),
    ("utf8_bom_prefixed", b"\xef\xbb\xbf" + _GOOD, "encoding"),
    ("utf16_le_with_bom", _GOOD_TEXT.encode("utf-16"), "encoding"),
    ("utf16_be_no_bom", _GOOD_TEXT.encode("utf-16-be"), "encoding"),
    ("utf16_le_no_bom", _GOOD_TEXT.encode("utf-16-le"), "encoding"),
    ("utf32_with_bom", _GOOD_TEXT.encode("utf-32"), "encoding"),
    ("utf32_be_no_bom", _GOOD_TEXT.encode("utf-32-be"), "encoding"),
    # --- wrong shape at the top -------------------------------------------------------------
    ("top_level_array", b"[" + _GOOD + b"]", "schema"),
    ("top_level_string", orjson.dumps(_GOOD_TEXT), "schema"),
    ("top_level_number", b"1", "schema"),
    ("top_level_null", b"null", "schema"),
    ("top_level_bool", b"true", "schema"),
    ("missing_schema", _rec(schema=_DELETE), "schema"),
    ("wrong_schema_version", _rec(schema=2), "schema"),
    ("schema_as_string", _rec(schema="1"), "schema"),
    ("schema_as_bool", _rec(schema=True), "schema"),
    ("schema_as_float", _rec(schema=1.0), "schema"),
    ("missing_data", _rec(data=_DELETE), "schema"),
    ("data_not_object", _rec(data=[VIN]), "schema"),
    ("data_null", _rec(data=None), "schema"),
    # --- data.id and vin ----------------------------------------------------------------------
    ("missing_data_id", _rec(data__id=_DELETE), "empty_id"),
    ("empty_data_id", _rec(data__id=""), "empty_id"),
    ("null_data_id", _rec(data__id=None), "empty_id"),
    ("data_id_not_string", _rec(data__id=12345), "schema"),
    ("missing_vin", _rec(vin=_DELETE), "schema"),
    ("empty_vin", _rec(vin=""), "schema"),
    ("vin_not_string", _rec(vin=12345), "schema"),
    ("vin_mismatch", _rec(data__id="2HGCM82633A004353"), "vin_mismatch"),
    ("vin_case_mismatch", _rec(data__id=VIN.lower()), "vin_mismatch"),
    ("vin_too_long", _rec(vin="V" * 65, data__id="V" * 65), "schema"),
    ("control_char_in_vin", _rec(vin=VIN + "\n", data__id=VIN + "\n"), "schema"),
    ("nul_in_vin", _rec(vin="\x00" + VIN, data__id="\x00" + VIN), "schema"),
    ("c1_control_in_vin", _rec(vin=VIN + "\x85", data__id=VIN + "\x85"), "schema"),
    # orjson keeps the last of duplicate keys: here the last "vin" differs from data.id.
    (
        "duplicate_vin_key_last_differs",
        _GOOD.replace(f'"vin":"{VIN}"'.encode(), f'"vin":"{VIN}","vin":"OTHER"'.encode()),
        "vin_mismatch",
    ),
    # --- signals --------------------------------------------------------------------------------
    ("missing_signals", _rec(data__signals=_DELETE), "schema"),
    ("signals_not_object", _rec(data__signals=[{"value": 1, "ts": NOW}]), "schema"),
    ("signal_not_object", _rec(data__signals={"x": 5}), "schema"),
    ("signal_without_value", _rec(data__signals={"x": {"ts": NOW}}), "schema"),
    ("signal_without_ts", _rec(data__signals={"x": {"value": 1}}), "schema"),
    ("empty_signal_name", _rec(data__signals={"": {"value": 1, "ts": NOW}}), "schema"),
    ("signal_name_too_long", _rec(data__signals={"n" * 257: {"value": 1, "ts": NOW}}), "schema"),
    (
        "control_char_in_signal_name",
        _rec(data__signals={"speed\tkmh": {"value": 1, "ts": NOW}}),
        "schema",
    ),
    ("ts_string", _signal(1, "2025-11-25T22:00:00Z"), "schema"),
    ("ts_float", _signal(1, float(NOW) + 0.5), "schema"),
    ("ts_bool", _signal(1, True), "schema"),
    ("ts_null", _signal(1, None), "schema"),
    ("ts_negative", _signal(1, -1), "before_epoch"),
    ("ts_far_in_future", _signal(1, NOW + DAY_MS + 1), "future_ts"),
    ("ts_beyond_int64", _signal(1, 2**63), "schema"),
    ("value_null", _signal(None), "schema"),
    ("value_list", _signal([1, 2]), "schema"),
    ("value_object", _signal({"nested": 1}), "schema"),
    ("value_empty_object", _signal({}), "schema"),
    ("int_value_2_pow_63", _signal(2**63), "schema"),
    ("int_value_2_pow_64_minus_1", _signal(2**64 - 1), "schema"),
    # orjson parses these as floats; the decoder still sees they were integer literals.
    (
        "int_value_10_pow_20",
        _splice(
            "@BIG@", b"100000000000000000000", data__signals={"x": {"value": "@BIG@", "ts": NOW}}
        ),
        "schema",
    ),
    (
        "int_value_below_int64",
        _splice(
            "@BIG@", b"-9223372036854775809", data__signals={"x": {"value": "@BIG@", "ts": NOW}}
        ),
        "schema",
    ),
    # --- envelope times and pod ---------------------------------------------------------------
    ("received_at_negative", _rec(received_at=-1), "before_epoch"),
    ("produced_at_negative", _rec(produced_at=-1_000), "before_epoch"),
    ("missing_received_at", _rec(received_at=_DELETE), "schema"),
    ("received_at_float", _rec(received_at=1.5), "schema"),
    ("produced_at_string", _rec(produced_at=str(NOW)), "schema"),
    ("pod_not_string", _rec(pod=3), "schema"),
    # --- size and depth ---------------------------------------------------------------------
    ("huge_record", _rec(pod=_padding), "too_large"),
    ("huge_string_value", _signal("x" * 65_537), "too_large"),
    ("too_many_signals", _rec(data__signals=_too_many_signals), "too_large"),
    ("deeply_nested_document", _deep, "too_deep"),
    (
        "deeply_nested_value",
        _splice(
            "@DEEP@",
            b"[" * 5_000 + b"]" * 5_000,
            data__signals={"x": {"value": "@DEEP@", "ts": NOW}},
        ),
        "too_deep",
    ),
]

GOOD_RECORDS: list[bytes] = [
    _GOOD,
    # every value type, with the int64 and epoch extremes
    orjson.dumps(
        {
            "schema": 1,
            "vin": "WVWZZZ1JZXW000001",
            "data": {
                "id": "WVWZZZ1JZXW000001",
                "signals": {
                    "odometer_km": {"value": 123_456, "ts": NOW - 10},
                    "temp_c": {"value": -12.75, "ts": NOW - 9},
                    "gear": {"value": "D", "ts": NOW - 8},
                    "charging": {"value": True, "ts": NOW - 7},
                    "counter_max": {"value": 2**63 - 1, "ts": NOW},
                    "counter_min": {"value": -(2**63), "ts": NOW},
                    "zero": {"value": 0, "ts": 0},
                    "big_float": {"value": 1e300, "ts": NOW + 86_400_000},
                    "empty_text": {"value": "", "ts": NOW},
                },
            },
            "pod": "ingest-1",
            "received_at": 0,
            "produced_at": NOW,
        }
    ),
    # pretty-printed, unicode text (escaped and raw), no pod, an unknown extra field
    (
        b'{\n  "schema": 1,\n  "vin": "JH4KA7561PC008269",\n'
        b'  "data": {"id": "JH4KA7561PC008269", "signals": {\n'
        b'    "driver": {"value": "Zo\\u00eb \xe2\x9c\x93", "ts": 1764111600000},\n'
        b'    "mode": {"value": "\xc3\xa9co", "ts": 1764111600001}}},\n'
        b'  "received_at": 1764111601000, "produced_at": 1764111601001,\n'
        b'  "extra": {"nested": [1, [2, [3]]]}\n}\n'
    ),
    # no signals at all (an aggregated window may be empty)
    orjson.dumps(
        {
            "schema": 1,
            "vin": "5YJ3E1EA7KF000002",
            "data": {"id": "5YJ3E1EA7KF000002", "signals": {}},
            "pod": "",
            "received_at": NOW,
            "produced_at": NOW,
        }
    ),
    # exactly at the limits: 1-day future ts, 64-char VIN, 256-char name, 64 KiB string,
    # a float written with an exponent, a non-ASCII signal name
    orjson.dumps(
        {
            "schema": 1,
            "vin": "V" * 64,
            "data": {
                "id": "V" * 64,
                "signals": {
                    "n" * 256: {"value": "s" * 65_536, "ts": NOW + 86_400_000},
                    "température": {"value": 21.5, "ts": NOW},
                },
            },
            "pod": "ingest-2",
            "received_at": NOW,
            "produced_at": NOW,
        }
    ),
    # a float literal beyond int64 is a float, not a big integer
    (
        b'{"schema":1,"vin":"SALVA2AE4EH000003","data":{"id":"SALVA2AE4EH000003",'
        b'"signals":{"energy_j":{"value":1.0e20,"ts":1764111600000},'
        b'"neg":{"value":-9223372036854775808.0,"ts":1764111600000}}},'
        b'"pod":"ingest-4","received_at":1764111601000,"produced_at":1764111601000}'
    ),
    # duplicate keys: orjson keeps the last, which here matches data.id
    _GOOD.replace(f'"vin":"{VIN}"'.encode(), f'"vin":"OTHER","vin":"{VIN}"'.encode()),
]
