"""The JSON Schemas of schemas/ against what the code really writes: aggregated and latest
records from their encoders and the merger's flush, dead letters of every reason built where
the jobs build them; and documents the schemas must refuse (docs/CONTRACT.md)."""

from __future__ import annotations

import ast
import json
import logging
from functools import cache
from types import SimpleNamespace
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from referencing import Registry, Resource

from bethos import record
from bethos.exceptions import DeadLettered
from bethos.fetch_result import FetchResult, Window
from bethos.record import (
    INT64_MAX,
    INT64_MIN,
    MAX_NAME_LENGTH,
    MAX_STRING_VALUE_LENGTH,
    MAX_VIN_LENGTH,
    AggregatedRecord,
    Signal,
    decode_aggregated,
    encode_aggregated,
    encode_latest,
)
from bethos.record_limits import RecordLimits
from bethos.resource_map import ResourceMap
from bethos.strategies.flushing import FlushLogic, encode_batch, tombstone_json
from bethos.strategies.window_stream import WindowLogic
from bethos_flink import etl_graph, merge_function
from bethos_flink.merge_function import DEAD_LETTERS, MergeFunction
from bethos_flink.rows import KEYLESS, ORIGIN_AGGREGATED, Intake
from bethos_flink.strategies import window_stream
from connectors.influxdb.client import NarrowLayout, SeriesLayout, WideLayout, parse_chunk
from devstack import package, paths, schemas
from tests.data.bad_records import BAD_RECORDS, GOOD_RECORDS, NOW
from tests.unit.bethos_flink import harness
from tests.unit.bethos_flink.harness import Harness, Metrics
from tests.unit.bethos_flink.test_etl_graph import (
    FakeClient,
    FakeContext,
    FakeRuntime,
    run_until_settled,
)
from tests.unit.bethos_flink.test_etl_graph import settings as etl_settings

ROOT = paths.PROJECT_ROOT


@cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schemas.load(name))


def errors(name: str, doc: object) -> list[str]:
    return [error.message for error in validator(name).iter_errors(doc)]


def assert_valid(name: str, raw: bytes | str) -> dict[str, Any]:
    """The document of `raw` (the standard library's parser keeps integers exact), valid."""
    doc: dict[str, Any] = json.loads(raw)
    assert errors(name, doc) == [], raw[:300]
    return doc


# -- the files -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", schemas.NAMES)
def test_each_schema_is_a_draft_2020_12_schema(name: str) -> None:
    schema = schemas.load(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schemas.schema_path(name) == ROOT / "schemas" / f"{name}.schema.json"
    assert schemas.load_all()[name] == schema


def test_an_unknown_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="aggregated, latest, dead_letter"):
        schemas.schema_path("nope")


def test_the_schemas_are_for_users_and_tests_not_for_the_jobs() -> None:
    # Neither the jobs' zip nor the image holds them, and no job needs them.
    assert not [name for name, _ in package.package_files() if name.startswith("schemas/")]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "*" in ignored and "!schemas" not in ignored
    assert "schemas" not in (ROOT / "Dockerfile").read_text()


# -- aggregated records ------------------------------------------------------------------------

_PRINTABLE = st.characters(blacklist_categories=("Cc", "Cs"))
names = st.text(_PRINTABLE, min_size=1, max_size=MAX_NAME_LENGTH)
vins = st.text(_PRINTABLE, min_size=1, max_size=MAX_VIN_LENGTH)
times = st.integers(min_value=0, max_value=INT64_MAX)
values = (
    st.booleans()
    | st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
)
signals = st.dictionaries(names, st.builds(Signal, values, times), max_size=6)
records = st.builds(AggregatedRecord, vins, signals, st.text(_PRINTABLE, max_size=20), times, times)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("raw", GOOD_RECORDS, ids=lambda raw: raw[:30].decode(errors="replace"))
def test_the_encoder_writes_valid_aggregated_records(raw: bytes) -> None:
    doc = assert_valid("aggregated", encode_aggregated(decode_aggregated(raw)))
    assert doc["vin"] == doc["data"]["id"]


@PROPERTY
@given(records)
def test_any_aggregated_record_the_encoder_writes_is_valid_and_decodes(
    written: AggregatedRecord,
) -> None:
    raw = encode_aggregated(written)
    assert_valid("aggregated", raw)
    assert decode_aggregated(raw) == written


