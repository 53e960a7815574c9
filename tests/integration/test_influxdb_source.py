"""The InfluxDB source under faults: outages, late points, savepoints, row limits, cut
responses, hostile names."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from bethos.config import EtlSettings, InfluxSettings, load_settings
from bethos.exceptions import SourceError
from bethos.fetch_result import Window
from connectors.influxdb.client import InfluxClient
from connectors.influxdb.writer import InfluxWriter, Point
from devstack.stack import Stack, jobs, wait_until, write_influxdb_config
from devstack.stack.influxdb import InfluxDB
from tests import stack_lock
from tests.data.log_fields import (
    GIVEN_UP_FIELDS,
    RECONCILE_ERROR_FIELDS,
    RETRY_FIELDS,
    TRUNCATED_FIELDS,
)
from tests.integration.helpers import (
    aggregated_equals_truth,
    events,
    point,
    poll_windows,
    wait_for,
    write_points,
)
from tests.integration.own_services import OwnService, own_service

pytestmark = pytest.mark.integration

VINS = [f"VIN{i:014d}" for i in range(5)]


def now_ms() -> int:
    return int(time.time() * 1000)


# The outage test's own InfluxDB (its RPC port is this + 2), beside the stack's (8086).
OUTAGE_INFLUXDB_PORT = 18090


@pytest.fixture
def own_influxdb(tmp_path: Path) -> Iterator[OwnService]:
    with own_service(InfluxDB, tmp_path / "own-influxdb", OUTAGE_INFLUXDB_PORT) as influxdb:
        yield influxdb


def test_an_influxdb_outage_loses_no_point(
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    submit: Callable[..., str],
    own_influxdb: OwnService,
) -> None:
    """The ETL reads an InfluxDB of this test's own, stopped for 30 s while points are
    written (the other tests go on with the stack's)."""
    influxdb = own_influxdb
    # A reconcile pass every 5 s: the passes that fall in the outage fail too.
    doc = yaml.safe_load(pipeline_configs[0].read_text())
    doc["influxdb"]["url"] = f"http://127.0.0.1:{influxdb.port}"
    doc.update(
        lookback="60s",
        retry_max_interval="2s",
        reconcile_interval="5s",
        reconcile_window="5m",
    )
    etl_config = pipeline_configs[0].with_name("etl-outage.yaml")
    etl_config.write_text(yaml.safe_dump(doc))
    settings = load_settings(EtlSettings, etl_config)
    pods = settings.influxdb.pods
    write_points(settings, [])
    submit("etl", etl_config)
    time.sleep(5)

    pending: list[Point] = []
    stop = threading.Event()

    def writer() -> None:
        # Every point gets a signal of its own, so every point must show up downstream.
        for round_no in range(45):
            if stop.is_set():
                return
            ts = now_ms()
            for i, vin in enumerate(VINS):
                pending.append(
                    point(settings, pods[i % len(pods)], vin, {f"r{round_no}": float(i)}, ts)
                )
            try:
                write_points(settings, pending)
                pending.clear()
            except SourceError:
                pass  # InfluxDB is down: keep the points and write them when it is back
            time.sleep(1)
        while pending and not stop.is_set():
            try:
                write_points(settings, pending)
                pending.clear()
            except SourceError:
                time.sleep(0.5)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(8)
        influxdb.stop()
        time.sleep(30)
        influxdb.start()
        thread.join(timeout=120)
    finally:
        stop.set()
        thread.join()
    assert not pending
    assert wait_for(aggregated_equals_truth(settings), timeout=120) == []
    # What the outage looked like in the TaskManager's log: reads retried with backoff
    # (`event=retry`), then windows given up after `retry_max_attempts` (`event=error`) and
    # read again by later polls.
    retries = [e for e in events(stack, "retry") if e["pod"] in pods]
    assert retries and all(list(e) == RETRY_FIELDS for e in retries)
    given_up = [e for e in events(stack, "error") if e.get("pod") in pods]
    assert given_up and all(list(e) == GIVEN_UP_FIELDS for e in given_up)
    # A reconcile pass that could not count its buckets (`event=reconcile_error`); the next
    # pass tries again.
    failed = [e for e in events(stack, "reconcile_error") if e["pod"] in pods]
    assert failed and all(list(e) == RECONCILE_ERROR_FIELDS for e in failed)


def test_late_points_inside_the_lookback_are_picked_up(
    pipeline_configs: tuple[Path, Path], etl_settings: EtlSettings, submit: Callable[..., str]
) -> None:
    pods = etl_settings.influxdb.pods
    write_points(etl_settings, [point(etl_settings, pods[0], VINS[0], {"speed": 1.0}, now_ms())])
    submit("etl", pipeline_configs[0])
    assert wait_for(aggregated_equals_truth(etl_settings), timeout=90) == []
    # The window holding these times was read already; the lookback (10 s) reads it again.
    time.sleep(4)
    late = now_ms() - 6_000
    write_points(etl_settings, [point(etl_settings, pods[1], VINS[1], {"late": 7.0}, late)])
    assert wait_for(aggregated_equals_truth(etl_settings), timeout=60) == []


def test_savepoint_restart_with_new_parallelism_rereads_only_the_lookback(
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
) -> None:
    pods = etl_settings.influxdb.pods
    first = [
        point(etl_settings, pods[i % 3], vin, {"a": float(i)}, now_ms())
        for i, vin in enumerate(VINS)
    ]
    write_points(etl_settings, first)
    job_id = submit("etl", pipeline_configs[0])
    assert wait_for(aggregated_equals_truth(etl_settings), timeout=90) == []

    savepoint = jobs.stop(stack, job_id, str(stack.state / "flink" / "savepoints"))
    assert savepoint
    before = {pod: poll_windows(stack, pod) for pod in pods}
    # Points written while the job is stopped must be read after the restart.
    second = [
        point(etl_settings, pods[i % 3], vin, {"b": float(i)}, now_ms())
        for i, vin in enumerate(VINS)
    ]
    write_points(etl_settings, second)
    time.sleep(3)
    submit("etl", pipeline_configs[0], savepoint=savepoint, parallelism=2)
    assert wait_for(aggregated_equals_truth(etl_settings), timeout=90) == []

    lookback = etl_settings.lookback
    for pod in pods:
        # A stop with a savepoint takes the savepoint, then ends the task: a poll timer that
        # fires in between logs a window that the savepoint does not hold. So the restart goes
        # on from the last or the one-before-last window logged, `lookback` earlier.
        ends_before = [end for _, end in before[pod][-2:]]
        first_after = poll_windows(stack, pod)[len(before[pod])]
        assert first_after[0] in {end - lookback for end in ends_before}, (
            pod,
            first_after,
            ends_before,
        )


@pytest.fixture
def limited_influxdb(tmp_path: Path) -> Iterator[InfluxSettings]:
    """A second InfluxDB with max-row-limit=50 and authentication on (one port: one test at a
    time has it)."""
    with stack_lock.resource("limited_influxdb"):
        yield from _limited_influxdb(tmp_path)


def _limited_influxdb(tmp_path: Path) -> Iterator[InfluxSettings]:
    import shutil
    import subprocess
    import urllib.request

    port = 18086
    config = write_influxdb_config(tmp_path / "influx", port, max_row_limit=50, auth=True)
    proc = subprocess.Popen(
        [shutil.which("influxd") or "influxd", "-config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: (
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1).status == 204
            ),
            60,
            "limited influxdb",
            None,
        )
        urllib.request.urlopen(
            urllib.request.Request(
                f"http://127.0.0.1:{port}/query",
                data=b"q=CREATE USER admin WITH PASSWORD 's3cret' WITH ALL PRIVILEGES",
                method="POST",
            ),
            timeout=10,
        ).read()
        yield InfluxSettings(
            url=f"http://127.0.0.1:{port}",
            database="limited",
            username="admin",
            password="s3cret",
            pods=["p1"],
        )  # type: ignore[arg-type]
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_row_limit_loses_no_row_and_auth_is_used(limited_influxdb: InfluxSettings) -> None:
    writer = InfluxWriter(limited_influxdb)
    writer.create_database()
    base = now_ms() - 60_000
    points = [
        Point(
            "telemetry", {"pod": "p1", "vin": f"V{i % 40}"}, {"speed": float(i), "n": i}, base + i
        )
        for i in range(1_000)
    ]
    writer.write(points)
    writer.close()
    client = InfluxClient(limited_influxdb, rows_per_response_chunk=100)
    result = client.fetch_window("p1", Window(base, base + 10_000))
    client.close()
    assert result.readings == 2_000
    # V{k} holds the points i = k, k + 40, ..., 960 + k: the newest of each signal is i = 960 + k.
    assert result.latest == {
        f"V{k}": {"speed": (float(960 + k), base + 960 + k), "n": (960 + k, base + 960 + k)}
        for k in range(40)
    }
    wrong = InfluxClient(limited_influxdb.model_copy(update={"password": None}))
    with pytest.raises(SourceError):
        wrong.fetch_window("p1", Window(base, base + 10_000))


