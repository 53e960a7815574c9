"""The InfluxDB source under faults: outages, late points, savepoints, row limits, hostile names."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from bethos.config import EtlSettings, InfluxSettings, load_settings
from bethos.exceptions import SourceError
from bethos.fetch_result import Window
from connectors.influxdb.client import InfluxClient
from connectors.influxdb.writer import InfluxWriter, Point
from devstack.stack import Stack, jobs, wait_until, write_influxdb_config
from tests import stack_lock
from tests.data.log_fields import GIVEN_UP_FIELDS, RECONCILE_ERROR_FIELDS, RETRY_FIELDS
from tests.integration.helpers import (
    aggregated_equals_truth,
    events,
    point,
    poll_windows,
    wait_for,
    write_points,
)

pytestmark = pytest.mark.integration

VINS = [f"VIN{i:014d}" for i in range(5)]


def now_ms() -> int:
    return int(time.time() * 1000)


def with_overrides(path: Path, **overrides: object) -> Path:
    doc = yaml.safe_load(path.read_text())
    doc.update(overrides)
    out = path.with_name("etl-override.yaml")
    out.write_text(yaml.safe_dump(doc))
    return out


@pytest.mark.exclusive
def test_an_influxdb_outage_loses_no_point(
    stack: Stack, pipeline_configs: tuple[Path, Path], submit: Callable[..., str]
) -> None:
    # A reconcile pass every 5 s: the passes that fall in the outage fail too.
    etl_config = with_overrides(
        pipeline_configs[0],
        lookback="60s",
        retry_max_interval="2s",
        reconcile_interval="5s",
        reconcile_window="5m",
    )
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
        stack.stop_service("influxdb")
        time.sleep(30)
        stack.start_service("influxdb")
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
