"""The common series is read by a fast path: in the wide layout, a new VIN's one row of plain
values into RowSignals, encoded around one orjson call; in the narrow layout, one valid value of
a known resource. Everything it gives must equal what the general path (`_parse_series`, dicts
of Signals, the generic encoding) gives for the same input."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bethos.exceptions import SourceError
from bethos.fetch_result import FetchResult, Tally, Window
from bethos.record import (
    MAX_NAME_LENGTH,
    AggregatedRecord,
    RowSignals,
    aggregated_record,
    encode_aggregated,
)
from bethos.resource_map import ResourceMap
from bethos.source.poller import aggregate
from bethos.source.window_reads import read_window
from connectors.influxdb import client as influx_client
from connectors.influxdb.client import NarrowLayout, WideLayout, parse_chunk, parse_chunks
from devstack.bench.etl_profile import START_MS, http_response, influx_lines, offline_client

T0 = 1_764_111_600_000_000_000  # ns


@contextmanager
def general_path_only() -> Iterator[None]:
    """The reads as they were before the fast path: every series through `_parse_series`."""
    with (
        mock.patch.object(influx_client, "_plain_row_reader", return_value=lambda series: False),
        mock.patch.object(influx_client, "_narrow_row_reader", return_value=None),
    ):
        yield


def plain(result: FetchResult) -> dict[str, list[tuple[str, type, Any, int]]]:
    """`result.latest` with each value's type, in the order of its signals."""
    return {
        vin: [(name, type(s.value), s.value, s.ts) for name, s in signals.items()]
        for vin, signals in result.latest.items()
    }


def both_ways(chunks: list[dict[str, Any]], tally: Tally | None) -> tuple[FetchResult, FetchResult]:
    fast = parse_chunks(chunks, WideLayout("vin"), None, tally)
    with general_path_only():
        general = parse_chunks(chunks, WideLayout("vin"), None, tally)
    return fast, general


def assert_same(fast: FetchResult, general: FetchResult) -> None:
    assert plain(fast) == plain(general)
    assert fast.readings == general.readings
    assert fast.rejects == general.rejects
    assert fast.counts == general.counts
    records = [encode_aggregated(r) for r in aggregate(fast, "p", 7, 8)]
    assert records == [encode_aggregated(r) for r in aggregate(general, "p", 7, 8)]


