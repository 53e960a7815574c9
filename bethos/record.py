"""The record model and its JSON codec (docs/CONTRACT.md, schemas/).

An *aggregated* record carries some signals of one VIN; a *latest* record carries every signal
ever seen for the VIN. Both share one envelope. Times are integer epoch milliseconds.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, ItemsView, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Annotated, Any, Literal, NamedTuple

import msgspec
import orjson

from bethos.exceptions import RecordError

SCHEMA_VERSION = 1
MAX_RECORD_BYTES = 1_048_576
MAX_SIGNALS = 10_000
MAX_NAME_LENGTH = 256
MAX_VIN_LENGTH = 64
MAX_STRING_VALUE_LENGTH = 65_536
MAX_FUTURE_MS = 86_400_000
"""With `now_ms`, a signal `ts` more than this (1 day) after it is rejected as `future_ts`."""
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_TWO_63 = float(2**63)
_NO_VALUE = object()

SignalValue = bool | int | float | str

# C0, DEL and C1 control characters. Only consulted when str.isprintable() fails (rare), so
# the hot path pays for one C call per name.
_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f]")
_UTF8_BOM = b"\xef\xbb\xbf"
# UTF-32 first: its little-endian BOM starts with the UTF-16 one.
_UTF_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32-BE"),
    (b"\xff\xfe\x00\x00", "UTF-32-LE"),
    (b"\xfe\xff", "UTF-16-BE"),
    (b"\xff\xfe", "UTF-16-LE"),
)


class Signal(NamedTuple):
    """One reading: the value and the event time it was measured at.

    A NamedTuple, not a dataclass: the source creates one per signal read, and a tuple is
    several times cheaper to create than a frozen dataclass.
    """

    value: SignalValue
    ts: int


class RowSignals(Mapping[str, Signal]):
    """The signals of one row as it was read: names and values side by side, every value
    measured at `ts`. A mapping of name to Signal, like a dict of them.

    The source's common case: one point per VIN and window. Kept so, a read makes no Signal
    and no dict entry per value, and `encode_aggregated` writes the values as they are. Read
    only: whatever adds to a VIN's signals makes a dict of them first (`as_dict`). `names` are
    distinct; `row_values` are in their order, none of them None.
    """

    __slots__ = ("names", "row_values", "ts")

    def __init__(self, names: tuple[str, ...], row_values: Sequence[SignalValue], ts: int) -> None:
        self.names = names
        self.row_values = row_values
        self.ts = ts

    def __getitem__(self, name: str) -> Signal:
        try:
            index = self.names.index(name)
        except ValueError:
            raise KeyError(name) from None
        return Signal(self.row_values[index], self.ts)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"RowSignals({self.as_dict()!r})"

    def items(self) -> ItemsView[str, Signal]:
        return self.as_dict().items()

    def as_dict(self) -> dict[str, Signal]:
        """A dict of the same signals, in the same order."""
        signals = map(_new_tuple, repeat(Signal), zip(self.row_values, repeat(self.ts)))
        return dict(zip(self.names, signals, strict=True))


@dataclass(frozen=True, slots=True)
class AggregatedRecord:
    vin: str
    signals: Mapping[str, Signal]
    pod: str
    received_at: int
    produced_at: int


def _slot_setter(name: str) -> Callable[[AggregatedRecord, object], None]:
    setter: Callable[[AggregatedRecord, object], None] = AggregatedRecord.__dict__[name].__set__
    return setter


# The decoder builds its records without the frozen dataclass's __init__ (five object.__setattr__
# calls in Python): it sets the slots through their descriptors, about half the cost. A field
# added to AggregatedRecord must be set there too (test_record_fast_path.py would fail).
_new_object = object.__new__
_set_vin = _slot_setter("vin")
_set_signals = _slot_setter("signals")
_set_pod = _slot_setter("pod")
_set_received_at = _slot_setter("received_at")
_set_produced_at = _slot_setter("produced_at")
# A NamedTuple's __new__ is a Python function; tuple.__new__ makes the same Signal in C.
_new_tuple = tuple.__new__


def aggregated_record(
    vin: str, signals: Mapping[str, Signal], pod: str, received_at: int, produced_at: int
) -> AggregatedRecord:
    """`AggregatedRecord(...)` at about half the cost, for the source's one record per VIN."""
    record = _new_object(AggregatedRecord)
    _set_vin(record, vin)
    _set_signals(record, signals)
    _set_pod(record, pod)
    _set_received_at(record, received_at)
    _set_produced_at(record, produced_at)
    return record


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _has_control_chars(text: str) -> bool:
    return not text.isprintable() and _CONTROL_CHARS.search(text) is not None