def test_the_longest_names_and_strings_the_decoder_takes_are_valid() -> None:
    edge = AggregatedRecord(
        "V" * MAX_VIN_LENGTH,
        {
            "n" * MAX_NAME_LENGTH: Signal("s" * MAX_STRING_VALUE_LENGTH, INT64_MAX),
            "i": Signal(-1, 0),
        },
        "",
        0,
        INT64_MAX,
    )
    raw = encode_aggregated(edge)
    assert decode_aggregated(raw) == edge
    assert_valid("aggregated", raw)


# What the decoder refuses that JSON Schema cannot say: that two values are equal (vin,
# data.id and the message key), the time now (`future_ts`), a size in bytes, and how a number
# is written (1.0 is an integer to JSON Schema; an integer literal beyond 64 bits is a number).
BEYOND_JSON_SCHEMA = {
    "vin_mismatch",
    "vin_case_mismatch",
    "duplicate_vin_key_last_differs",
    "ts_far_in_future",
    "huge_record",
    "schema_as_float",
    "int_value_2_pow_63",
    "int_value_2_pow_64_minus_1",
    "int_value_10_pow_20",
    "int_value_below_int64",
}


def _strict_json(raw: bytes | None) -> object:
    """The document of a JSON text that any parser reads alike (orjson's strict rules), or a
    marker for one that is no such text (the decoder's `invalid_json` and `encoding`)."""
    try:
        return orjson.loads(raw) if raw is not None else SimpleNamespace()
    except orjson.JSONDecodeError:
        return SimpleNamespace()


@pytest.mark.parametrize(
    ("name", "raw", "reason"),
    [case for case in BAD_RECORDS if case[0] not in BEYOND_JSON_SCHEMA],
    ids=[case[0] for case in BAD_RECORDS if case[0] not in BEYOND_JSON_SCHEMA],
)
def test_what_the_decoder_refuses_the_schema_refuses(
    name: str, raw: bytes | None, reason: str
) -> None:
    doc = _strict_json(raw)
    if isinstance(doc, SimpleNamespace):
        assert reason in ("invalid_json", "encoding", "too_deep", "schema"), name
        return
    assert errors("aggregated", doc) != [], name


def test_what_json_schema_cannot_say_is_all_in_the_corpus() -> None:
    assert {name for name, _, _ in BAD_RECORDS} >= BEYOND_JSON_SCHEMA


# -- latest records ----------------------------------------------------------------------------


class Clock:
    def __init__(self, run: Harness) -> None:
        self.run = run

    def time(self) -> float:
        return self.run.now / 1000


EVERY_SECOND = FlushLogic(1_000)


def merger(
    monkeypatch: pytest.MonkeyPatch, flush: FlushLogic = EVERY_SECOND, **options: Any
) -> Harness:
    run = Harness(MergeFunction(flush, **options), now=NOW)
    monkeypatch.setattr(merge_function, "time", Clock(run))
    return run


def message(written: AggregatedRecord, offset: int) -> tuple[str, tuple[object, ...]]:
    raw = encode_aggregated(written)
    return written.vin, (written.vin, raw, "aggregated", 0, offset, ORIGIN_AGGREGATED)


