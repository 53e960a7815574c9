"""Shared steps of the integration tests: writing points, reading topics back, waiting."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from bethos.cli import data
from bethos.config import EtlSettings
from bethos.logevents import format_event
from bethos.merge import VinState
from bethos.record import RecordError, Signal, decode_aggregated
from bethos.stack import Stack
from bethos.verify import Difference, compare
from connectors.influxdb.writer import InfluxWriter, Point
from connectors.kafka.reader import read_topic


def write_points(settings: EtlSettings, points: list[Point]) -> None:
    writer = InfluxWriter(settings.influxdb)
    try:
        writer.create_database()
        writer.write(points)
    finally:
        writer.close()


def point(settings: EtlSettings, pod: str, vin: str, fields: dict[str, object], ts: int) -> Point:
    influx = settings.influxdb
    return Point(influx.measurement, {influx.pod_tag: pod, influx.vin_tag: vin}, fields, ts)  # type: ignore[arg-type]


def merged_aggregated(settings: EtlSettings) -> dict[str, dict[str, Signal]]:
    """Every record of the aggregated topic merged per VIN."""
    states: dict[str, VinState] = {}
    for _, value in read_topic(settings.kafka, settings.topics.aggregated):
        try:
            record = decode_aggregated(value)
        except RecordError:
            continue
        states.setdefault(record.vin, VinState()).merge_record(record)
    return {vin: state.latest_signals() for vin, state in states.items()}


def wait_for(
    check: Callable[[], list[Difference]], timeout: float, interval: float = 3
) -> list[Difference]:
    deadline = time.monotonic() + timeout
    differences = check()
    while differences and time.monotonic() < deadline:
        time.sleep(interval)
        differences = check()
    return differences


def aggregated_equals_truth(settings: EtlSettings) -> Callable[[], list[Difference]]:
    return lambda: compare(data.ground_truth(settings), merged_aggregated(settings))


_POLL = re.compile(
    r'\[influxdb_source\] event=poll pod=("(?:[^"\\]|\\.)*"|\S+) '
    r"window_start=(\d+) window_end=(\d+)"
)


def poll_windows(stack: Stack, pod: str) -> list[tuple[int, int]]:
    """(window_start, window_end) of every logged poll of a pod, in log order."""
    windows = []
    for log in sorted((stack.log_dir / "flink").glob("*taskexecutor*.log")):
        for match in _POLL.finditer(Path(log).read_text(errors="replace")):
            if format_event("x", "e", pod=pod).endswith(f"pod={match.group(1)}"):
                windows.append((int(match.group(2)), int(match.group(3))))
    return windows
