"""Parsing of InfluxDB 1.x chunked JSON results (epoch=ns) for the wide and narrow layouts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bethos.config import InfluxSettings
from bethos.exceptions import ConfigError, SourceError
from bethos.poller import FetchResult, Reading, Window
from bethos.record import MAX_NAME_LENGTH
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
    assert result.readings == [
        Reading("V1", "door", True, T0_MS),
        Reading("V1", "speed", 12.5, T0_MS),
        Reading("V1", "gear", "D", T0_MS + 1),
        Reading("V1", "speed", 13, T0_MS + 1),
        Reading("V2", "door", False, T0_MS),
    ]


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
                "values": [[T0, [1, 2], 5], [T0 + 1, 3.5, None]],
            },
        ],
    }
    result = parse_chunk(chunk, WIDE)
    assert result.readings == [Reading("V1", "speed", 3.5, T0_MS)]
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
    assert orjson.loads(result.rejects[2].row)["row"] == {"time": T0, "speed": [1, 2]}


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
    assert result.readings == [
        Reading("V1", "rpm", 800, T0_MS),
        Reading("V1", "rpm", 810.5, T0_MS + 2),
        Reading("V1", "speed_kmh", 42, T0_MS),
    ]


def test_narrow_unmapped_resources_are_dropped_to_dead_letter_or_kept() -> None:
    chunk = {
        "statement_id": 0,
        "series": [narrow_series("V1", "cabin.temp", [T0, 21.5], [T0 + 1_000_000, 22.0])],
    }
    dropped = parse_chunk(chunk, NARROW_DROP)
    assert dropped.readings == []
    assert [r.reason for r in dropped.rejects] == ["unmapped_resource", "unmapped_resource"]
    assert "'cabin.temp'" in dropped.rejects[0].detail and "map.yaml" in dropped.rejects[0].detail
    assert orjson.loads(dropped.rejects[1].row) == {
        "measurement": "telemetry",
        "tags": {"resource": "cabin.temp", "vin": "V1"},
        "row": {"time": T0 + 1_000_000, "value": 22.0},
    }
    kept = parse_chunk(chunk, NARROW_KEEP)
    assert kept.rejects == []
    assert kept.readings == [
        Reading("V1", "cabin.temp", 21.5, T0_MS),
        Reading("V1", "cabin.temp", 22.0, T0_MS + 1),
    ]


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
    assert result.readings == []
    assert [r.reason for r in result.rejects] == [
        "no_vin",
        "no_resource",
        "schema",
        "too_large",
        "schema",
    ]


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
    assert [r.value for r in result.readings] == [1, 2]


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
def test_narrow_every_non_null_value_is_a_reading_or_a_reject(
    points: list[tuple[str, str, int, Any]],
) -> None:
    chunk = {"statement_id": 0, "series": [narrow_series(v, r, [t, x]) for v, r, t, x in points]}
    result = parse_chunk(chunk, NARROW_DROP)
    # A refused series (no vin, no resource, unmapped) rejects every row, null or not.
    expected = [p for p in points if p[3] is not None or not p[0] or p[1] not in RMAP.mapping]
    assert len(result.readings) + len(result.rejects) == len(expected)
    for reading in result.readings:
        assert reading.signal in {"rpm", "speed_kmh"} and reading.vin


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
    assert narrow.fetch_window("p1", Window(T0_MS, T0_MS + 10)).readings == [
        Reading("V1", "rpm", 7, T0_MS)
    ]
    assert 'SELECT "val"::field' in seen[-1][0] and 'GROUP BY "vin", "res"' in seen[-1][0]
    assert seen[-1][1] == {"pod": "p1", "start": T0, "end": T0 + 10_000_000}

    wide = InfluxClient(settings())
    series = {"name": "t", "tags": {"vin": "V1"}, "columns": ["time", "a"], "values": [[T0, 1]]}
    monkeypatch.setattr(wide, "query_chunks", chunks_of({"series": [series]}, {"series": [series]}))
    assert len(wide.fetch_window("p1", Window(0, 1)).readings) == 2
    assert seen[-1][0].startswith("SELECT *::field")


def test_the_narrow_layout_needs_a_resource_map() -> None:
    with pytest.raises(ConfigError, match="resource map"):
        InfluxClient(settings(layout="narrow"))