def check_signal_value(name: str, value: object) -> SignalValue:
    """Accept the InfluxDB field types only: number, string, boolean."""
    if isinstance(value, bool | str):
        if isinstance(value, str) and len(value) > MAX_STRING_VALUE_LENGTH:
            raise RecordError("too_large", f"signal {name!r} string value too long")
        return value
    if _is_int(value):
        if not INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
            raise RecordError("schema", f"signal {name!r} integer value outside signed 64-bit")
        return value  # type: ignore[return-value]
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RecordError("schema", f"signal {name!r} value is not finite")
        return value
    raise RecordError("schema", f"signal {name!r} value has type {type(value).__name__}")


def _require_time(obj: Mapping[str, Any], key: str, where: str) -> int:
    """An epoch-ms field: a JSON integer (not a boolean), in int64 range, not before 1970."""
    value = obj.get(key)
    if type(value) is not int:  # exact type: bool is an int subclass, orjson makes no others
        raise RecordError("schema", f"{where}{key} must be an integer (epoch ms)")
    if value < 0:
        raise RecordError("before_epoch", f"{where}{key} {value} is before 1970")
    if value > INT64_MAX:
        raise RecordError("schema", f"{where}{key} is outside signed 64-bit")
    return value


def _parse_error(raw: bytes | str, exc: Exception) -> RecordError:
    """Classify a failed parse. Runs only on the error path, so valid records pay nothing.

    orjson never accepts text that is not UTF-8 (nor a BOM, nor UTF-16/32, whose ASCII
    characters carry NUL bytes that JSON forbids), so looking here gives the same answer as
    looking before the parse.
    """
    if isinstance(raw, str):
        if raw.startswith("\ufeff"):
            return RecordError("encoding", "text starts with a byte order mark")
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError as err:
            return RecordError("encoding", f"text is not encodable as UTF-8: {err.reason}")
    else:
        if raw.startswith(_UTF8_BOM):
            return RecordError("encoding", "UTF-8 byte order mark is not allowed")
        for bom, name in _UTF_BOMS:
            if raw.startswith(bom):
                return RecordError("encoding", f"{name} byte order mark: record must be UTF-8")
        # RFC 4627 section 3: JSON text starts with an ASCII character, so a NUL among the
        # first two bytes means UTF-16 or UTF-32 without a BOM.
        if b"\x00" in raw[:2]:
            return RecordError("encoding", "looks like UTF-16 or UTF-32: record must be UTF-8")
        try:
            bytes(raw).decode("utf-8")
        except UnicodeDecodeError as err:
            return RecordError("encoding", f"not valid UTF-8 at byte {err.start}: {err.reason}")
    if isinstance(exc, RecursionError):
        return RecordError("too_deep", "document nesting too deep")
    text = str(exc)
    if "depth limit" in text or "recursion" in text:
        return RecordError("too_deep", f"document nested too deep: {text}")
    return RecordError("invalid_json", text)


class _IntLiteral(str):
    """An integer literal kept as text (see `_big_int_literals`)."""

    __slots__ = ()


def _big_int_literals(raw: bytes | str, names: list[str]) -> list[str]:
    """The names, among `names`, whose value is written as an integer literal.

    orjson turns an integer literal outside [-2**63, 2**64) into a float without a word; only
    a float of magnitude >= 2**63 can be one, so this (slow) re-parse runs for those alone.
    """
    try:
        doc = json.loads(raw, parse_int=_IntLiteral)
        signals = doc["data"]["signals"]
        return [name for name in names if isinstance(signals[name]["value"], _IntLiteral)]
    except RecursionError:
        raise RecordError("too_deep", "document nested too deep to check") from None
    except (ValueError, LookupError, TypeError):
        return []


# The fast path: msgspec decodes a record of the common shape and checks most of it as it parses.
# It accepts a subset of what `_decode_checked` accepts, with the same values; anything it
# refuses (an invalid record, or a valid one of an unusual shape: an unknown field, a float of
# magnitude >= 2**63, a name that is not printable, ...) goes to `_decode_checked`, whose
# answer, record or RecordError, is the decoder's. tests/unit/bethos/test_record_fast_path.py
# checks both against each other.
_Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
_SmallFloat = Annotated[float, msgspec.Meta(gt=-_TWO_63, lt=_TWO_63)]
"""A float of magnitude 2**63 or more is left to the checks: they re-read its literal to tell
a float from an integer beyond int64, which orjson reads as a float too."""
_Text = Annotated[str, msgspec.Meta(max_length=MAX_STRING_VALUE_LENGTH)]
_Time = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
_Vin = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_VIN_LENGTH)]


