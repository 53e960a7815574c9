"""The decoder's fast path (msgspec) against its checks (`_decode_checked`, orjson), document by
document: the same record, value types included, or the same RecordError, reason and detail.

The documents are written by hand (duplicate keys, escapes, number spellings, whitespace) from a
seeded random generator, valid ones and ones broken in every part of the envelope, then damaged
byte by byte; the whole run takes well under a second.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator

import pytest

from bethos import record as record_module
from bethos.exceptions import RecordError
from bethos.record import (
    INT64_MAX,
    INT64_MIN,
    MAX_FUTURE_MS,
    AggregatedRecord,
    Signal,
    SignalValue,
    _decode_checked,
    decode_aggregated,
    decode_message,
    encode_aggregated,
    encode_latest,
)

NOW = 1_764_111_601_000
DAY = MAX_FUTURE_MS

# --- a JSON writer that can write what orjson cannot: duplicate keys, any escapes, any numbers ---

# A node: ("obj", [(key, node), ...]), ("arr", [node, ...]), ("str", text) or ("lit", json text).
Node = tuple[str, object]


def obj(*pairs: tuple[str, Node]) -> Node:
    return ("obj", list(pairs))


def lit(text: str) -> Node:
    return ("lit", text)


def text(value: str) -> Node:
    return ("str", value)


_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
_SHORT_ESCAPES["\t"] = "\\t"
_MUST_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def _u_escape(char: str) -> str:
    code = ord(char)
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04X}"
    return f"\\u{code:04x}"


def _escape(value: str, rnd: random.Random) -> str:
    """A JSON string: the characters JSON needs escaped, short or as \\u, and on short strings
    sometimes any character as \\u (a surrogate pair beyond the BMP)."""
    style = rnd.random()
    if style < 0.7 or len(value) > 64:
        body = _MUST_ESCAPE.sub(lambda m: _SHORT_ESCAPES.get(m[0]) or _u_escape(m[0]), value)
    elif style < 0.85:
        body = _MUST_ESCAPE.sub(lambda m: _u_escape(m[0]), value)
    else:
        body = "".join(
            _u_escape(c) if rnd.random() < 0.3 or _MUST_ESCAPE.match(c) else c for c in value
        )
    return '"' + body + '"'


def _space(rnd: random.Random) -> str:
    return rnd.choice(["", "", "", "", " ", "\n", "\t", "\r\n  ", "  "])


def write(node: Node, rnd: random.Random, pretty: bool) -> str:
    kind, body = node

    def gap() -> str:
        return _space(rnd) if pretty else ""

    if kind == "obj":
        assert isinstance(body, list)
        items = [f"{gap()}{_escape(k, rnd)}{gap()}:{gap()}{write(v, rnd, pretty)}" for k, v in body]
        return "{" + ",".join(items) + gap() + "}"
    if kind == "arr":
        assert isinstance(body, list)
        return "[" + ",".join(gap() + write(v, rnd, pretty) for v in body) + gap() + "]"
    if kind == "str":
        assert isinstance(body, str)
        return _escape(body, rnd)
    assert isinstance(body, str)
    return body


# --- pieces of documents: mostly valid, sometimes not ---

NAMES = [
    "speed_kmh",
    "door_open",
    "gear",
    "soc",
    "n",
    "température",
    "çà et là",
    "电池温度",
    "emoji 😀",
    "with space",
    "slash/and\\back",
    'quote"d',
    "°C",
    "x" * 256,
    "é" * 256,
]
ODD_NAMES = [
    "",
    "x" * 257,
    "é" * 257,
    "tab\there",
    "nl\n",
    "nul\x00",
    "del\x7f",
    "c1\x85",
    "c1\x9f",
    "nbsp\xa0",
    "ls\u2028",
    "soft\xad",
    "zw\u200b",
    "unassigned\u0378",
    "private\ue000",
]
TEXTS = ["", "D", "P", "Zoë ✓", "a\nb", "\x00", "\x7f", "\x85", "\u2028", "😀", '"\\/']


SPECIAL_FLOATS = [
    "0.0",
    "-0.0",
    "1.0",
    "1e2",
    "1E+2",
    "-1e-2",
    "2.5e-324",
    "5e-324",
    "4.9e-324",
    "2.2250738585072011e-308",
    "1.7976931348623157e308",
    "1.7976931348623158e308",
    "9223372036854775807.0",
    "9223372036854775808.0",
    "-9223372036854775808.0",
    "-9223372036854775809.0",
    "9.223372036854775e18",
    "9.2233720368547758e18",
    "-9.2233720368547758e18",
    "9.223372036854776e18",
    "1e19",
    "1.0e20",
    "1e300",
    "1e-400",
    "0e999999",
    "1e400",
    "-1e400",
    "1e-99999999999999999999",
]


def a_float(rnd: random.Random) -> str:
    """A float literal: repr of a random double, or a spelling of one (exponent, many digits)."""
    pick = rnd.random()
    if pick < 0.5:
        return repr(round(rnd.uniform(-300, 300), rnd.randint(0, 4)))
    if pick < 0.7:
        bits = rnd.getrandbits(64)
        exponent = rnd.randint(-1074, 62) if pick < 0.65 else rnd.randint(-1074, 1023)
        value = float.fromhex(f"{'-' if bits & 1 else ''}0x1.{bits >> 12:013x}p{exponent}")
        return repr(value)
    if pick < 0.85:
        return rnd.choice(SPECIAL_FLOATS)
    digits = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 25)))
    frac = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 40)))
    literal = f"{rnd.choice(['', '-'])}{digits.lstrip('0') or '0'}.{frac}"
    if rnd.random() < 0.5:
        literal += f"{rnd.choice('eE')}{rnd.choice(['', '+', '-'])}{rnd.randint(0, 30)}"
    elif rnd.random() < 0.2:
        literal += f"e{rnd.randint(-400, 400)}"
    return literal


EDGE_INTS = [INT64_MAX, INT64_MIN, INT64_MAX + 1, INT64_MIN - 1, 2**64 - 1, 2**64, 10**20, 10**30]


def an_int(rnd: random.Random) -> str:
    pick = rnd.random()
    if pick < 0.5:
        return str(rnd.randint(-100_000, 100_000))
    if pick < 0.9:
        return str(rnd.randint(INT64_MIN, INT64_MAX))
    if pick < 0.95:
        return rnd.choice(["-0", "0", str(-(10**20))])
    return str(rnd.choice(EDGE_INTS))


def a_value(rnd: random.Random, odd: float) -> Node:
    if rnd.random() < odd:
        return rnd.choice(
            [
                lit("null"),
                lit("[]"),
                lit("[1, 2]"),
                lit("{}"),
                lit('{"nested": 1}'),
                text("x" * 65_536),
                text("x" * 65_537),
                text("é" * 65_537),
                lit("NaN"),
                lit("Infinity"),
                lit("01"),
                lit("1."),
                lit(".5"),
                lit("+1"),
                lit("1e"),
                lit("tru"),
                lit('"\\ud800"'),
                lit('"\\udc00"'),
                lit('"\\ud800\\u0041"'),
                lit('"\\x41"'),
                lit('"\\u12"'),
                lit('"tab\there"'),
                lit('"a\x01"'),
                lit("[" * 300 + "]" * 300),
                lit("[" * 2000 + "]" * 2000),
            ]
        )
    pick = rnd.random()
    if pick < 0.45:
        return lit(a_float(rnd))
    if pick < 0.7:
        return lit(an_int(rnd))
    if pick < 0.8:
        return lit(rnd.choice(["true", "false"]))
    return text(rnd.choice(TEXTS))


def a_time(rnd: random.Random, odd: float) -> Node:
    if rnd.random() < odd:
        return lit(
            rnd.choice(
                [
                    "-1",
                    "-0",
                    "1.0",
                    "1764111600000.0",
                    "1.7e12",
                    "true",
                    "false",
                    "null",
                    '"1764111600000"',
                    "[]",
                    str(INT64_MAX),
                    str(INT64_MAX + 1),
                    str(2**64),
                    str(NOW + DAY),
                    str(NOW + DAY + 1),
                    str(INT64_MIN),
                ]
            )
        )
    if rnd.random() < 0.03:  # valid without now_ms, future_ts with it, or just valid
        return lit(str(NOW + DAY + rnd.randint(-1, 2)))
    return lit(str(rnd.choice([NOW - rnd.randint(0, 10_000), 0, rnd.randint(0, NOW + DAY)])))


def a_signal(rnd: random.Random, odd: float) -> Node:
    pairs = [("value", a_value(rnd, odd)), ("ts", a_time(rnd, odd))]
    if rnd.random() < 0.2:
        rnd.shuffle(pairs)
    if rnd.random() < odd:
        pick = rnd.random()
        if pick < 0.3:
            pairs.pop(rnd.randrange(2))
        elif pick < 0.6:
            pairs.insert(rnd.randint(0, 2), (rnd.choice(["value", "ts"]), a_value(rnd, 0.5)))
        else:
            pairs.append((rnd.choice(["unit", "Value", "quality", ""]), a_value(rnd, 0.3)))
        if rnd.random() < 0.1:
            return rnd.choice([lit("5"), lit("null"), lit('"x"'), lit("[]")])
    return obj(*pairs)


def a_vin(rnd: random.Random, odd: float) -> str:
    if rnd.random() < odd:
        return rnd.choice(
            ["", "V" * 64, "V" * 65, "é" * 64, "é" * 65, "VIN\n", "\x00VIN", "VIN\x85", "VIN\xa0"]
        )
    return rnd.choice(["BENCH000000012345", "1HGCM82633A004352", "V", "Véhicule-7"])


def a_document(rnd: random.Random, odd: float) -> Node:
    """An aggregated (or latest) record; each part broken with probability about `odd`."""
    vin = a_vin(rnd, odd)
    data_id = text(vin)
    if rnd.random() < odd:
        data_id = rnd.choice(
            [text(vin.lower() + "x"), text(""), lit("null"), lit("12345"), text(vin + " ")]
        )
    names = rnd.sample(NAMES, rnd.randint(0, 6))
    names += [f"signal_{i:03d}" for i in range(rnd.choice([0, 0, 1, 5, 20]))]
    if rnd.random() < odd:
        names.append(rnd.choice(ODD_NAMES))
    if names and rnd.random() < odd:
        names.append(rnd.choice(names))  # a duplicate signal name
    rnd.shuffle(names)
    signals: Node = obj(*((name, a_signal(rnd, odd)) for name in names))
    if rnd.random() < odd / 4:
        signals = rnd.choice([lit("[]"), lit("null"), lit("{}"), lit('{"x": 1}')])
    data_pairs: list[tuple[str, Node]] = [("id", data_id), ("signals", signals)]
    if rnd.random() < odd / 2:
        data_pairs.pop(rnd.randrange(2))
    if rnd.random() < odd / 2:
        data_pairs.append((rnd.choice(["extra", "id", "signals"]), a_value(rnd, 0.5)))
    schema = lit("1")
    if rnd.random() < odd:
        schema = rnd.choice([lit("2"), lit("1.0"), lit("true"), text("1"), lit("null")])
    pairs: list[tuple[str, Node]] = [
        ("schema", schema),
        ("vin", text(vin) if rnd.random() > odd / 4 else rnd.choice([lit("1"), lit("null")])),
        ("data", obj(*data_pairs) if rnd.random() > odd / 4 else lit(rnd.choice(["[]", "null"]))),
        ("pod", text(rnd.choice(["pod-3", "", "ingest-é"]))),
        ("received_at", a_time(rnd, odd / 2)),
        ("produced_at", a_time(rnd, odd / 2)),
    ]
    if rnd.random() < 0.2:
        pairs.append(("updated_at", a_time(rnd, 0.3)))
    if rnd.random() < odd:
        pick = rnd.random()
        if pick < 0.4:
            pairs.pop(rnd.randrange(len(pairs)))
        elif pick < 0.6:
            pairs.append(("pod", rnd.choice([lit("null"), lit("3"), text("other")])))
        elif pick < 0.8:
            key = rnd.choice(["schema", "vin", "data", "received_at", "produced_at"])
            pairs.insert(rnd.randint(0, len(pairs)), (key, a_value(rnd, 0.5)))
        else:
            pairs.append((rnd.choice(["extra", "Vin", "schema "]), a_value(rnd, 0.5)))
    if rnd.random() < 0.2:
        rnd.shuffle(pairs)
    return obj(*pairs)


def damaged(raw: bytes, rnd: random.Random) -> bytes:
    """A byte-level accident: cut, junk, a byte changed, a BOM, another encoding."""
    pick = rnd.random()
    at = rnd.randint(0, len(raw))
    if pick < 0.25:
        return raw[:at]
    if pick < 0.5:
        junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 4)))
        return raw[:at] + junk + raw[at + rnd.randint(0, 4) :]
    if pick < 0.7 and raw:
        at = min(at, len(raw) - 1)
        return (
            raw[:at] + bytes([rnd.choice(b'\x00\x7f\x80\xc2\xff"\\{}[],:0-. \t')]) + raw[at + 1 :]
        )
    if pick < 0.8:
        return rnd.choice([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b" ", b"\n", b"\x0c"]) + raw
    if pick < 0.9:
        return raw + rnd.choice([b" ", b"\n", b"\x00", b"}", b",", raw, b"\x0b", b"\xc2\xa0"])
    return raw.decode("utf-8").encode(
        rnd.choice(["utf-16", "utf-16-le", "utf-32-be", "latin-1"]), "replace"
    )


# --- the comparison ---

Outcome = tuple[object, ...]


def outcome(
    decode: Callable[[bytes | str | None, int | None], AggregatedRecord],
    raw: bytes | str | None,
    now_ms: int | None,
) -> Outcome:
    try:
        record = decode(raw, now_ms)
    except RecordError as exc:
        return ("error", exc.reason, exc.detail)
    assert type(record) is AggregatedRecord
    assert type(record.signals) is dict
    assert all(type(signal) is Signal for signal in record.signals.values())
    signals = [
        (name, type(value).__name__, repr(value), type(ts).__name__, ts)
        for name, (value, ts) in record.signals.items()
    ]
    return ("record", record.vin, record.pod, record.received_at, record.produced_at, signals)


def new(raw: bytes | str | None, now_ms: int | None) -> AggregatedRecord:
    return decode_aggregated(raw, now_ms=now_ms)


def documents(seed: int, count: int) -> Iterator[bytes | str]:
    rnd = random.Random(seed)
    for _ in range(count):
        odd = rnd.choice([0.0, 0.0, 0.02, 0.1, 0.3])
        raw = write(a_document(rnd, odd), rnd, pretty=rnd.random() < 0.3).encode(
            "utf-8", "surrogatepass"
        )
        if rnd.random() < 0.15:
            raw = damaged(raw, rnd)
        if rnd.random() < 0.1:
            yield (
                raw.decode("utf-8", "surrogateescape")
                if rnd.random() < 0.9
                else raw.decode("latin-1")
            )
        else:
            yield raw


@pytest.fixture
def fallbacks(monkeypatch: pytest.MonkeyPatch) -> list[bytes | str | None]:
    """The documents the fast path left to `_decode_checked`, in order."""
    left: list[bytes | str | None] = []

    def counted(raw: bytes | str | None, now_ms: int | None) -> AggregatedRecord:
        left.append(raw)
        return _decode_checked(raw, now_ms)

    monkeypatch.setattr(record_module, "_decode_checked", counted)
    return left


@pytest.mark.parametrize("seed", range(3))
def test_the_fast_path_decodes_as_the_checks_do(seed: int, fallbacks: list[object]) -> None:
    accepted = fast = 0
    for index, raw in enumerate(documents(seed, 1_000)):
        for now_ms in (None, NOW):
            before = len(fallbacks)
            got = outcome(new, raw, now_ms)
            expected = outcome(_decode_checked, raw, now_ms)
            assert got == expected, (index, raw[:300])
            accepted += got[0] == "record"
            fast += len(fallbacks) == before
    # Both paths had their share: the comparison means something.
    assert fast > 300 and accepted - fast > 100 and accepted < 1_500, (fast, accepted)


# Literals each parser may take differently: msgspec skips an unknown field without the checks it
# makes on a value it decodes (UTF-8, range of numbers), and each reads numbers its own way.
TRICKY_LITERALS = [
    b'"\xff"',
    b'"\xed\xa0\x80"',
    b'"\xc0\xaf"',
    b'"\xf4\x90\x80\x80"',
    b'"\\ud800"',
    b'"\\udc00"',
    b'"\\ud83d\\ude00"',
    b'"a\x01"',
    b'"a\x7f\xc2\x85"',
    b'"\\u0000"',
    b"1e400",
    b"-1e400",
    b"1e-400",
    b"100000000000000000000",
    b"-9223372036854775809",
    b"9223372036854775808",
    b"18446744073709551616",
    b"1" + b"0" * 400,
    b"9223372036854775808.0",
    b"-0",
    b"-0.0",
    b"0.1e1",
    b"1E-2",
    b"01",
    b"1.",
    b"-",
    b"NaN",
    b"[" * 1_030 + b"]" * 1_030,
    b"[" * 500 + b"]" * 500,
    b'{"k":1,}',
    b"[1,]",
    b"null",
    b"true",
    b"{}",
    b'"x"',
]
_BASE = (
    b'{"schema":1,"vin":"V1","data":{"id":"V1","signals":{"s":{"value":@VALUE@,"ts":5@SIGNAL@}}'
    b'@DATA@},"pod":"p","received_at":1,"produced_at":2@TOP@}'
)
_SLOTS = ["@VALUE@", "@SIGNAL@", "@DATA@", "@TOP@"]


def _placed(slot: str, literal: bytes) -> bytes:
    raw = _BASE
    for other in _SLOTS:
        if other == slot:
            fill = literal if slot == "@VALUE@" else b',"extra":' + literal
        else:
            fill = b"1" if other == "@VALUE@" else b""
        raw = raw.replace(other.encode(), fill)
    return raw


@pytest.mark.parametrize("slot", [*_SLOTS, "updated_at"])
def test_every_tricky_literal_anywhere_decodes_as_the_checks_do(slot: str) -> None:
    for literal in TRICKY_LITERALS:
        if slot == "updated_at":
            raw = _placed("@TOP@", literal).replace(b'"extra"', b'"updated_at"')
        else:
            raw = _placed(slot, literal)
        for now_ms in (None, NOW):
            assert outcome(new, raw, now_ms) == outcome(_decode_checked, raw, now_ms), raw[:80]


# Every character where the checks look for control characters: C0, DEL, C1 and their
# neighbours, written raw where JSON allows it or escaped, in the VIN, a name, a value, the pod;
# with and without another escape in the document (the fast path then looks at each name).
CHARACTERS = [chr(c) for c in range(0x00, 0x21)] + [chr(c) for c in range(0x7E, 0xA2)]
CHARACTERS += ["\xad", "\u2028", "\u0378", "\ue000", "é", "°", "😀", "\\", '"', "/"]


def _with_char(where: str, char: str, escaped: bool, other_escape: bool) -> bytes:
    def put(value: str) -> str:
        if escaped or ord(char) < 0x20 or char in '"\\':
            return value.replace("@", f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else char)
        return value.replace("@", char)

    vin = put("V@1") if where == "vin" else "V1"
    name = put("s@") if where == "name" else "s"
    value = f'"{put("a@")}"' if where == "value" else "1"
    pod = put("p@") if where == "pod" else ("p\\/" if other_escape else "p")
    return (
        f'{{"schema":1,"vin":"{vin}","data":{{"id":"{vin}","signals":{{"{name}":'
        f'{{"value":{value},"ts":5}}}}}},"pod":"{pod}","received_at":1,"produced_at":2}}'
    ).encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("where", ["vin", "name", "value", "pod"])
def test_control_characters_anywhere_decode_as_the_checks_do(where: str) -> None:
    for char in CHARACTERS:
        for escaped in (False, True):
            for other_escape in (False, True):
                raw = _with_char(where, char, escaped, other_escape)
                assert outcome(new, raw, None) == outcome(_decode_checked, raw, None), raw


def test_the_dead_letter_corpus_and_the_good_records_decode_as_the_checks_do() -> None:
    from tests.data.bad_records import BAD_RECORDS, GOOD_RECORDS
    from tests.data.bad_records import NOW as CORPUS_NOW

    for raw in [raw for _, raw, _ in BAD_RECORDS] + GOOD_RECORDS:
        for now_ms in (None, CORPUS_NOW):
            assert outcome(new, raw, now_ms) == outcome(_decode_checked, raw, now_ms)


def test_the_records_bethos_writes_take_the_fast_path(fallbacks: list[object]) -> None:
    rnd = random.Random(7)
    values: list[SignalValue] = [57.31, -0.5, 0, 10**12, True, False, "D", ""]
    for count in (0, 1, 5, 20, 300):
        signals = {
            f"signal_{i}": Signal(rnd.choice(values), NOW - rnd.randint(0, 5_000))
            for i in range(count)
        }
        record = AggregatedRecord("BENCH000000012345", signals, "pod-3", NOW - 200, NOW - 100)
        assert decode_message("BENCH000000012345", encode_aggregated(record), now_ms=NOW) == record
        latest = encode_latest(record.vin, signals, record.pod, NOW - 200, NOW - 100)
        assert decode_aggregated(latest).signals == signals
    assert fallbacks == []


def test_a_record_built_by_the_fast_path_is_an_ordinary_record() -> None:
    raw = encode_aggregated(AggregatedRecord("V", {"s": Signal(1.5, 2)}, "p", 3, 4))
    record = decode_aggregated(raw)
    assert record == AggregatedRecord("V", {"s": Signal(1.5, 2)}, "p", 3, 4)
    assert hash(record.vin) == hash("V") and repr(record).startswith("AggregatedRecord(vin='V'")
    assert record.signals["s"].value == 1.5 and record.signals["s"]._fields == ("value", "ts")
    with pytest.raises(AttributeError):
        record.vin = "W"  # type: ignore[misc]
