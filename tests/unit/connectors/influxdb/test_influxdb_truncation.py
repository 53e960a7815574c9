"""A response cut short is recognised by the client (a stand-in server on loopback: InfluxDB
1.x does not cut chunked responses, so the real server cannot produce one on demand)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs

import orjson
import pytest

from bethos.config import InfluxSettings
from bethos.exceptions import TruncatedError
from bethos.fetch_result import Window
from connectors.influxdb.client import InfluxClient, ends_partial

SERIES = {"name": "telemetry", "tags": {"vin": "V1"}, "columns": ["time", "speed"]}


def chunk(values: list[list[object]], partial: bool) -> bytes:
    result: dict[str, object] = {"statement_id": 0, "series": [{**SERIES, "values": values}]}
    if partial:
        result["partial"] = True
    return orjson.dumps({"results": [result]}) + b"\n"


# A stand-in server's address, the chunks it answers every query with, the requests it got.
StandIn = tuple[str, list[bytes], list[bytes]]


@pytest.fixture
def server() -> Iterator[StandIn]:
    body: list[bytes] = []
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            payload = b"".join(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", body, received
    httpd.shutdown()


def test_a_response_ending_inside_a_partial_result_is_truncated(server: StandIn) -> None:
    url, body, _ = server
    client = InfluxClient(InfluxSettings(url=url, pods=["p"]))
    body[:] = [chunk([[1_000_000_000, 1.0]], partial=True), chunk([[2_000_000_000, 2.0]], True)]
    with pytest.raises(TruncatedError):
        client.fetch_window("p", Window(0, 10_000))
    # The same stream with its last chunk complete is read whole.
    body[-1] = chunk([[2_000_000_000, 2.0]], partial=False)
    result = client.fetch_window("p", Window(0, 10_000))
    assert result.readings == 2
    client.close()


def test_rows_per_response_chunk_is_sent_as_influxdbs_chunk_size(server: StandIn) -> None:
    url, body, received = server
    body[:] = [chunk([[1_000_000_000, 1.0]], partial=False)]
    client = InfluxClient(InfluxSettings(url=url, pods=["p"]), rows_per_response_chunk=123)
    client.fetch_window("p", Window(0, 10_000))
    client.close()
    form = parse_qs(received[-1].decode())
    assert form["chunk_size"] == ["123"] and form["chunked"] == ["true"]


def test_a_truncated_stream_is_recognised() -> None:
    assert ends_partial({"statement_id": 0, "series": [{"name": "m"}], "partial": True})
    assert ends_partial({"statement_id": 0, "series": [{"name": "m", "partial": True}]})
    assert not ends_partial({"statement_id": 0, "series": [{"name": "m"}]})
    assert not ends_partial({"statement_id": 0})
