"""`python -m devstack.bench.etl_profile`: where the ETL's Python time goes between the bytes of
InfluxDB's response and the records handed to the Kafka sink, offline: no server takes part.

The bytes are one pod's window of `bethos bench etl`'s data set (VINs spread over pods, one
point per VIN in the window, `signals` fields each), as InfluxDB 1.x answers the ETL's query
(`SELECT *::field ... GROUP BY vin`, `epoch=ns`, `chunked=true`): one line of JSON per series,
that is per VIN, every line but the last `partial`; gzip-compressed, and sent in HTTP chunks of
at most 2 KiB (InfluxDB 1.6 to 1.8 flush the HTTP writer after each line, never the gzip
writer, and net/http buffers 2 KiB before it writes a chunk). They are read through an
in-memory socket by requests, urllib3 and http.client, as they would be from InfluxDB.

The ETL's path runs stage after stage, each timed with all the stages before it, so that a
stage's cost is the difference: the response's lines, their JSON and the client's checks
(`query_chunks`), the rows turned into readings (`fetch_window`), the window's chunks combined
(`read_window`), the records settled (`settle`), and the records encoded into the rows the Kafka
sink takes (`record_rows`). Beside it, on the same bytes, the plain client of `bethos bench etl`
(requests' `iter_lines` with its defaults, orjson, a count of the values). Times are the CPU
time of the thread (`time.thread_time`: a busy machine takes the processor away, it does not
add to this), medians of interleaved runs; only their ratios mean something.
"""

from __future__ import annotations

import argparse
import functools
import gc
import http.client
import io
import json
import random
import statistics
import time
import zlib
from collections.abc import Callable
from typing import Any

import orjson
import requests
import urllib3

from bethos.config import EtlSettings, InfluxSettings
from bethos.fetch_result import Tally, Window
from bethos.source.poller import PodProgress, settle
from bethos.source.window_reads import read_window
from bethos_flink.etl_graph import record_rows
from connectors.influxdb.client import InfluxClient, response_lines

WINDOW_MS = 10_000
START_MS = 1_764_111_600_000
# net/http's buffer before it writes a piece of a chunked response (bufferBeforeChunkingSize).
HTTP_CHUNK = 2048


def go_json_float(value: float) -> bytes:
    """A float as Go's encoding/json writes it, within the range the data set uses (no
    exponent): the shortest text that reads back the same, without a trailing `.0`."""
    text = repr(value)
    return text[:-2].encode() if text.endswith(".0") else text.encode()


def influx_lines(
    vins: int = 100_000,
    pods: int = 10,
    pod: int = 0,
    signals: int = 20,
    start_ms: int = START_MS,
    measurement: str = "telemetry",
) -> list[bytes]:
    """The lines of InfluxDB's chunked answer to the ETL's wide query for one pod's window of
    `bethos bench etl`'s data set (the same VINs, times and values: `etl_bench.write_data`)."""
    rng = random.Random(11)
    points = []
    for v in range(vins):
        values = [round(rng.uniform(0, 100), 2) for _ in range(signals)]
        if v % pods == pod:
            ns = (start_ms + (v * 7919) % WINDOW_MS) * 1_000_000
            points.append((f"B{v:016d}", ns, values))
    points.sort()  # InfluxDB answers series in the order of their keys
    columns = orjson.dumps(["time", *(f"s{j:02d}" for j in range(signals))])
    head = b'{"results":[{"statement_id":0,"series":[{"name":' + orjson.dumps(measurement)
    lines = []
    for i, (vin, ns, values) in enumerate(points):
        row = b",".join([str(ns).encode(), *map(go_json_float, values)])
        partial = b',"partial":true' if i < len(points) - 1 else b""
        lines.append(
            head
            + b',"tags":{"vin":'
            + orjson.dumps(vin)
            + b'},"columns":'
            + columns
            + b',"values":[['
            + row
            + b"]]}]"
            + partial
            + b"}]}\n"
        )
    return lines


def http_response(lines: list[bytes]) -> bytes:
    """The lines as InfluxDB sends them over HTTP: status and headers, then the body gzipped
    (the gzip writer flushed only at its end) in chunks of at most HTTP_CHUNK bytes, each line
    ending the chunk that holds its last compressed bytes."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunks: list[bytes] = []
    for line in lines:
        out = compressor.compress(line)
        chunks.extend(out[i : i + HTTP_CHUNK] for i in range(0, len(out), HTTP_CHUNK))
    out = compressor.flush()
    chunks.extend(out[i : i + HTTP_CHUNK] for i in range(0, len(out), HTTP_CHUNK))
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"
    return (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Encoding: gzip\r\n"
        b"Content-Type: application/json\r\n"
        b"X-Influxdb-Version: 1.6.7\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + body
    )


class _Socket:
    """What http.client reads a response from: the bytes, through a socket's buffered file."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(io.BytesIO(self.data), io.DEFAULT_BUFFER_SIZE)