HOSTILE_PODS = [
    "x' OR 1=1 --",
    'quote"d',
    "back\\slash",
    "with space, comma=equals",
    "ünïcødé-ポッド",
    "'; DROP DATABASE telemetry; --",
]


def test_hostile_pod_names_read_exactly_their_own_points(etl_settings: EtlSettings) -> None:
    base = now_ms() - 30_000
    points = [
        point(etl_settings, pod, f"V{i}", {"speed": float(i)}, base + i)
        for i, pod in enumerate(HOSTILE_PODS)
    ]
    points.append(point(etl_settings, "innocent", "VX", {"speed": 99.0}, base))
    write_points(etl_settings, points)
    client = InfluxClient(etl_settings.influxdb)
    try:
        for i, pod in enumerate(HOSTILE_PODS):
            result = client.fetch_window(pod, Window(base - 1, base + 1_000))
            assert result.latest == {f"V{i}": {"speed": (float(i), base + i)}}
    finally:
        client.close()


class CuttingProxy(ThreadingHTTPServer):
    """An HTTP proxy in front of the real InfluxDB that cuts the next `cuts` responses which
    end inside a partial result after their first piece, the way a server's row limit or a
    proxy's size limit ends a chunked response early; everything else passes as it is."""

    daemon_threads = True

    def __init__(self, upstream: str, cuts: int) -> None:
        self.upstream = upstream.rstrip("/")
        self.cuts = cuts
        self.cut: list[str] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _CuttingHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def take_cut(self) -> bool:
        with self.lock:
            if self.cuts <= 0:
                return False
            self.cuts -= 1
            return True


