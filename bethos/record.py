"""The record model of SPEC section 2 and its JSON codec.

An *aggregated* record carries some signals of one VIN; a *latest* record carries every signal
ever seen for the VIN. Both share one envelope. Times are integer epoch milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from bethos.exceptions import RecordError

SCHEMA_VERSION = 1
MAX_RECORD_BYTES = 1_048_576
MAX_SIGNALS = 10_000
MAX_NAME_LENGTH = 256
MAX_STRING_VALUE_LENGTH = 65_536

SignalValue = bool | int | float | str


@dataclass(frozen=True, slots=True)
class Signal:
    """One reading: the value and the event time it was measured at."""

    value: SignalValue
    ts: int


@dataclass(frozen=True, slots=True)
class AggregatedRecord:
    vin: str
    signals: Mapping[str, Signal]
    pod: str
    received_at: int
    produced_at: int


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_signal_value(name: str, value: object) -> SignalValue:
    """Accept the InfluxDB field types only: number, string, boolean."""
    if isinstance(value, bool | str):
        if isinstance(value, str) and len(value) > MAX_STRING_VALUE_LENGTH:
            raise RecordError("too_large", f"signal {name!r} string value too long")
        return value
    if _is_int(value):
        return value  # type: ignore[return-value]
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RecordError("schema", f"signal {name!r} value is not finite")
        return value
    raise RecordError("schema", f"signal {name!r} value has type {type(value).__name__}")


def _require_int(obj: Mapping[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if not _is_int(value):
        raise RecordError("schema", f"{where}{key} must be an integer (epoch ms)")
    return int(value)  # type: ignore[arg-type]


def decode_aggregated(raw: bytes | str | None) -> AggregatedRecord:
    """Parse and validate one aggregated record; raise RecordError with a reason code."""
    if raw is None:
        raise RecordError("schema", "record has no value")
    if len(raw) > MAX_RECORD_BYTES:
        raise RecordError("too_large", f"record is {len(raw)} bytes, limit {MAX_RECORD_BYTES}")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RecordError("invalid_json", str(exc)) from None
    if not isinstance(doc, dict):
        raise RecordError("schema", "record must be a JSON object")
    if doc.get("schema") != SCHEMA_VERSION:
        raise RecordError("schema", f"schema must be {SCHEMA_VERSION}")
    data = doc.get("data")
    if not isinstance(data, dict):
        raise RecordError("schema", "data must be an object")
    data_id = data.get("id")
    if data_id is None or data_id == "":
        raise RecordError("empty_id", "data.id is missing or empty")
    if not isinstance(data_id, str):
        raise RecordError("schema", "data.id must be a string")
    vin = doc.get("vin")
    if not isinstance(vin, str) or not vin:
        raise RecordError("schema", "vin must be a non-empty string")
    if vin != data_id:
        raise RecordError("vin_mismatch", f"vin {vin!r} differs from data.id {data_id!r}")
    raw_signals = data.get("signals")
    if not isinstance(raw_signals, dict):
        raise RecordError("schema", "data.signals must be an object")
    if len(raw_signals) > MAX_SIGNALS:
        raise RecordError("too_large", f"{len(raw_signals)} signals, limit {MAX_SIGNALS}")
    signals: dict[str, Signal] = {}
    for name, body in raw_signals.items():
        if not name or len(name) > MAX_NAME_LENGTH:
            raise RecordError("schema", "signal names must have 1 to 256 characters")
        if not isinstance(body, dict) or "value" not in body:
            raise RecordError("schema", f"signal {name!r} must be an object with value and ts")
        ts = _require_int(body, "ts", f"signal {name!r} ")
        signals[name] = Signal(check_signal_value(name, body["value"]), ts)
    pod = doc.get("pod", "")
    if not isinstance(pod, str):
        raise RecordError("schema", "pod must be a string")
    return AggregatedRecord(
        vin=vin,
        signals=signals,
        pod=pod,
        received_at=_require_int(doc, "received_at", ""),
        produced_at=_require_int(doc, "produced_at", ""),
    )


def _signals_json(signals: Mapping[str, Signal]) -> dict[str, dict[str, SignalValue]]:
    return {name: {"value": s.value, "ts": s.ts} for name, s in sorted(signals.items())}


def encode_aggregated(record: AggregatedRecord) -> bytes:
    return orjson.dumps(
        {
            "schema": SCHEMA_VERSION,
            "vin": record.vin,
            "data": {"id": record.vin, "signals": _signals_json(record.signals)},
            "pod": record.pod,
            "received_at": record.received_at,
            "produced_at": record.produced_at,
        }
    )


def encode_latest(
    vin: str,
    signals: Mapping[str, Signal],
    pod: str,
    received_at: int,
    produced_at: int,
) -> bytes:
    """The latest record: every known signal, `updated_at` = newest signal ts."""
    updated_at = max((s.ts for s in signals.values()), default=0)
    return orjson.dumps(
        {
            "schema": SCHEMA_VERSION,
            "vin": vin,
            "data": {"id": vin, "signals": _signals_json(signals)},
            "pod": pod,
            "received_at": received_at,
            "updated_at": updated_at,
            "produced_at": produced_at,
        }
    )


def decode_latest_signals(raw: bytes | str) -> tuple[str, dict[str, Signal]]:
    """Read back a latest record (verify, tests): its VIN and signals."""
    doc = orjson.loads(raw)
    signals = {
        name: Signal(body["value"], body["ts"]) for name, body in doc["data"]["signals"].items()
    }
    return doc["vin"], signals
