"""The offline profile of the ETL's read path: its response bytes read as InfluxDB's, and a run."""

from __future__ import annotations

import orjson

from connectors.influxdb.client import response_lines
from devstack.bench.etl_profile import http_response, influx_lines, plain_client, profile, streamed


def test_the_response_is_influxdbs_chunked_json_one_series_per_line() -> None:
    lines = influx_lines(vins=30, pods=3, pod=1, signals=4)
    assert len(lines) == 10 and all(line.endswith(b"}]}\n") for line in lines)
    first = orjson.loads(lines[0])["results"][0]
    assert first["partial"] is True and "partial" not in orjson.loads(lines[-1])["results"][0]
    series = first["series"][0]
    assert series["tags"] == {"vin": "B0000000000000001"}
    assert series["columns"] == ["time", "s00", "s01", "s02", "s03"]
    assert len(series["values"]) == 1 and len(series["values"][0]) == 5
    raw = http_response(lines)
    assert list(response_lines(streamed(raw))) == [line.rstrip(b"\n") for line in lines]
    assert plain_client(raw) == 10 * 4


def test_a_profile_runs_every_stage() -> None:
    report = profile(vins=60, pods=3, signals=3, runs=1)
    assert list(report["stages"]) == [
        "lines",
        "query_chunks",
        "fetch_window",
        "read_window",
        "settle",
        "record_rows",
    ]
    assert report["plain_client_ms"] > 0 and report["etl_ms"] > 0