class _CuttingHandler(BaseHTTPRequestHandler):
    server: CuttingProxy
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._forward(None)

    def do_POST(self) -> None:
        self._forward(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _forward(self, body: bytes | None) -> None:
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() in ("content-type", "authorization")
        }
        request = urllib.request.Request(
            self.server.upstream + self.path, data=body, headers=headers, method=self.command
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, content_type, payload = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as refused:
            status, content_type, payload = refused.code, refused.headers, refused.read()
        pieces = payload.split(b"\n")
        if (
            self.path.startswith("/query")
            and len([p for p in pieces if p]) > 1
            and b'"partial":true' in pieces[0]
            and self.server.take_cut()
        ):
            payload = pieces[0] + b"\n"
            self.server.cut.append(pieces[0][:120].decode(errors="replace"))
        self.send_response(status)
        self.send_header("Content-Type", content_type.get("Content-Type") or "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def cutting_proxy(etl_settings: EtlSettings) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(etl_settings.influxdb.url, cuts=1)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield proxy
    proxy.shutdown()
    proxy.server_close()


def test_a_cut_response_is_split_read_again_and_loses_no_point(
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
    cutting_proxy: CuttingProxy,
) -> None:
    """The ETL reads InfluxDB through a proxy that cuts one response inside a partial result:
    it says so (`event=truncated`), reads the chunk again in halves, and every point arrives."""
    doc = yaml.safe_load(pipeline_configs[0].read_text())
    doc["influxdb"]["url"] = cutting_proxy.url
    # Five rows per piece of the response: a chunk of the 40 points below comes in several.
    doc["batch_size"] = 5
    config = pipeline_configs[0].with_name("etl-cut.yaml")
    config.write_text(yaml.safe_dump(doc))
    pods = etl_settings.influxdb.pods
    ts = now_ms() - 3_000
    write_points(
        etl_settings,
        [
            point(etl_settings, pods[0], vin, {f"s{n}": float(n)}, ts + n)
            for vin in VINS
            for n in range(8)
        ],
    )
    submit("etl", config)
    assert wait_for(aggregated_equals_truth(etl_settings), timeout=90) == []
    assert len(cutting_proxy.cut) == 1, cutting_proxy.cut
    wait_until(lambda: bool(truncations(stack, pods[0])), 30, "the truncated line", None)
    (truncated,) = truncations(stack, pods[0])
    assert list(truncated) == TRUNCATED_FIELDS
    assert truncated["action"] == "split_and_reread"
    assert int(truncated["window_start"]) <= ts < int(truncated["window_end"])


def truncations(stack: Stack, pod: str) -> list[dict[str, str]]:
    return [e for e in events(stack, "truncated") if e.get("pod") == pod]