def test_the_merger_flushes_valid_latest_records(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every VIN, also the one whose only record has no signal (its updated_at is 0).
    run = merger(monkeypatch, FlushLogic(1_000, emit_all=True))
    good = [decode_aggregated(raw) for raw in GOOD_RECORDS]
    for offset, written in enumerate(good):
        run.element(*message(written, offset))
    run.advance(NOW + 1_000)
    emitted = [row for row in run.output if not isinstance(row, tuple)]
    assert len(emitted) == len({written.vin for written in good})
    for key, value in emitted:
        doc = assert_valid("latest", value)
        assert doc["vin"] == key == doc["data"]["id"]
        updated = max((s["ts"] for s in doc["data"]["signals"].values()), default=0)
        assert doc["updated_at"] == updated
    assert any(row[1].find('"signals":{}') > 0 for row in emitted)


@PROPERTY
@given(vins, st.dictionaries(names, st.tuples(values, times, times), max_size=6), times, times)
def test_any_latest_record_the_encoder_writes_is_valid(
    vin: str, state: dict[str, tuple[Any, int, int]], received_at: int, produced_at: int
) -> None:
    doc = assert_valid("latest", encode_latest(vin, state, "pod", received_at, produced_at))
    assert doc["updated_at"] == max((ts for _, ts, _ in state.values()), default=0)


def inline_validator(definition: str) -> jsonschema.Draft202012Validator:
    """A validator of one of the latest schema's `$defs` (where `#` is still the record)."""
    uri = "urn:bethos:latest"
    registry: Registry[Any] = Registry().with_resource(
        uri, Resource.from_contents(schemas.load("latest"))
    )
    return jsonschema.Draft202012Validator(
        {"$ref": f"{uri}#/$defs/{definition}"}, registry=registry
    )


def test_inline_tombstones_and_batches_are_valid_by_their_definitions() -> None:
    latest = encode_latest("V1", {"a": Signal(1, 5)}, "p", 1, 2)
    tombstone = tombstone_json("V2")
    batch = encode_batch([("V1", latest), ("V2", None)])
    assert list(inline_validator("inline_tombstone").iter_errors(json.loads(tombstone))) == []
    assert list(inline_validator("inline_batch").iter_errors(json.loads(batch))) == []
    # A tombstone object is no latest record, and a batch no tombstone.
    assert errors("latest", json.loads(tombstone)) != []
    assert not inline_validator("inline_tombstone").is_valid(json.loads(batch))
    assert not inline_validator("inline_batch").is_valid([])


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"extra": 1}, "a key the encoder never writes"),
        ({"updated_at": None}, "updated_at missing"),
        ({"data": None}, "an inline tombstone object"),
        ({"schema": 2}, "another version"),
        ({"vin": "V" * 65}, "a VIN too long"),
        ({"vin": "V1\n"}, "a control character"),
        ({"received_at": -1}, "before 1970"),
        ({"produced_at": 1.5}, "not an integer"),
        ({"data": {"id": "V1", "signals": {"a": {"value": [1], "ts": 5}}}}, "a list value"),
        ({"data": {"id": "V1", "signals": {"a": {"value": 1}}}}, "a signal without ts"),
        ({"data": {"id": "V1", "signals": {"": {"value": 1, "ts": 5}}}}, "an empty name"),
        ({"data": {"id": "V1", "signals": {"a": {"value": 1, "ts": 5, "x": 0}}}}, "extra key"),
        ({"data": {"id": "V1", "signals": {"a": {"value": "s" * 65_537, "ts": 5}}}}, "long"),
    ],
)
def test_invalid_latest_records_are_refused(change: dict[str, Any], why: str) -> None:
    doc = orjson.loads(encode_latest("V1", {"a": Signal(1, 5)}, "p", 1, 2))
    assert errors("latest", doc) == []
    for key, value in change.items():
        if value is None and key != "data":
            del doc[key]
        else:
            doc[key] = value
    assert errors("latest", doc) != [], why


def test_an_aggregated_record_is_no_latest_record_and_the_other_way_round() -> None:
    written = AggregatedRecord("V1", {"a": Signal(1, 5)}, "p", 1, 2)
    assert errors("latest", orjson.loads(encode_aggregated(written))) != []  # no updated_at
    latest = encode_latest("V1", {"a": Signal(1, 5)}, "p", 1, 2)
    assert errors("aggregated", orjson.loads(latest)) != []  # updated_at is not its key


# -- dead letters ------------------------------------------------------------------------------

REASONS = set(schemas.load("dead_letter")["properties"]["reason"]["enum"])


def assert_letter(letter: str, reason: str) -> dict[str, Any]:
    doc = assert_valid("dead_letter", letter)
    assert doc["reason"] == reason
    assert reason in REASONS
    return doc


def intake(keyed_by_message: bool = False) -> Intake:
    return Intake(Metrics(), logging.getLogger("test.schemas"), "latest_merger", keyed_by_message)


def refused(reader: Intake, key: str, raw: bytes | None, topic: str = "aggregated") -> str:
    with pytest.raises(DeadLettered) as caught:
        reader.read(key, raw, topic, 2, 40, NOW)
    return caught.value.letter


@pytest.mark.parametrize(("name", "raw", "reason"), BAD_RECORDS, ids=[c[0] for c in BAD_RECORDS])
def test_the_mergers_dead_letter_of_each_bad_record_is_valid(
    name: str, raw: bytes | None, reason: str
) -> None:
    doc = assert_letter(refused(intake(), f"bad-{name}", raw), reason)
    assert doc["origin"] == {"topic": "aggregated", "partition": 2, "offset": 40}


def test_a_keyless_message_and_a_failing_decoder_give_valid_dead_letters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert_letter(refused(intake(keyed_by_message=True), KEYLESS, GOOD_RECORDS[0]), "missing_key")

    def broken(raw: object, *, now_ms: int | None = None) -> AggregatedRecord:
        raise ValueError("a bug")

    monkeypatch.setattr(record, "decode_aggregated", broken)
    doc = assert_letter(refused(intake(), "V", GOOD_RECORDS[0]), "decode_error")
    assert doc["original_encoding"] == "utf-8"


def test_a_message_that_is_not_utf8_is_kept_as_base64_and_valid() -> None:
    doc = assert_letter(refused(intake(), "V", b"\xff\xfe\x00{"), "encoding")
    assert doc["original_encoding"] == "base64"


