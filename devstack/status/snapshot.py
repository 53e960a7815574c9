"""The status now (`collect`): the local stack's services, the cluster's jobs from its REST API,
and the consumer lag of each (settings, group, topic) from Kafka."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bethos.config import KafkaSettings
from bethos.exceptions import BethosError
from devstack.stack.health import http_json
from devstack.status.consumer_lag import TopicLag, group_lag
from devstack.status.rest_figures import JobStatus, gather_jobs
from devstack.status.silent_vins import SilentVin, most_silent


@dataclass(frozen=True)
class ServiceLine:
    name: str
    running: bool
    detail: str


@dataclass(frozen=True)
class Status:
    at_ms: int
    services: list[ServiceLine]
    jobs: list[JobStatus]
    consumer_lag: list[TopicLag] = field(default_factory=list)
    most_silent: list[SilentVin] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def collect(
    services: Sequence[ServiceLine],
    consumers: Sequence[tuple[KafkaSettings, str, str]],
    all_jobs: bool = False,
    silent_from: tuple[KafkaSettings, str, int] | None = None,
    *,
    rest_url: str,
) -> Status:
    """The status now: the cluster's REST API at `rest_url`, and Kafka for each (settings,
    group, topic)."""
    now_ms = int(time.time() * 1000)

    def rest(path: str) -> Any:
        return http_json(f"{rest_url}{path}", timeout=5)

    return Status(
        now_ms,
        list(services),
        gather_jobs(rest, now_ms, all_jobs),
        [group_lag(kafka, group, topic) for kafka, group, topic in consumers],
        _most_silent(silent_from, now_ms),
    )


def _most_silent(
    silent_from: tuple[KafkaSettings, str, int] | None, now_ms: int
) -> list[SilentVin]:
    """The longest-silent VINs of the latest topic; none when not asked or it cannot be read."""
    if silent_from is None or silent_from[2] <= 0:
        return []
    kafka, topic, count = silent_from
    try:
        return most_silent(kafka, topic, now_ms, count)
    except BethosError:
        return []