def streamed(raw: bytes) -> requests.Response:
    """A streamed requests response over `raw` (status line, headers, body), built the way
    requests and urllib3 build one from a connection."""
    answer = http.client.HTTPResponse(_Socket(raw), method="POST")  # type: ignore[arg-type]
    answer.begin()
    body = urllib3.HTTPResponse(
        body=answer,
        headers=urllib3.HTTPHeaderDict(answer.getheaders()),
        status=answer.status,
        version=answer.version,
        reason=answer.reason,
        preload_content=False,
        decode_content=True,
        original_response=answer,
        request_method="POST",
    )
    response = requests.Response()
    response.raw = body
    response.status_code = body.status
    response.headers = requests.structures.CaseInsensitiveDict(body.headers)
    return response


class _Session:
    """Answers every query of a client with the same response bytes."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def post(self, url: str, **kwargs: object) -> requests.Response:
        return streamed(self.raw)

    def close(self) -> None:
        pass


def offline_client(raw: bytes, batch_size: int = 10_000) -> InfluxClient:
    """The ETL's InfluxDB client, its session answering every query with `raw`."""
    client = InfluxClient(InfluxSettings(pods=["bench-0"]), rows_per_response_chunk=batch_size)
    client._session = _Session(raw)  # type: ignore[assignment]
    return client


def plain_client(raw: bytes) -> int:
    """`bethos bench etl`'s plain client on the bytes: the values read."""
    values = 0
    for line in streamed(raw).iter_lines():
        for result in orjson.loads(line).get("results", []):
            for series in result.get("series", []):
                for row in series["values"]:
                    values += len(row) - 1 - row.count(None)
    return values


def stages(raw: bytes, start_ms: int = START_MS) -> dict[str, Callable[[], object]]:
    """The ETL's path on the bytes, each stage with those before it, in order."""
    client = offline_client(raw)
    window = Window(start_ms, start_ms + WINDOW_MS)
    tally = Tally(WINDOW_MS, start_ms)
    fetch = functools.partial(client.fetch_window, tally=tally)
    settings = EtlSettings(
        influxdb=InfluxSettings(pods=["bench-0"]),
        poll_interval=WINDOW_MS,
        chunk_duration=WINDOW_MS,
        lookback=0,
        max_window=WINDOW_MS,
    )
    progress = PodProgress(start_ms, 0, 0)
    now = start_ms + 2 * WINDOW_MS

    def lines() -> object:
        return sum(1 for _ in response_lines(streamed(raw)))

    def chunks() -> object:
        return sum(1 for _ in client.query_chunks("", {}))

    def read() -> Any:
        return read_window(fetch, "bench-0", window, WINDOW_MS)

    def settled() -> Any:
        return settle("bench-0", now, progress, read(), settings, random.Random(1))

    return {
        "lines": lines,
        "query_chunks": chunks,
        "fetch_window": lambda: client.fetch_window("bench-0", window, tally),
        "read_window": read,
        "settle": settled,
        # One by one, as the sink takes them.
        "record_rows": lambda: sum(1 for _ in record_rows(settled().records)),
    }


def profile(
    vins: int = 100_000, pods: int = 10, signals: int = 20, runs: int = 7
) -> dict[str, Any]:
    """Per stage: CPU ms of one pod's window, its share of the ETL's path, and the ratio to the
    plain client's whole work on the same bytes."""
    raw = http_response(influx_lines(vins, pods, 0, signals))
    timed: dict[str, Callable[[], object]] = {"plain_client": lambda: plain_client(raw)}
    timed.update(stages(raw))
    for run in timed.values():
        run()  # warm up: first calls fill caches
    gc.collect()
    gc.freeze()  # as the ETL's function does in open()
    seconds: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(runs):
        for name, run in timed.items():
            started = time.thread_time()
            run()
            seconds[name].append(time.thread_time() - started)
    gc.unfreeze()
    median = {name: statistics.median(times) * 1000 for name, times in seconds.items()}
    plain = median.pop("plain_client")
    total = median["record_rows"]
    report: dict[str, Any] = {"vins_per_pod": vins // pods, "signals": signals, "runs": runs}
    report["plain_client_ms"] = round(plain, 1)
    report["etl_ms"] = round(total, 1)
    report["etl_to_plain_client"] = round(total / plain, 2)
    before = 0.0
    per_stage = {}
    for name, cumulative in median.items():
        cost = cumulative - before
        before = cumulative
        per_stage[name] = {
            "ms": round(cost, 1),
            "share": round(cost / total, 3),
            "to_plain_client": round(cost / plain, 2),
        }
    report["stages"] = per_stage
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--vins", type=int, default=100_000)
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--signals", type=int, default=20)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    print(json.dumps(profile(args.vins, args.pods, args.signals, args.runs), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