LIMITED = [
    ("too_many_signals", RecordLimits(max_signals=1), {"a": Signal(1, 1), "b": Signal(2, 1)}),
    ("value_too_large", RecordLimits(max_value_bytes=4), {"a": Signal("longer", 1)}),
    ("record_too_large", RecordLimits(max_record_bytes=300), {"s": Signal("x" * 400, 1)}),
]


@pytest.mark.parametrize(("reason", "limits", "signals"), LIMITED, ids=[c[0] for c in LIMITED])
def test_the_signals_a_limit_keeps_out_are_a_valid_dead_letter(
    monkeypatch: pytest.MonkeyPatch, reason: str, limits: RecordLimits, signals: dict[str, Signal]
) -> None:
    run = merger(monkeypatch, limits=limits)
    run.element(*message(AggregatedRecord("V1", signals, "p", 1, 2), 7))
    ((tag, (key, letter)),) = run.output
    assert tag is DEAD_LETTERS and key == "V1"
    doc = assert_letter(letter, reason)
    assert doc["origin"] == {"topic": "aggregated", "partition": 0, "offset": 7}
    # The signals kept out, as an aggregated record.
    assert_valid("aggregated", doc["original"])


def windows(monkeypatch: pytest.MonkeyPatch, watermark: int, limits: RecordLimits) -> Harness:
    monkeypatch.setattr(harness.TimerService, "current_watermark", lambda self: watermark)
    monkeypatch.setattr(
        harness.TimerService, "register_event_time_timer", lambda self, at: None, raising=False
    )
    logic = WindowLogic(size_ms=10_000, allowed_lateness_ms=0, limits=limits)
    return Harness(window_stream.WindowMergeFunction(logic), now=NOW)


def test_window_streams_dead_letters_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    # A record behind the watermark by more than the allowed lateness: `late`.
    run = windows(monkeypatch, watermark=1_000_000, limits=RecordLimits())
    late = encode_aggregated(AggregatedRecord("V1", {"a": Signal(1, 5_000)}, "p", 1, 2))
    run.element("V1", ("V1", late, "aggregated", 1, 9, ORIGIN_AGGREGATED))
    ((tag, (key, letter)),) = run.output
    assert tag is window_stream.DEAD_LETTERS and key == "V1"
    doc = assert_letter(letter, "late")
    assert doc["origin"] == {"topic": "aggregated", "partition": 1, "offset": 9}

    # Signals a limit keeps out when a window closes name the window.
    run = windows(monkeypatch, watermark=0, limits=RecordLimits(max_signals=1))
    two = encode_aggregated(
        AggregatedRecord("V2", {"a": Signal(1, 5), "b": Signal(2, 5)}, "p", 1, 2)
    )
    run.element("V2", ("V2", two, "aggregated", 0, 3, ORIGIN_AGGREGATED))
    assert run.output == []
    run.key = "V2"
    run.output.extend(run.function.on_timer(9_999, harness.Context(run)))
    (emission,) = [row for row in run.output if not isinstance(row, tuple)]
    assert list(assert_valid("latest", emission[1])["data"]["signals"]) == ["a"]
    ((_, (key, letter)),) = [row for row in run.output if isinstance(row, tuple)]
    doc = assert_letter(letter, "too_many_signals")
    assert (key, doc["origin"]) == ("V2", {"window_end": 10_000})


T0_NS = 1_764_111_600_000_000_000


def series(tags: dict[str, str], columns: list[str], *rows: list[Any]) -> dict[str, Any]:
    return {"name": "telemetry", "tags": tags, "columns": columns, "values": list(rows)}


RMAP = ResourceMap({"vehicle.speed": "speed_kmh"}, "map.yaml")
NARROW = NarrowLayout("vin", "resource", "value", RMAP, keep_unmapped=False)
ETL_REJECTS: list[tuple[str, SeriesLayout, dict[str, Any]]] = [
    ("no_vin", WideLayout("vin"), series({}, ["time", "a"], [T0_NS, 1.0])),
    ("no_resource", NARROW, series({"vin": "V1"}, ["time", "value"], [T0_NS, 1.0])),
    (
        "unmapped_resource",
        NARROW,
        series({"vin": "V1", "resource": "engine.secret"}, ["time", "value"], [T0_NS, 1.0]),
    ),
    ("schema", WideLayout("vin"), series({"vin": "V1"}, ["time", "n" * 257], [T0_NS, 1.0])),
    ("schema", WideLayout("vin"), series({"vin": "V1"}, ["time", "big"], [T0_NS, 2**63])),
    (
        "too_large",
        WideLayout("vin"),
        series({"vin": "V1"}, ["time", "s"], [T0_NS, "s" * (MAX_STRING_VALUE_LENGTH + 1)]),
    ),
]


