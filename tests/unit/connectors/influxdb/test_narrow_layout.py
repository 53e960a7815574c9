"""Parsing of InfluxDB 1.x chunked JSON results (epoch=ns) for the wide and narrow layouts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bethos.config import InfluxSettings
from bethos.exceptions import ConfigError, RecordError, SourceError
from bethos.fetch_result import FetchResult, Window
from bethos.merge_rule import value_order_key
from bethos.record import MAX_NAME_LENGTH, Signal, SignalValue, check_signal_value
from bethos.resource_map import ResourceMap
from connectors.influxdb.client import (
    InfluxClient,
    NarrowLayout,
    WideLayout,
    parse_chunk,
)
from connectors.influxdb.influxql import narrow_window_query

T0 = 1_764_111_600_000_000_000  # ns
T0_MS = T0 // 1_000_000
RMAP = ResourceMap({"engine.rpm": "rpm", "vehicle.speed": "speed_kmh"}, "map.yaml")
WIDE = WideLayout("vin")
NARROW_DROP = NarrowLayout("vin", "resource", "value", RMAP, keep_unmapped=False)
NARROW_KEEP = NarrowLayout("vin", "resource", "value", RMAP, keep_unmapped=True)


def newest(result: FetchResult) -> dict[str, dict[str, Signal]]:
    """`result.latest` without the VINs that got no valid signal value."""
    return {vin: signals for vin, signals in result.latest.items() if signals}


def narrow_series(vin: str, resource: str, *values: list[Any]) -> dict[str, Any]:
    return {
        "name": "telemetry",
        "tags": {"resource": resource, "vin": vin},
        "columns": ["time", "value"],
        "values": list(values),
    }


def test_wide_chunk_each_field_is_a_signal() -> None:
    chunk = {
        "statement_id": 0,
        "series": [
            {
                "name": "telemetry",
                "tags": {"vin": "V1"},
                "columns": ["time", "door", "gear", "speed"],
                "values": [
                    [T0, True, None, 12.5],
                    [T0 + 1_500_000, None, "D", 13],
                ],
                "partial": True,
            },
            {
                "name": "telemetry",
                "tags": {"vin": "V2"},
                "columns": ["time", "door", "gear", "speed"],
                "values": [[T0 + 999_999, False, None, None]],
            },
        ],
        "partial": True,
    }
    result = parse_chunk(chunk, WIDE)
    assert result.rejects == []
    # The speed 12.5 is superseded by the newer 13 but still counted as read.
    assert result.latest == {
        "V1": {"door": (True, T0_MS), "gear": ("D", T0_MS + 1), "speed": (13, T0_MS + 1)},
        "V2": {"door": (False, T0_MS)},
    }
    assert type(result.latest["V1"]["speed"].value) is int
    assert result.readings == 5


def test_wide_chunk_rejects_rows_without_vin_and_bad_values() -> None:
    chunk = {
        "statement_id": 0,
        "series": [
            {
                "name": "telemetry",
                "tags": {"vin": ""},
                "columns": ["time", "speed"],
                "values": [[T0, 1.0], [T0 + 1, 2.0]],
            },
            {
                "name": "telemetry",
                "tags": {"vin": "V1"},
                "columns": ["time", "speed", "x" * (MAX_NAME_LENGTH + 1)],
                "values": [[T0, 3.5, 5], [T0 + 1, [1, 2], None]],
            },
        ],
    }
    result = parse_chunk(chunk, WIDE)
    # The newest speed is invalid: rejected, and the next older one is taken.
    assert result.latest == {"V1": {"speed": (3.5, T0_MS)}}
    # Every non-null value of a series with a VIN counts as read, the rejected ones too; the
    # rows of a series without a VIN are only rejects.
    assert result.readings == 3
    reasons = [(r.reason, r.detail) for r in result.rejects]
    assert reasons == [
        ("no_vin", "series has no 'vin' tag"),
        ("no_vin", "series has no 'vin' tag"),
        ("schema", "signal 'speed' value has type list"),
        ("schema", f"signal names must have 1 to {MAX_NAME_LENGTH} characters"),
    ]
    first = orjson.loads(result.rejects[0].row)
    assert first == {
        "measurement": "telemetry",
        "tags": {"vin": ""},
        "row": {"time": T0, "speed": 1.0},
    }
    assert orjson.loads(result.rejects[2].row)["row"] == {"time": T0 + 1, "speed": [1, 2]}
    assert orjson.loads(result.rejects[3].row)["row"] == {
        "time": T0,
        "x" * (MAX_NAME_LENGTH + 1): 5,
    }


def test_an_invalid_newest_value_is_rejected_and_the_next_older_valid_one_is_used() -> None:
    chunk = {
        "statement_id": 0,
        "series": [
            {
                "name": "telemetry",
                "tags": {"vin": "V1"},
                "columns": ["time", "speed", "gear"],
                "values": [
                    [T0, 1.0, {"older": "invalid"}],
                    [T0 + 1_000_000, 2.0, "D"],
                    [T0 + 2_000_000, float("inf"), ["invalid"]],
                    [T0 + 3_000_000, {"bad": 1}, None],
                    [T0 + 4_000_000, None, None],
                ],
            }
        ],
    }
    result = parse_chunk(chunk, WIDE)
    assert result.latest == {"V1": {"speed": (2.0, T0_MS + 1), "gear": ("D", T0_MS + 1)}}
    # Newest first per signal; the invalid gear at T0 is superseded by "D" and never examined.
    assert [(r.reason, orjson.loads(r.row)["row"]) for r in result.rejects] == [
        ("schema", {"time": T0 + 3_000_000, "speed": {"bad": 1}}),
        ("schema", {"time": T0 + 2_000_000, "speed": None}),  # inf is not JSON: null
        ("schema", {"time": T0 + 2_000_000, "gear": ["invalid"]}),
    ]
    assert [r.detail for r in result.rejects] == [
        "signal 'speed' value has type dict",
        "signal 'speed' value is not finite",
        "signal 'gear' value has type list",
    ]
    assert result.readings == 7


def test_a_signal_with_only_invalid_values_has_no_newest_value() -> None:
    series = {
        "name": "telemetry",
        "tags": {"vin": "V1"},
        "columns": ["time", "speed", "gear"],
        "values": [[T0, [1], "P"], [T0 + 1_000_000, {"x": 1}, None]],
    }
    result = parse_chunk({"statement_id": 0, "series": [series]}, WIDE)
    assert result.latest == {"V1": {"gear": ("P", T0_MS)}}
    assert [r.detail for r in result.rejects] == [
        "signal 'speed' value has type dict",
        "signal 'speed' value has type list",
    ]
    assert result.readings == 3


def test_narrow_chunk_maps_resources_to_signals() -> None:
    chunk = {
        "statement_id": 0,
        "series": [
            narrow_series("V1", "engine.rpm", [T0, 800], [T0 + 2_000_000, 810.5]),
            narrow_series("V1", "vehicle.speed", [T0, 42]),
            narrow_series("V2", "engine.rpm", [T0 + 5_000_000, None]),
        ],
    }
    result = parse_chunk(chunk, NARROW_DROP)
    assert result.rejects == []
    assert newest(result) == {"V1": {"rpm": (810.5, T0_MS + 2), "speed_kmh": (42, T0_MS)}}
    assert result.readings == 3  # the superseded rpm 800 included, the null one not


def test_narrow_unmapped_resources_are_dropped_to_dead_letter_or_kept() -> None:
    chunk = {
        "statement_id": 0,
        "series": [narrow_series("V1", "cabin.temp", [T0, 21.5], [T0 + 1_000_000, 22.0])],
    }
    dropped = parse_chunk(chunk, NARROW_DROP)
    assert newest(dropped) == {}
    assert dropped.readings == 0
    assert [r.reason for r in dropped.rejects] == ["unmapped_resource", "unmapped_resource"]
    assert "'cabin.temp'" in dropped.rejects[0].detail and "map.yaml" in dropped.rejects[0].detail
    assert orjson.loads(dropped.rejects[1].row) == {
        "measurement": "telemetry",
        "tags": {"resource": "cabin.temp", "vin": "V1"},
        "row": {"time": T0 + 1_000_000, "value": 22.0},
    }
    kept = parse_chunk(chunk, NARROW_KEEP)
    assert kept.rejects == []
    assert kept.latest == {"V1": {"cabin.temp": (22.0, T0_MS + 1)}}
    assert kept.readings == 2


def test_narrow_rejects_no_vin_no_resource_bad_values_and_bad_kept_names() -> None:
    chunk = {
        "statement_id": 0,
        "series": [
            narrow_series("", "engine.rpm", [T0, 800]),
            narrow_series("V1", "", [T0, 1]),
            narrow_series("V1", "engine.rpm", [T0, {"nested": 1}], [T0 + 1, "x" * 70_000]),
            narrow_series("V1", "r" * (MAX_NAME_LENGTH + 1), [T0, 1]),
        ],
    }
    result = parse_chunk(chunk, NARROW_KEEP)
    assert newest(result) == {}
    # Both engine.rpm values are invalid, so both are examined and rejected, newest first.
    assert [r.reason for r in result.rejects] == [
        "no_vin",
        "no_resource",
        "too_large",
        "schema",
        "schema",
    ]
    # The refused series (no vin, no resource) count nothing; the other values were read.
    assert result.readings == 3


def test_a_series_split_over_chunks_and_an_empty_chunk() -> None:
    result = FetchResult()
    first = {
        "statement_id": 0,
        "series": [narrow_series("V1", "engine.rpm", [T0, 1])],
        "partial": True,
    }
    second = {"statement_id": 0, "series": [narrow_series("V1", "engine.rpm", [T0 + 10**6, 2])]}
    for chunk in (first, {"statement_id": 0}, second):
        assert parse_chunk(chunk, NARROW_DROP, result) is result
    assert result.latest == {"V1": {"rpm": (2, T0_MS + 1)}}
    assert result.readings == 2
    # A later chunk with an older value does not replace the newest one.
    older = {"statement_id": 0, "series": [narrow_series("V1", "engine.rpm", [T0 - 10**6, 3])]}
    parse_chunk(older, NARROW_DROP, result)
    assert result.latest == {"V1": {"rpm": (2, T0_MS + 1)}}
    assert result.readings == 3


@pytest.mark.parametrize(
    "series",
    [
        {"name": "m", "tags": {"vin": "V"}, "columns": ["value", "time"], "values": [[1, T0]]},
        {"name": "m", "tags": {"vin": "V"}, "values": [[T0, 1]]},
        {"name": "m", "tags": {"vin": "V"}, "columns": ["time", "value"], "values": [[T0]]},
        {"name": "m", "tags": {"vin": "V"}, "columns": ["time", "value"], "values": [["2025", 1]]},
        {
            "name": "m",
            "tags": {"vin": "V", "resource": "engine.rpm"},
            "columns": ["time", "v2"],
            "values": [[T0, 1]],
        },
    ],
)
def test_a_malformed_response_discards_the_window(series: dict[str, Any]) -> None:
    layout = NARROW_DROP if "resource" in series["tags"] else WIDE
    with pytest.raises(SourceError, match="response broken"):
        parse_chunk({"statement_id": 0, "series": [series]}, layout)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["V1", "V2", ""]),
            st.sampled_from(["engine.rpm", "vehicle.speed", "unknown", ""]),
            st.integers(-(10**18), 10**18),
            st.one_of(
                st.none(),
                st.integers(-(2**63), 2**63 - 1),
                st.floats(),
                st.booleans(),
                st.text(max_size=5),
            ),
        ),
        max_size=30,
    )
)
def test_narrow_every_non_null_value_is_counted_and_the_newest_valid_one_kept(
    points: list[tuple[str, str, int, Any]],
) -> None:
    chunk = {"statement_id": 0, "series": [narrow_series(v, r, [t, x]) for v, r, t, x in points]}
    result = parse_chunk(chunk, NARROW_DROP)
    # A refused series (no vin, no resource, unmapped) rejects every row, null or not.
    refused = [p for p in points if not p[0] or p[1] not in RMAP.mapping]
    accepted = [p for p in points if p[0] and p[1] in RMAP.mapping and p[3] is not None]
    valid = [p for p in accepted if _valid(p[3])]
    assert result.readings == len(accepted)
    # Each series has one row, so its value is its newest: an invalid one is always rejected.
    assert len(result.rejects) == len(refused) + len(accepted) - len(valid)
    expected: dict[str, dict[str, tuple[type, SignalValue, int]]] = {}
    for vin, resource, ts, value in sorted(
        valid, key=lambda p: (p[2] // 1_000_000, value_order_key(p[3]))
    ):
        signal = RMAP.mapping[resource]
        expected.setdefault(vin, {})[signal] = (type(value), value, ts // 1_000_000)
    actual = {
        vin: {name: (type(s.value), s.value, s.ts) for name, s in signals.items()}
        for vin, signals in newest(result).items()
    }
    assert actual == expected


def _valid(value: object) -> bool:
    try:
        check_signal_value("s", value)
    except RecordError:
        return False
    return True


def settings(**overrides: Any) -> InfluxSettings:
    return InfluxSettings.model_validate({"pods": ["p1"], **overrides})


def test_narrow_query_quotes_names_and_binds_values() -> None:
    query = narrow_window_query("tele metry", "pod", "vin", 'res"ource', "value")
    assert query == (
        'SELECT "value"::field FROM "tele metry" WHERE "pod" = $pod AND time >= $start '
        'AND time < $end GROUP BY "vin", "res\\"ource"'
    )


def test_the_client_dispatches_on_the_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, dict[str, object]]] = []

    def chunks_of(*chunks: dict[str, Any]) -> Any:
        def query_chunks(query: str, params: dict[str, object]) -> Iterator[dict[str, Any]]:
            seen.append((query, params))
            yield from chunks

        return query_chunks

    narrow = InfluxClient(
        settings(layout="narrow", resource_tag="res", value_field="val", unmapped="keep"),
        resource_map=RMAP,
    )
    series = {
        "name": "t",
        "tags": {"vin": "V1", "res": "engine.rpm"},
        "columns": ["time", "val"],
        "values": [[T0, 7]],
    }
    monkeypatch.setattr(narrow, "query_chunks", chunks_of({"series": [series]}))
    fetched = narrow.fetch_window("p1", Window(T0_MS, T0_MS + 10))
    assert fetched.latest == {"V1": {"rpm": (7, T0_MS)}}
    assert fetched.readings == 1
    assert 'SELECT "val"::field' in seen[-1][0] and 'GROUP BY "vin", "res"' in seen[-1][0]
    assert seen[-1][1] == {"pod": "p1", "start": T0, "end": T0 + 10_000_000}

    wide = InfluxClient(settings())
    series = {"name": "t", "tags": {"vin": "V1"}, "columns": ["time", "a"], "values": [[T0, 1]]}
    monkeypatch.setattr(wide, "query_chunks", chunks_of({"series": [series]}, {"series": [series]}))
    fetched = wide.fetch_window("p1", Window(0, 1))
    assert fetched.latest == {"V1": {"a": (1, T0_MS)}}
    assert fetched.readings == 2  # the same value in two chunks: both read, one kept
    assert seen[-1][0].startswith("SELECT *::field")


def test_the_narrow_layout_needs_a_resource_map() -> None:
    with pytest.raises(ConfigError, match="resource map"):
        InfluxClient(settings(layout="narrow"))


def test_a_refused_row_reads_the_same_whatever_null_columns_its_response_has() -> None:
    def chunk(columns: list[str], values: list[object]) -> dict[str, object]:
        series = {"name": "telemetry", "tags": {"vin": ""}, "columns": columns, "values": [values]}
        return {"statement_id": 0, "series": [series]}

    before = parse_chunk(chunk(["time", "speed"], [T0, 1.0]), WIDE)
    # Another series gained a field: every series of the response now has its column.
    after = parse_chunk(chunk(["time", "rpm", "speed"], [T0, None, 1.0]), WIDE)
    assert before.rejects == after.rejects
    assert orjson.loads(after.rejects[0].row)["row"] == {"time": T0, "speed": 1.0}