class _CommonSignal(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    value: bool | _Int64 | _SmallFloat | _Text
    ts: _Time


class _CommonData(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    id: str
    signals: Annotated[dict[_Name, _CommonSignal], msgspec.Meta(max_length=MAX_SIGNALS)]


class _CommonRecord(msgspec.Struct, forbid_unknown_fields=True, gc=False, kw_only=True):
    """The fields in the order `encode_aggregated` writes them (msgspec looks for the next
    field first), and a latest record's `updated_at`, whose value the decoder ignores. That one
    is held to int64 all the same: orjson reads a longer integer literal as a float, and fails
    on one beyond a double's range (1e400), which msgspec would take.

    Unknown fields are refused, not skipped: msgspec skips a value without the checks it makes
    on one it decodes (UTF-8, numbers out of range)."""

    schema: Literal[1]  # SCHEMA_VERSION
    vin: _Vin
    data: _CommonData
    pod: str = ""
    received_at: _Time
    produced_at: _Time
    updated_at: _Int64 = 0


_decode_common = msgspec.json.Decoder(_CommonRecord).decode


def _no_control_chars(raw: bytes | str) -> bool:
    """True if no string of this document (valid JSON in UTF-8) can hold a C0, DEL or C1
    character; False says nothing.

    JSON writes C0 characters escaped, with a backslash; DEL is the byte 0x7f; UTF-8 writes the
    C1 characters U+0080..U+009F as 0xc2 0x80..0x9f, and 0xc2 is always a lead byte. Three
    memchr calls (an int operand searches for the byte), far cheaper than looking at each name.
    """
    return type(raw) is bytes and 0x5C not in raw and 0x7F not in raw and 0xC2 not in raw


def decode_aggregated(raw: bytes | str | None, *, now_ms: int | None = None) -> AggregatedRecord:
    """Parse and validate one aggregated record; raise RecordError with a reason code.

    With `now_ms` (epoch ms), a signal `ts` more than MAX_FUTURE_MS after it is `future_ts`.
    Duplicate keys: the last occurrence counts.
    """
    if (type(raw) is bytes or type(raw) is str) and len(raw) <= MAX_RECORD_BYTES:
        try:
            doc = _decode_common(raw)
        except Exception:  # not of the common shape, or not valid: the checks decide
            pass
        else:
            vin = doc.vin
            data = doc.data
            found = data.signals
            if vin == data.id and (
                _no_control_chars(raw) or (vin.isprintable() and "".join(found).isprintable())
            ):
                ts_limit = INT64_MAX if now_ms is None else now_ms + MAX_FUTURE_MS
                signals: dict[str, Signal] = {}
                for name, signal in found.items():
                    ts = signal.ts
                    if ts > ts_limit:
                        break
                    signals[name] = _new_tuple(Signal, (signal.value, ts))
                else:
                    return aggregated_record(
                        vin, signals, doc.pod, doc.received_at, doc.produced_at
                    )
    return _decode_checked(raw, now_ms)


def _decode_checked(raw: bytes | str | None, now_ms: int | None) -> AggregatedRecord:
    """The decoder, check by check, on orjson's parse: every record the fast path leaves."""
    if raw is None:
        raise RecordError("schema", "record has no value")
    if not isinstance(raw, bytes | str):
        raise RecordError("schema", f"record has type {type(raw).__name__}, not bytes or str")
    if len(raw) > MAX_RECORD_BYTES:
        raise RecordError("too_large", f"record is {len(raw)} bytes, limit {MAX_RECORD_BYTES}")
    try:
        doc = orjson.loads(raw)
    except (orjson.JSONDecodeError, RecursionError) as exc:
        raise _parse_error(raw, exc) from None
    if not isinstance(doc, dict):
        raise RecordError("schema", "record must be a JSON object")
    schema = doc.get("schema")
    if type(schema) is not int or schema != SCHEMA_VERSION:
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
    if len(vin) > MAX_VIN_LENGTH:
        raise RecordError("schema", f"vin has {len(vin)} characters, limit {MAX_VIN_LENGTH}")
    if _has_control_chars(vin):
        raise RecordError("schema", f"vin {vin!r} contains control characters")
    if vin != data_id:
        raise RecordError(
            "vin_mismatch", f"vin {vin!r} differs from data.id {data_id[:MAX_VIN_LENGTH]!r}"
        )
    raw_signals = data.get("signals")
    if not isinstance(raw_signals, dict):
        raise RecordError("schema", "data.signals must be an object")
    if len(raw_signals) > MAX_SIGNALS:
        raise RecordError("too_large", f"{len(raw_signals)} signals, limit {MAX_SIGNALS}")
    ts_limit = INT64_MAX if now_ms is None else min(now_ms + MAX_FUTURE_MS, INT64_MAX)
    signals: dict[str, Signal] = {}
    suspect: list[str] | None = None
    for name, body in raw_signals.items():
        if type(body) is dict and 0 < len(name) <= MAX_NAME_LENGTH and name.isprintable():
            # The common shape, checked inline: a time in range and a value that needs no
            # further look (an int in int64, a float that cannot be an integer out of it, a
            # short string, a boolean). Anything else takes the checks below.
            ts = body.get("ts")
            value = body.get("value", _NO_VALUE)
            kind = type(value)
            if (
                type(ts) is int
                and 0 <= ts <= ts_limit
                and (
                    (kind is float and -_TWO_63 < value < _TWO_63)
                    or (kind is int and INT64_MIN <= value <= INT64_MAX)
                    or (kind is str and len(value) <= MAX_STRING_VALUE_LENGTH)
                    or kind is bool
                )
            ):
                signals[name] = Signal(value, ts)
                continue
        if not name or len(name) > MAX_NAME_LENGTH:
            raise RecordError("schema", "signal names must have 1 to 256 characters")
        if _has_control_chars(name):
            raise RecordError("schema", f"signal name {name!r} contains control characters")
        if not isinstance(body, dict) or "value" not in body:
            raise RecordError("schema", f"signal {name!r} must be an object with value and ts")
        ts = _require_time(body, "ts", f"signal {name!r} ")
        if ts > ts_limit:
            raise RecordError(
                "future_ts", f"signal {name!r} ts {ts} is more than 1 day after now {now_ms}"
            )
        value = check_signal_value(name, body["value"])
        if type(value) is float and not -_TWO_63 < value < _TWO_63:
            if suspect is None:
                suspect = []
            suspect.append(name)
        signals[name] = Signal(value, ts)
    if suspect is not None:
        big = _big_int_literals(raw, suspect)
        if big:
            raise RecordError("schema", f"signal {big[0]!r} integer value outside signed 64-bit")
    pod = doc.get("pod", "")
    if not isinstance(pod, str):
        raise RecordError("schema", "pod must be a string")
    return AggregatedRecord(
        vin=vin,
        signals=signals,
        pod=pod,
        received_at=_require_time(doc, "received_at", ""),
        produced_at=_require_time(doc, "produced_at", ""),
    )


# A signal as (value, ts, ...): a Signal, or the merger's candidate (value, ts, received_at),
# which is encoded as it is kept, without a Signal per signal (a flush encodes every VIN).
Timed = tuple[SignalValue, int] | tuple[SignalValue, int, int]


_TS = itemgetter(1)


def newest_ts(signals: Mapping[str, Timed]) -> int:
    """The newest `ts` among the signals; 0 when there are none. A flush asks it of every VIN
    it emits: a max over a C-level key, not a generator."""
    return max(map(_TS, signals.values())) if signals else 0


def _signals_json(signals: Mapping[str, Timed]) -> dict[str, dict[str, SignalValue]]:
    return {name: {"value": s[0], "ts": s[1]} for name, s in sorted(signals.items())}


# Per names of a RowSignals: the order that sorts them (None: sorted already, as InfluxDB sorts
# its columns), and the text of the signals object with a hole (%s) for each value and
# `_TS_HOLE` for their time; None when the names are not distinct strings. Made for names met
# a second time: rows with nulls lack some names, and names met once (say, a random subset of
# fields per VIN) are written as cheaply by the generic encoding. Bounded.
_ROW_SHAPES: dict[tuple[str, ...], tuple[list[int] | None, bytes] | None] = {}
_NAMES_MET: set[tuple[str, ...]] = set()
_MAX_ROW_SHAPES = 256
# Never in JSON text: orjson writes U+0000 escaped.
_TS_HOLE = b"\x00"
_HEAD = b'{"schema":' + orjson.dumps(SCHEMA_VERSION) + b',"vin":'
# The last record's names and their shape, and its envelope (pod, received_at, produced_at) and
# the text that ends its record: one window's records share both, as the very same objects.
_UNSEEN = object()
_last_shape: list[tuple[object, tuple[list[int] | None, bytes] | None]] = [(_UNSEEN, None)]
_last_tail: list[tuple[object, object, object, bytes]] = [(_UNSEEN, _UNSEEN, _UNSEEN, b"")]


def _row_shape(names: tuple[str, ...]) -> tuple[list[int] | None, bytes] | None:
    if not names or len(set(names)) != len(names) or not all(type(n) is str for n in names):
        return None
    order = sorted(range(len(names)), key=names.__getitem__)
    signals = b",".join(
        orjson.dumps(names[i]).replace(b"%", b"%%") + b':{"value":%s,"ts":' + _TS_HOLE + b"}"
        for i in order
    )
    return (None if order == sorted(order) else order), signals


def _known_row_shape(names: tuple[str, ...]) -> tuple[list[int] | None, bytes] | None:
    """The shape of the names, once they were met before; None the first time."""
    last_names, shape = _last_shape[0]
    if names is last_names:
        return shape
    try:
        shape = _ROW_SHAPES[names]
    except KeyError:
        if names not in _NAMES_MET:
            if len(_NAMES_MET) >= _MAX_ROW_SHAPES:
                _NAMES_MET.clear()
            _NAMES_MET.add(names)
            return None
        if len(_ROW_SHAPES) >= _MAX_ROW_SHAPES:
            _ROW_SHAPES.clear()
        shape = _ROW_SHAPES[names] = _row_shape(names)
    _last_shape[0] = (names, shape)
    return shape


def _tail(record: AggregatedRecord) -> bytes:
    """The text after a record's signals, the same for every record of a window."""
    pod, received_at, produced_at, tail = _last_tail[0]
    if (
        record.pod is pod
        and record.received_at is received_at
        and record.produced_at is produced_at
    ):
        return tail
    tail = b"".join(
        (
            b'}},"pod":',
            orjson.dumps(record.pod),
            b',"received_at":',
            orjson.dumps(record.received_at),
            b',"produced_at":',
            orjson.dumps(record.produced_at),
            b"}",
        )
    )
    _last_tail[0] = (record.pod, record.received_at, record.produced_at, tail)
    return tail


def _encode_row(record: AggregatedRecord, signals: RowSignals) -> bytes | None:
    """The generic encoding of a record of a RowSignals, its values written by one orjson call
    into the text around them; None when the names have no shape (yet), or when a value's text
    holds a comma (a string)."""
    shape = _known_row_shape(signals.names)
    if shape is None:
        return None
    order, text = shape
    values = signals.row_values
    if order is not None:
        values = [values[i] for i in order]
    pieces = orjson.dumps(values)[1:-1].split(b",")
    if len(pieces) != len(values):
        return None
    vin = orjson.dumps(record.vin)
    return b"".join(
        (
            _HEAD,
            vin,
            b',"data":{"id":',
            vin,
            b',"signals":{',
            text.replace(_TS_HOLE, orjson.dumps(signals.ts)) % (*pieces,),
            _tail(record),
        )
    )


def _row_signals_json(signals: RowSignals) -> dict[str, dict[str, SignalValue]]:
    """`_signals_json` of a RowSignals, without a Signal per value."""
    ts = signals.ts
    ordered = sorted(zip(signals.names, signals.row_values, strict=True), key=_first)
    return {name: {"value": value, "ts": ts} for name, value in ordered}


def _first(item: tuple[str, SignalValue]) -> str:
    return item[0]


def encode_aggregated(record: AggregatedRecord) -> bytes:
    signals = record.signals
    if type(signals) is RowSignals:
        encoded = _encode_row(record, signals)
        if encoded is not None:
            return encoded
        signals_json = _row_signals_json(signals)
    else:
        signals_json = _signals_json(signals)
    return orjson.dumps(
        {
            "schema": SCHEMA_VERSION,
            "vin": record.vin,
            "data": {"id": record.vin, "signals": signals_json},
            "pod": record.pod,
            "received_at": record.received_at,
            "produced_at": record.produced_at,
        }
    )


def encode_latest(
    vin: str,
    signals: Mapping[str, Timed],
    pod: str,
    received_at: int,
    produced_at: int,
) -> bytes:
    """The latest record: every known signal, `updated_at` = newest signal ts."""
    updated_at = newest_ts(signals)
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


def decode_message(key: str | None, raw: bytes | str | None, *, now_ms: int) -> AggregatedRecord:
    """A message of the aggregated topic: its record, whose VIN must equal the message key.

    Any failure is a RecordError, so that a record that trips a bug in the decoder is
    dead-lettered (`decode_error`) instead of stopping the job.
    """
    try:
        record = decode_aggregated(raw, now_ms=now_ms)
    except RecordError:
        raise
    except Exception as exc:
        raise RecordError("decode_error", f"{type(exc).__name__}: {exc}") from exc
    if key is not None and key != record.vin:
        raise RecordError("vin_mismatch", f"message key differs from vin {record.vin!r}")
    return record