@pytest.mark.parametrize(
    ("reason", "layout", "chunk"), ETL_REJECTS, ids=[case[0] for case in ETL_REJECTS]
)
def test_the_etls_dead_letter_of_each_rejected_row_is_valid(
    reason: str, layout: SeriesLayout, chunk: dict[str, Any]
) -> None:
    (reject,) = parse_chunk({"series": [chunk]}, layout).rejects
    assert reject.reason == reason
    letter = etl_graph.dead_letter(
        reject.row,
        reject.reason,
        reject.detail,
        {"pod": "p", "window_start": 0, "window_end": 9},
        NOW,
    )
    doc = assert_letter(letter, reason)
    assert json.loads(doc["original"])["measurement"] == "telemetry"


def test_the_running_etl_writes_valid_dead_letters(monkeypatch: pytest.MonkeyPatch) -> None:
    def rejected(pod: str, window: Window) -> FetchResult:
        chunk = series({"vin": "V1"}, ["time", "a", "n" * 300], [window.start * 1_000_000, 1, 2])
        return parse_chunk({"series": [chunk]}, WideLayout("vin"))

    FakeClient.opened = []
    FakeClient.fetch = staticmethod(rejected)  # type: ignore[assignment]
    monkeypatch.setattr(etl_graph, "InfluxClient", FakeClient)
    monkeypatch.setattr(etl_graph, "freeze_loaded_objects", lambda: None)
    runtime, ctx = FakeRuntime(), FakeContext()
    function = etl_graph.PodPollFunction(etl_settings())
    function.open(runtime)
    try:
        out = run_until_settled(function, ctx)
    finally:
        function.close()
    letters = [row[1] for row in out if isinstance(row, tuple) and row[0] is etl_graph.DEAD_LETTERS]
    ((key, letter),) = letters
    assert key == etl_graph.KEYLESS
    doc = assert_letter(letter, "schema")
    assert set(doc["origin"]) == {"pod", "window_start", "window_end"}
    records = [row for row in out if not isinstance(row, tuple)]
    for row in records:
        assert_valid("aggregated", row[1])
    assert records


def reasons_in_code() -> set[str]:
    """Every reason the code can give a dead letter: the literal (or module constant) first
    argument of `RecordError(...)` and `Refused(...)`, second of `dead_letter(...)`."""
    found: set[str] = set()
    positions = {"RecordError": 0, "Refused": 0, "dead_letter": 1}
    product = ("bethos", "connectors", "bethos_flink")
    for path in [path for folder in product for path in (ROOT / folder).rglob("*.py")]:
        tree = ast.parse(path.read_text(), str(path))
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            index = positions.get(str(name))
            if index is None or len(node.args) <= index:
                continue
            arg = node.args[index]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
            elif isinstance(arg, ast.Name) and arg.id in constants:
                found.add(constants[arg.id])
    return found


def test_the_schema_names_every_reason_the_code_gives_and_no_other() -> None:
    found = reasons_in_code()
    assert {"late", "missing_key", "no_vin", "record_too_large", "decode_error"} <= found
    assert found == REASONS


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"reason": "unheard_of"}, "a reason the code never gives"),
        ({"time": None}, "time missing"),
        ({"extra": 1}, "a key the code never writes"),
        ({"original_encoding": "latin-1"}, "an encoding the code never uses"),
        ({"original_encoding": "base64", "original": "not base64!"}, "bad base64"),
        ({"original_encoding": "base64", "original": "QUJD\n"}, "a newline in base64"),
        ({"origin": {"topic": "t", "partition": 0}}, "an origin without offset"),
        ({"origin": {"topic": "t", "partition": 0, "offset": 1, "pod": "p"}}, "mixed origin"),
        ({"origin": {}}, "an empty origin"),
        ({"original": None}, "original missing"),
    ],
)
def test_invalid_dead_letters_are_refused(change: dict[str, Any], why: str) -> None:
    doc = orjson.loads(refused(intake(), "V", b"{not json"))
    assert errors("dead_letter", doc) == []
    for key, value in change.items():
        if value is None:
            del doc[key]
        else:
            doc[key] = value
    assert errors("dead_letter", doc) != [], why


def test_the_contract_names_the_schema_files() -> None:
    contract = (ROOT / "docs" / "CONTRACT.md").read_text()
    for name in schemas.NAMES:
        assert f"schemas/{name}.schema.json" in contract
