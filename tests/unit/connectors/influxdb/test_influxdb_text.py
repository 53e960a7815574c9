from __future__ import annotations

import pytest

from connectors.influxdb.influxql import quote_identifier, wide_window_query, window_params
from connectors.influxdb.writer import Point, line_protocol


def test_identifiers_are_quoted_and_escaped() -> None:
    assert quote_identifier("telemetry") == '"telemetry"'
    assert quote_identifier('a"b\\c') == '"a\\"b\\\\c"'
    with pytest.raises(ValueError):
        quote_identifier("")
    with pytest.raises(ValueError):
        quote_identifier("a\nb")


def test_the_pod_is_bound_never_pasted() -> None:
    hostile = "x' OR 1=1; DROP DATABASE telemetry; --"
    query = wide_window_query("m", "pod", "vin")
    assert "$pod" in query and hostile not in query
    params = window_params(hostile, 1, 2)
    assert params == {"pod": hostile, "start": 1_000_000, "end": 2_000_000}


def test_line_protocol_escapes_and_types() -> None:
    point = Point(
        "tele metry",
        {"pod": "a,b", "vin": "V 1"},
        {"speed": 1.5, "odo": 7, "door": True, "gear": 'say "hi"'},
        123,
    )
    assert line_protocol(point) == (
        'tele\\ metry,pod=a\\,b,vin=V\\ 1 speed=1.5,odo=7i,door=true,gear="say \\"hi\\"" 123'
    )
