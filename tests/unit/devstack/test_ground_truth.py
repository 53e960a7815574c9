"""verify's ground truth against a fake InfluxDB: the queries it sends, and the newest-wins rule.

The fake answers `/query` over real HTTP, one JSON document a line like a chunked response.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bethos.config import EtlSettings, InfluxSettings
from bethos.exceptions import ConfigError
from bethos.record import Signal
from bethos.resource_map import ResourceMap
from devstack.cli import data
from devstack.exceptions import GroundTruthError
from devstack.ground_truth import newest_values

MS = 1_000_000  # nanoseconds
# (status, the lines of the body) for one request's form fields
Answer = Callable[[dict[str, str]], tuple[int, list[Any]]]


@dataclass
class FakeInflux:
    url: str
    answer: Answer = lambda form: (200, [{"results": [{"statement_id": 0}]}])
    requests: list[dict[str, str]] = field(default_factory=list)

    @property
    def queries(self) -> list[str]:
        return [request["q"] for request in self.requests]


@pytest.fixture
def influx() -> Iterator[FakeInflux]:
    fake: FakeInflux

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            body = self.rfile.read(length).decode()
            form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
            form["path"] = self.path
            form["authorization"] = self.headers.get("Authorization", "")
            fake.requests.append(form)
            status, lines = fake.answer(form)
            payload = b"".join(
                (line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n"
                for line in lines
            )
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake = FakeInflux(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


def settings(influx: FakeInflux, **overrides: Any) -> InfluxSettings:
    return InfluxSettings(**{"url": influx.url, "database": "db", "pods": ["a", "b"], **overrides})


def one_result(*series: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {"statement_id": 0, "series": list(series)}
    if partial:
        result["partial"] = True
    return {"results": [result]}


def field_keys(*names: str) -> dict[str, Any]:
    values = [[name, "float"] for name in names]
    return one_result({"name": "m", "columns": ["fieldKey", "fieldType"], "values": values})


def last(tags: dict[str, str], time_ns: int, value: object) -> dict[str, Any]:
    return {"name": "m", "tags": tags, "columns": ["time", "last"], "values": [[time_ns, value]]}


def wide_answer(by_field: dict[str, list[dict[str, Any]]]) -> Answer:
    """SHOW FIELD KEYS lists the fields; `last("F"::field)` answers by_field[F] in one chunk."""

    def answer(form: dict[str, str]) -> tuple[int, list[Any]]:
        if form["q"].startswith("SHOW FIELD KEYS"):
            return 200, [field_keys(*by_field)]
        name = form["q"].split('"')[1]
        return 200, [one_result(*by_field[name])]

    return answer


def test_one_last_query_per_field_grouped_by_vin_and_pod_with_the_pods_bound(
    influx: FakeInflux,
) -> None:
    influx.answer = wide_answer({"speed": [], "gear": []})
    config = InfluxSettings(
        url=influx.url + "/",
        database="tele db",
        measurement='tele"m',
        pod_tag="po\\d",
        vin_tag="car vin",
        pods=["a", "b 'c' \"d\""],
    )
    assert newest_values(config) == {}
    where = '("po\\\\d" = $pod0 OR "po\\\\d" = $pod1)'
    assert influx.queries == [
        'SHOW FIELD KEYS FROM "tele\\"m"',
        f'SELECT last("gear"::field) FROM "tele\\"m" WHERE {where} GROUP BY "car vin", "po\\\\d"',
        f'SELECT last("speed"::field) FROM "tele\\"m" WHERE {where} GROUP BY "car vin", "po\\\\d"',
    ]
    for request in influx.requests:
        assert request["path"] == "/query"
        assert request["db"] == "tele db"
        assert (request["epoch"], request["chunked"]) == ("ns", "true")
        assert request["authorization"] == ""
    assert [json.loads(r["params"]) for r in influx.requests[1:]] == [
        {"pod0": "a", "pod1": "b 'c' \"d\""}
    ] * 2


@pytest.mark.parametrize("order", [1, -1], ids=["as-answered", "reversed"])
def test_the_newest_point_wins_and_equal_times_take_the_larger_value(
    influx: FakeInflux, order: int
) -> None:
    answers = {
        # pod b's point is newer by a millisecond, though smaller
        "speed": [last({"vin": "V", "pod": "a"}, 1_000 * MS, 9.5),
                  last({"vin": "V", "pod": "b"}, 1_001 * MS, 2.0)],
        # the same millisecond (records carry ms): the larger value wins, as in the merge rule
        "gear": [last({"vin": "V", "pod": "a"}, 2_000 * MS + 900_000, "D"),
                 last({"vin": "V", "pod": "b"}, 2_000 * MS + 100_000, "P")],
        # booleans sort before numbers in the merge rule's value order
        "door": [last({"vin": "V", "pod": "a"}, 3_000 * MS, True),
                 last({"vin": "V", "pod": "b"}, 3_000 * MS, 0)],
        "odo": [last({"vin": "W", "pod": "b"}, 4_000 * MS + 999_999, 12)],
    }  # fmt: skip
    influx.answer = wide_answer({name: found[::order] for name, found in answers.items()})
    assert newest_values(settings(influx)) == {
        "V": {"speed": Signal(2.0, 1_001), "gear": Signal("P", 2_000), "door": Signal(0, 3_000)},
        "W": {"odo": Signal(12, 4_000)},
    }


def test_only_configured_pods_and_series_with_a_vin_count(influx: FakeInflux) -> None:
    influx.answer = wide_answer(
        {
            "speed": [
                last({"vin": "V", "pod": "a"}, 1_000 * MS, 1.0),
                last({"vin": "V", "pod": "elsewhere"}, 9_000 * MS, 99.0),
                last({"vin": "", "pod": "a"}, 9_000 * MS, 98.0),
                last({"pod": "b"}, 9_000 * MS, 97.0),
            ],
            "x" * 257: [last({"vin": "V", "pod": "a"}, 9_000 * MS, 1.0)],  # no record holds it
        }
    )
    assert newest_values(settings(influx)) == {"V": {"speed": Signal(1.0, 1_000)}}
    assert len(influx.requests) == 2  # the field with the over-long name is not even asked


def narrow_answer(found: list[dict[str, Any]]) -> Answer:
    return lambda form: (200, [one_result(*found)])


def narrow_points(resource_tag: str = "resource") -> list[dict[str, Any]]:
    def point(resource: str, pod: str, ms: int, value: object) -> dict[str, Any]:
        return last({"vin": "V", resource_tag: resource, "pod": pod}, ms * MS, value)

    return [
        point("engine.rpm", "a", 1_000, 800),
        point("0x1A", "b", 2_000, 50.5),
        # two resources of one signal (allow_shared_signals): the newer reading wins
        point("ecu_b.rpm", "b", 1_500, 900),
        point("fuel", "a", 1_000, 3),  # not in the map
        point("", "a", 1_000, 4),  # no resource
    ]


RESOURCES = ResourceMap({"engine.rpm": "rpm", "ecu_b.rpm": "rpm", "0x1A": "speed"})
MAPPED = {"rpm": Signal(900, 1_500), "speed": Signal(50.5, 2_000)}


@pytest.mark.parametrize(
    ("unmapped", "expected"),
    [("drop", MAPPED), ("keep", {**MAPPED, "fuel": Signal(3, 1_000)})],
)
def test_narrow_groups_by_resource_and_names_signals_by_the_resource_map(
    influx: FakeInflux, unmapped: str, expected: dict[str, Signal]
) -> None:
    influx.answer = narrow_answer(narrow_points("res"))
    config = settings(
        influx, layout="narrow", resource_tag="res", value_field="val", unmapped=unmapped
    )
    assert newest_values(config, RESOURCES) == {"V": expected}
    assert influx.queries == [
        'SELECT last("val"::field) FROM "telemetry" WHERE ("pod" = $pod0 OR "pod" = $pod1) '
        'GROUP BY "vin", "res", "pod"'
    ]


def test_narrow_needs_the_resource_map(influx: FakeInflux) -> None:
    with pytest.raises(ConfigError, match="resource map"):
        newest_values(settings(influx, layout="narrow"))


def test_verify_loads_the_configured_resource_map(influx: FakeInflux, tmp_path: Path) -> None:
    resource_map = tmp_path / "resources.yaml"
    resource_map.write_text("engine.rpm: rpm\n")
    etl = EtlSettings(
        influxdb=settings(influx, layout="narrow"), resource_map_path=str(resource_map)
    )
    influx.answer = narrow_answer(narrow_points())
    assert data.ground_truth(etl) == {"V": {"rpm": Signal(800, 1_000)}}


@pytest.mark.parametrize(
    ("status", "lines", "message"),
    [
        (200, [{"results": [{"statement_id": 0, "error": "database not found: db"}]}],
         "database not found"),
        (200, [{"error": "error parsing query"}], "error parsing query"),
        # InfluxDB reports an error with HTTP 200 even after some chunks
        (200, [one_result(last({"vin": "V", "pod": "a"}, 1, 1), partial=True),
               {"results": [{"statement_id": 0, "error": "max-select-point limit"}]}],
         "max-select-point"),
        (200, [one_result(last({"vin": "V", "pod": "a"}, 1, 1), partial=True)], "partial"),
        (200, [b"{not json"], "response broken"),
        (200, [one_result(last({"vin": "V", "pod": "a"}, "1970-01-01T00:00:00Z", 1))],
         "not integer nanoseconds"),
        (200, [one_result(last({"vin": "V", "pod": "a"}, 1, [1]))], "no InfluxDB field value"),
        (500, [{"error": "timeout"}], "HTTP 500"),
    ],
)  # fmt: skip
def test_a_failed_or_cut_answer_fails_the_ground_truth(
    influx: FakeInflux, status: int, lines: list[Any], message: str
) -> None:
    def answer(form: dict[str, str]) -> tuple[int, list[Any]]:
        if form["q"].startswith("SHOW FIELD KEYS"):
            return 200, [field_keys("speed")]
        return status, lines

    influx.answer = answer
    with pytest.raises(GroundTruthError, match=message):
        newest_values(settings(influx))


def test_an_unreachable_server_is_a_ground_truth_error(influx: FakeInflux) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with pytest.raises(GroundTruthError, match="request failed"):
        newest_values(settings(influx, url=f"http://127.0.0.1:{closed_port}"))


def test_credentials_go_as_basic_auth_and_never_into_the_query(influx: FakeInflux) -> None:
    newest_values(settings(influx, username="reader", password=SecretStr("s3cret")))
    (request,) = influx.requests
    assert request["authorization"] == "Basic " + base64.b64encode(b"reader:s3cret").decode()
    assert "s3cret" not in request["q"] and "s3cret" not in request["params"]
