"""Shared steps of the integration tests: writing points, reading topics back, waiting."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource

from bethos.config import EtlSettings, KafkaSettings
from bethos.exceptions import RecordError
from bethos.logevents import parse_event
from bethos.merge_rule import VinState
from bethos.record import Signal, decode_aggregated
from connectors.influxdb.writer import InfluxWriter, Point
from connectors.kafka.reader import read_topic
from devstack import schemas
from devstack.cli import data
from devstack.stack import FLINK_REST_PORT, Stack
from devstack.stack.health import http_json
from devstack.verify import Difference, compare


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


@functools.cache
def _validator(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schemas.load(kind))


def assert_schema_valid(kind: str, value: bytes | None) -> None:
    """A raw Kafka message value against the JSON Schema of its records (`schemas/`,
    docs/CONTRACT.md): `aggregated`, `latest` or `dead_letter`. A message without a value, a
    tombstone, belongs on the latest topic only."""
    if value is None:
        assert kind == "latest", f"a message of the {kind} topic without a value"
        return
    problems = [
        f"{'/'.join(str(part) for part in error.absolute_path) or '(root)'}: {error.message}"
        for error in _validator(kind).iter_errors(json.loads(value))
    ]
    assert problems == [], f"{kind} message {value[:300]!r}: {problems}"


Messages = list[tuple[bytes | None, bytes | None]]


def schema_checked(kind: str, messages: Messages) -> Messages:
    """`messages` (key, value), as read, once each value is valid by `assert_schema_valid`."""
    for _, value in messages:
        assert_schema_valid(kind, value)
    return messages


def read_checked(kind: str, kafka: KafkaSettings, topic: str) -> Messages:
    """Every message of a topic (`read_topic`), each value valid by the schema of `kind`."""
    return schema_checked(kind, read_topic(kafka, topic))


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


def wait_until(done: Callable[[], bool], timeout: float, interval: float = 2) -> None:
    """Poll `done` until it holds or `timeout` passes; the caller asserts afterwards."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(interval)


def topic_configs(
    admin: AdminClient, topics: list[str], key: str, timeout: float = 30
) -> dict[str, str]:
    """One config of each topic, as the brokers describe it. A new topic reaches every
    broker's metadata a moment after its creation; until then the broker asked answers
    UNKNOWN_TOPIC_OR_PART, so the question is asked again for up to `timeout` seconds."""
    resources = [ConfigResource(ConfigResource.Type.TOPIC, topic) for topic in topics]
    deadline = time.monotonic() + timeout
    while True:
        try:
            return {
                resource.name: str(future.result()[key].value)
                for resource, future in admin.describe_configs(resources).items()
            }
        except KafkaException:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def events(stack: Stack, name: str) -> list[dict[str, str]]:
    """The fields of every `event=NAME` line in the TaskManagers' logs, in time order (each
    TaskManager writes a log of its own; a line starts with its time, to the millisecond)."""
    found = []
    for log in stack.taskmanager_logs():
        for line in log.read_text(errors="replace").split("\n"):
            event = parse_event(line)
            if event and event.event == name:
                found.append((event.prefix[:23], event.fields))
    return [fields for _, fields in sorted(found, key=lambda item: item[0])]


def poll_windows(stack: Stack, pod: str) -> list[tuple[int, int]]:
    """(window_start, window_end) of every logged poll of a pod, in log order."""
    return [
        (int(fields["window_start"]), int(fields["window_end"]))
        for fields in events(stack, "poll")
        if fields.get("pod") == pod
    ]


def subtask_metrics(job_id: str, *names: str) -> dict[str, Mapping[str, Any]]:
    """A job's operator metrics of these names (`<operator>.<name>`), each aggregated over its
    subtasks (`min`, `max`, `sum`) by Flink's REST API."""
    found: dict[str, Mapping[str, Any]] = {}
    flink_rest = f"http://127.0.0.1:{FLINK_REST_PORT}"
    job = http_json(f"{flink_rest}/jobs/{job_id}")
    for vertex in job.get("vertices", []) if isinstance(job, dict) else []:
        path = f"{flink_rest}/jobs/{job_id}/vertices/{vertex['id']}/subtasks/metrics"
        listing = http_json(path)
        assert isinstance(listing, list)
        ids = [
            str(item["id"])
            for item in listing
            for name in names
            if str(item["id"]).endswith(f".{name}")
        ]
        answer = http_json(f"{path}?get={','.join(ids)}") if ids else []
        for item in answer if isinstance(answer, list) else []:
            found[str(item["id"]).rsplit(".", 1)[-1]] = item
    return found