values = st.one_of(
    st.none(),
    st.floats(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
)
names = st.one_of(
    st.sampled_from(["a", "b", "c", "speed", "z%s", 'q"', "x,y"]),
    st.sampled_from(["a", "b", "c", "speed", "z%s", 'q"', "x,y"]),
    st.text(min_size=0, max_size=4),
    st.just("n" * (MAX_NAME_LENGTH + 1)),
)


# What InfluxDB sends: numbers, booleans and nulls (strings are left to the general path).
plain_values = st.one_of(
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
)


@st.composite
def series(draw: st.DrawFn, columns: list[str]) -> dict[str, Any]:
    rows = draw(st.sampled_from([1, 1, 1, 0, 2, 3]))
    width = max(1, len(columns) + draw(st.sampled_from([0, 0, 0, 0, -1, 1])))
    tags = draw(st.sampled_from([{"vin": "V1"}, {"vin": "V2"}, {"vin": "V3"}, {"vin": ""}, {}]))
    times = draw(st.lists(st.integers(T0 - 10**10, T0 + 10**10), min_size=rows, max_size=rows))
    kinds = draw(st.sampled_from([plain_values, plain_values, values]))
    body = [
        [t, *draw(st.lists(kinds, min_size=width - 1, max_size=width - 1))] for t in sorted(times)
    ]
    return {"name": "m", "tags": tags, "columns": columns, "values": body}


@st.composite
def chunks(draw: st.DrawFn) -> list[dict[str, Any]]:
    # Mostly one set of columns, as in a response; now and then another (a new field).
    first, second = (
        ["time", *draw(st.lists(names, max_size=4, unique=draw(st.booleans())))] for _ in range(2)
    )
    columns = st.sampled_from([first, first, first, second])
    many = draw(st.lists(columns.flatmap(series), min_size=1, max_size=6))
    return [{"statement_id": 0, "series": [s]} for s in many]


def read_all(
    chunks: list[dict[str, Any]], tally: Tally | None, by_chunk: bool
) -> FetchResult | str:
    """What reading the chunks gives: the result, or the error of a broken response; chunk by
    chunk (`parse_chunk`), or as one response (`parse_chunks`)."""
    result = FetchResult()
    try:
        if by_chunk:
            for chunk in chunks:
                parse_chunk(chunk, WideLayout("vin"), result, tally)
        else:
            parse_chunks(chunks, WideLayout("vin"), result, tally)
    except SourceError as exc:
        return str(exc)
    return result


@settings(max_examples=400)
@given(chunks(), st.booleans(), st.booleans())
def test_any_wide_series_reads_the_same_both_ways(
    chunks: list[dict[str, Any]], tally: bool, by_chunk: bool
) -> None:
    counted = Tally(1_000, T0 // 1_000_000) if tally else None
    fast = read_all(chunks, counted, by_chunk)
    with general_path_only():
        general = read_all(chunks, counted, by_chunk)
    if isinstance(fast, str) or isinstance(general, str):
        assert fast == general
    else:
        assert_same(fast, general)


def test_the_common_row_is_read_into_row_signals() -> None:
    row = [T0 + 5_000_000, 1.5, None, 7, True]
    chunk = {
        "statement_id": 0,
        "series": [
            {
                "name": "m",
                "tags": {"vin": "V"},
                "columns": ["time", "a", "b", "c", "d"],
                "values": [row],
            }
        ],
    }
    fast, general = both_ways([chunk], Tally(10_000, T0 // 1_000_000))
    signals = fast.latest["V"]
    assert type(signals) is RowSignals
    assert signals.names == ("a", "c", "d") and list(signals.row_values) == [1.5, 7, True]
    assert signals == {
        "a": (1.5, T0 // 1_000_000 + 5),
        "c": (7, T0 // 1_000_000 + 5),
        "d": (True, T0 // 1_000_000 + 5),
    }
    assert fast.readings == 3 and fast.counts == {T0 // 1_000_000: 3}
    assert_same(fast, general)


def test_a_vin_read_again_in_a_later_chunk_keeps_the_newest_values() -> None:
    def chunk(ns: int, *row: object) -> dict[str, Any]:
        s = {
            "name": "m",
            "tags": {"vin": "V"},
            "columns": ["time", "a", "b"],
            "values": [[ns, *row]],
        }
        return {"statement_id": 0, "series": [s]}

    chunks = [
        chunk(T0 + 2_000_000, 1.0, 2.0),
        chunk(T0 + 1_000_000, 9.0, None),
        chunk(T0 + 3_000_000, None, "x"),
    ]
    fast, general = both_ways(chunks, None)
    assert plain(fast) == {
        "V": [("a", float, 1.0, T0 // 10**6 + 2), ("b", str, "x", T0 // 10**6 + 3)]
    }
    assert_same(fast, general)


@pytest.mark.parametrize("chunks", [1, 2])
def test_a_window_of_the_benchmarks_data_gives_the_same_records_and_rejects(chunks: int) -> None:
    """Response bytes as InfluxDB sends them, with bad rows among the good ones, read through
    the client both ways: the same records, byte for byte, the same rejects and counts. In two
    chunks, the stand-in server answers both with the same bytes: every VIN is read twice."""
    lines = influx_lines(vins=400, pods=2, signals=6)
    columns = b'"columns":["time","s00","s01","s02","s03","s04","s05"]'
    bad = [
        # a null, an integer, a boolean and a string among the values
        (b'[[1764111600001000000,null,2,true,"D",5.5,6.25]]', b"V-mixed"),
        # an integer beyond int64, a list: rejected (schema), the valid ones kept
        (b"[[1764111600002000000,9223372036854775808,[1],3.5,4.5,5.5,6.5]]", b"V-bad"),
        # two rows: the newest non-null value of each signal
        (
            b"[[1764111600003000000,1,2,3,4,5,6],[1764111600004000000,null,20,30,40,50,60]]",
            b"V-two",
        ),
        # no VIN: every row rejected
        (b"[[1764111600005000000,1,2,3,4,5,6]]", b""),
    ]
    for values, vin in bad:
        lines.insert(
            3,
            b'{"results":[{"statement_id":0,"series":[{"name":"telemetry","tags":{"vin":"'
            + vin
            + b'"},'
            + columns
            + b',"values":'
            + values
            + b'}],"partial":true}]}\n',
        )
    # a column whose name is refused: every series of the response has it
    lines.append(
        b'{"results":[{"statement_id":0,"series":[{"name":"telemetry","tags":{"vin":"V-name"},'
        b'"columns":["time","' + b"n" * (MAX_NAME_LENGTH + 1) + b'","s00"],'
        b'"values":[[1764111600006000000,1.5,2.5]]}]}]}\n'
    )
    raw = http_response(lines)
    window = Window(START_MS, START_MS + 10_000)
    tally = Tally(10_000, START_MS)

    def read() -> tuple[list[bytes], FetchResult]:
        client = offline_client(raw)
        fetch = functools.partial(client.fetch_window, tally=tally)
        found = read_window(fetch, "pod-0", window, 10_000 // chunks).result
        assert found is not None
        return [encode_aggregated(r) for r in aggregate(found, "pod-0", 9, 10)], found

    records, fast = read()
    with general_path_only():
        expected, general = read()
    assert records == expected
    assert len(records) == 200 + 4  # the pod's VINs, mixed, bad, two rows, the refused name
    assert fast.rejects == general.rejects and len(fast.rejects) == 4 * chunks
    assert fast.readings == general.readings and fast.counts == general.counts
    read_as_rows = sum(type(s) is RowSignals for s in fast.latest.values())
    assert read_as_rows == (200 if chunks == 1 else 0)  # the clean VINs


record_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.text(max_size=4),
)


@settings(max_examples=300)
@given(
    st.dictionaries(st.text(min_size=1, max_size=5), record_values, min_size=1, max_size=8),
    st.integers(0, 2**63 - 1),
    st.text(max_size=4),
    st.text(max_size=4),
)
def test_a_record_of_row_signals_encodes_as_one_of_a_dict(
    signals: dict[str, Any], ts: int, vin: str, pod: str
) -> None:
    row = RowSignals(tuple(signals), list(signals.values()), ts)
    expected = encode_aggregated(AggregatedRecord(vin, row.as_dict(), pod, 5, ts))
    # The first time names are met, and once they have a shape.
    for _ in range(3):
        assert encode_aggregated(AggregatedRecord(vin, row, pod, 5, ts)) == expected
    assert orjson.loads(expected)["data"]["signals"] == {
        name: {"value": value, "ts": ts} for name, value in signals.items()
    }


def test_row_signals_are_a_mapping_of_signals() -> None:
    row = RowSignals(("b", "a"), [1.5, True], 7)
    assert row == {"b": (1.5, 7), "a": (True, 7)} and row == {"b": (1.5, 7), "a": (True, 7)}
    assert list(row) == ["b", "a"] and len(row) == 2 and "a" in row and "c" not in row
    assert row["a"].value is True and row.get("c") is None
    assert list(row.items()) == [("b", (1.5, 7)), ("a", (True, 7))]
    assert repr(row) == "RowSignals({'b': Signal(value=1.5, ts=7), 'a': Signal(value=True, ts=7)})"
    result = FetchResult(latest={"V": row})
    result.offer("V", "a", False, 8)
    assert result.latest == {"V": {"b": (1.5, 7), "a": (False, 8)}}
    assert type(result.latest["V"]) is dict and row == {"b": (1.5, 7), "a": (True, 7)}


def test_merging_reads_of_rows_keeps_the_newest_of_each_signal() -> None:
    first = FetchResult(latest={"V": RowSignals(("a", "b"), [1, 2], 10)}, readings=2)
    second = FetchResult(
        latest={"V": RowSignals(("a", "c"), [3, 4], 11), "W": RowSignals(("a",), [5], 1)}
    )
    first.merge(second)
    assert first.latest == {"V": {"a": (3, 11), "b": (2, 10), "c": (4, 11)}, "W": {"a": (5, 1)}}
    empty = FetchResult()
    empty.merge(first)
    assert empty.latest is first.latest and empty.readings == 2


def test_records_of_windows_in_turn_encode_as_the_generic_encoding() -> None:
    """The encoder keeps the last names and envelope it wrote; records of other windows, pods
    and names in turn are written as the generic encoding writes them."""
    names, other = ("a", "b"), ("b", "c%")
    records = []
    for window in range(4):
        pod, now = f"pod-{window % 2}", 10**12 + window
        for vin in ("V1", 'V"2'):
            row = RowSignals(names if vin == "V1" else other, [window, vin == "V1"], now - 5)
            records.append(aggregated_record(vin, row, pod, now, now + window))
    expected = [
        encode_aggregated(
            AggregatedRecord(r.vin, dict(r.signals.items()), r.pod, r.received_at, r.produced_at)
        )
        for r in records
    ]
    for _ in range(2):
        assert [encode_aggregated(r) for r in records] == expected
        assert [encode_aggregated(r) for r in reversed(records)] == expected[::-1]


RMAP = ResourceMap({"engine.rpm": "rpm", "vehicle.speed": "speed", "long": "n" * 300}, "map.yaml")


@st.composite
def narrow_chunks(draw: st.DrawFn) -> list[dict[str, Any]]:
    series = []
    for _ in range(draw(st.integers(1, 12))):
        rows = draw(st.sampled_from([1, 1, 1, 0, 2]))
        times = draw(st.lists(st.integers(T0 - 10**10, T0 + 10**10), min_size=rows, max_size=rows))
        kinds = draw(st.sampled_from([plain_values, plain_values, values]))
        series.append(
            {
                "name": "m",
                "tags": {
                    "vin": draw(st.sampled_from(["V1", "V2", ""])),
                    "resource": draw(
                        st.sampled_from(["engine.rpm", "vehicle.speed", "x", "", "long"])
                    ),
                },
                "columns": draw(st.sampled_from([["time", "value"]] * 4 + [["time", "other"]])),
                "values": [[t, draw(kinds)] for t in sorted(times)],
            }
        )
    return [{"statement_id": 0, "series": [s]} for s in series]


@settings(max_examples=300)
@given(narrow_chunks(), st.booleans(), st.booleans())
def test_any_narrow_series_reads_the_same_both_ways(
    chunks: list[dict[str, Any]], keep: bool, tally: bool
) -> None:
    layout = NarrowLayout("vin", "resource", "value", RMAP, keep_unmapped=keep)
    counted = Tally(1_000, T0 // 1_000_000) if tally else None

    def read() -> FetchResult | str:
        try:
            return parse_chunks(chunks, layout, None, counted)
        except SourceError as exc:
            return str(exc)

    fast = read()
    with general_path_only():
        general = read()
    if isinstance(fast, str) or isinstance(general, str):
        assert fast == general
    else:
        assert_same(fast, general)
