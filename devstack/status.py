"""`bethos status`: per job its state, uptime, restarts and checkpoint age, the ETL's pods (lag,
last poll), the merger's VINs and flush age, and how far each Kafka source is behind its topic.

Everything comes from Flink's REST API except the topics' end offsets, which Kafka gives:
- state: `/jobs/overview`;
- uptime and restarts: the job metrics `uptime` (since the last restart) and `numRestarts`;
- checkpoint age: `/jobs/<id>/checkpoints`, `latest.completed.latest_ack_timestamp`;
- the operators' metrics, `/jobs/<id>/vertices/<vid>/subtasks/metrics` (min/max/sum over the
  subtasks): `<operator>.pod.<pod>.lag_ms` and `.last_poll_at_ms` (the ETL),
  `<operator>.vins_held` and `.last_flush_at_ms` (the merger);
- consumer lag, from Kafka alone: the merger's Kafka source commits its offsets to Kafka under
  the merger's `consumer_group` when a checkpoint completes, so the records behind are the
  topic's end offsets minus that group's committed offsets, per partition, summed per topic.
  The group and topic are those of the merger's config (Flink's metrics name neither: its
  offset gauges replace the dots of a topic name and appear only for partitions that have had
  records).

Gathering takes the REST reader as a function, and the reading of each answer is a pure
function, so tests feed recorded JSON.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from rich.console import Group, RenderableType
from rich.table import Table

from bethos.config import KafkaSettings
from devstack.stack.flink import FLINK_REST_PORT
from devstack.stack.health import http_json

Rest = Callable[[str], Any]

# Flink states in which a job is over; `status` shows the others unless asked for all.
TERMINAL_STATES = frozenset({"FINISHED", "CANCELED", "FAILED"})

_POD_METRIC = re.compile(
    r"^(?P<operator>[^.]+)\.pod\.(?P<pod>.+)\.(?P<name>lag_ms|last_poll_at_ms)$"
)
_MERGER_METRIC = re.compile(r"^(?P<operator>[^.]+)\.(?P<name>vins_held|last_flush_at_ms)$")
_WANTED = (_POD_METRIC, _MERGER_METRIC)


@dataclass(frozen=True)
class PodStatus:
    pod: str
    lag_ms: int | None
    last_poll_age_ms: int | None


@dataclass(frozen=True)
class TopicLag:
    group: str
    topic: str
    partitions: int
    # end offsets minus the group's committed offsets, over the partitions with a commit;
    # None when Kafka did not answer
    records_behind: int | None
    # partitions the group has committed nothing for yet (not counted above)
    uncommitted_partitions: int


@dataclass(frozen=True)
class JobStatus:
    name: str
    job_id: str
    state: str
    uptime_ms: int | None
    restarts: int | None
    checkpoint_age_ms: int | None
    checkpoints_completed: int | None
    checkpoints_failed: int | None
    pods: list[PodStatus] = field(default_factory=list)
    vins_held: int | None = None
    last_flush_age_ms: int | None = None


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- reading REST answers (pure) -------------------------------------------------------------
def _int(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return None
    return None


def _age(now_ms: int, at_ms: int | None) -> int | None:
    return None if at_ms is None or at_ms <= 0 else max(0, now_ms - at_ms)


def uptime_ms(job: Mapping[str, Any], now_ms: int) -> int | None:
    """A running job's time since its start; a finished one's duration."""
    if job.get("state") in TERMINAL_STATES:
        return _int(job.get("duration"))
    return _age(now_ms, _int(job.get("start-time")))


def checkpoint_figures(answer: Mapping[str, Any], now_ms: int) -> tuple[int | None, ...]:
    """(age of the newest completed checkpoint, completed count, failed count)."""
    counts = answer.get("counts") or {}
    latest = (answer.get("latest") or {}).get("completed") or {}
    acked = _int(latest.get("latest_ack_timestamp")) or _int(latest.get("trigger_timestamp"))
    return _age(now_ms, acked), _int(counts.get("completed")), _int(counts.get("failed"))


def metric_value(answer: Sequence[Mapping[str, Any]], name: str) -> int | None:
    """The value of a job metric in a `/jobs/<id>/metrics?get=` answer."""
    for item in answer:
        if item.get("id") == name:
            return _int(item.get("value"))
    return None


def wanted_metric_ids(listing: Sequence[Mapping[str, Any]]) -> list[str]:
    """Of a vertex's metric ids, those `status` reads."""
    ids = [str(item.get("id", "")) for item in listing]
    return [i for i in ids if any(p.search(i) for p in _WANTED)]


def aggregated_values(answer: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """metric id -> {min, max, sum, avg} from a `subtasks/metrics?get=` answer."""
    return {str(item["id"]): item for item in answer if "id" in item}


def pod_statuses(values: Mapping[str, Mapping[str, Any]], now_ms: int) -> list[PodStatus]:
    """Each pod's gauges. A pod lives in one subtask, so `max` over subtasks is its value."""
    found: dict[str, dict[str, int | None]] = {}
    for metric_id, aggregate in values.items():
        match = _POD_METRIC.match(metric_id)
        if match:
            found.setdefault(match["pod"], {})[match["name"]] = _int(aggregate.get("max"))
    return [
        PodStatus(
            pod,
            gauges.get("lag_ms"),
            _age(now_ms, gauges.get("last_poll_at_ms")),
        )
        for pod, gauges in sorted(found.items())
    ]


def merger_figures(
    values: Mapping[str, Mapping[str, Any]], now_ms: int
) -> tuple[int | None, int | None]:
    """(VINs held, summed over subtasks; age of the newest flush of any subtask)."""
    vins: int | None = None
    flushed: int | None = None
    for metric_id, aggregate in values.items():
        match = _MERGER_METRIC.match(metric_id)
        if match is None:
            continue
        if match["name"] == "vins_held":
            vins = (vins or 0) + (_int(aggregate.get("sum")) or 0)
        else:
            newest = _int(aggregate.get("max"))
            if newest is not None and (flushed is None or newest > flushed):
                flushed = newest
    return vins, _age(now_ms, flushed)


def topic_lag(
    group: str, topic: str, committed: Mapping[int, int], ends: Mapping[int, int]
) -> TopicLag:
    """Records behind: per partition the end offset minus the committed one (a negative
    committed offset is Kafka's "none"), summed over the topic's partitions."""
    behind = 0
    uncommitted = 0
    for partition, end in ends.items():
        offset = committed.get(partition, -1)
        if offset < 0:
            uncommitted += 1
        else:
            behind += max(0, end - offset)
    return TopicLag(group, topic, len(ends), behind, uncommitted)


# -- gathering ---------------------------------------------------------------------------------
def job_status(rest: Rest, job: Mapping[str, Any], now_ms: int) -> JobStatus:
    bare = _bare(job, now_ms)
    if bare.state in TERMINAL_STATES:
        return bare
    job_id = bare.job_id
    job_metrics = rest(f"/jobs/{job_id}/metrics?get=numRestarts,uptime")
    restarts = metric_value(job_metrics, "numRestarts")
    # `uptime`: running without interruption, so since the last restart
    uptime = metric_value(job_metrics, "uptime")
    age, completed, failed = checkpoint_figures(rest(f"/jobs/{job_id}/checkpoints"), now_ms)
    values: dict[str, Mapping[str, Any]] = {}
    for vertex in rest(f"/jobs/{job_id}").get("vertices", []):
        path = f"/jobs/{job_id}/vertices/{vertex['id']}/subtasks/metrics"
        wanted = wanted_metric_ids(rest(path))
        # Long ids (topic names) make long URLs: ask in slices.
        for start in range(0, len(wanted), 20):
            values.update(
                aggregated_values(rest(f"{path}?get={','.join(wanted[start : start + 20])}"))
            )
    vins, flush_age = merger_figures(values, now_ms)
    return JobStatus(
        bare.name,
        job_id,
        bare.state,
        bare.uptime_ms if uptime is None else uptime,
        restarts=restarts,
        checkpoint_age_ms=age,
        checkpoints_completed=completed,
        checkpoints_failed=failed,
        pods=pod_statuses(values, now_ms),
        vins_held=vins,
        last_flush_age_ms=flush_age,
    )


def gather_jobs(rest: Rest, now_ms: int, all_jobs: bool = False) -> list[JobStatus]:
    """Every job the cluster lists (those not over, unless `all_jobs`), by name, newest first;
    none when the REST API does not answer."""
    try:
        overview = rest("/jobs/overview")
    except OSError:
        return []
    listed = [j for j in overview.get("jobs", []) if isinstance(j, dict)]
    if not all_jobs:
        listed = [j for j in listed if j.get("state") not in TERMINAL_STATES]
    listed.sort(key=lambda j: (str(j.get("name")), -(_int(j.get("start-time")) or 0)))
    statuses = []
    for job in listed:
        try:
            statuses.append(job_status(rest, job, now_ms))
        except OSError:
            # The job ended between the overview and its details (REST answers 404).
            statuses.append(_bare(job, now_ms))
    return statuses


def _bare(job: Mapping[str, Any], now_ms: int) -> JobStatus:
    return JobStatus(
        str(job.get("name", "?")),
        str(job["jid"]),
        str(job.get("state", "?")),
        uptime_ms(job, now_ms),
        None,
        None,
        None,
        None,
    )


def group_lag(kafka: KafkaSettings, group: str, topic: str, timeout: float = 5.0) -> TopicLag:
    """The lag of a consumer group on a topic, asked of Kafka; records_behind None when Kafka
    does not answer or the topic does not exist. The consumer only reads the group's committed
    offsets: it neither joins the group nor commits."""
    consumer = Consumer(
        {
            **kafka.python_client_properties(),
            "group.id": group,
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            return TopicLag(group, topic, 0, None, 0)
        partitions = [TopicPartition(topic, p) for p in sorted(described.partitions)]
        ends = {
            tp.partition: consumer.get_watermark_offsets(tp, timeout=timeout)[1]
            for tp in partitions
        }
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout)}
    except KafkaException:
        return TopicLag(group, topic, 0, None, 0)
    finally:
        consumer.close()
    return topic_lag(group, topic, committed, ends)


def collect(
    services: Sequence[ServiceLine],
    consumers: Sequence[tuple[KafkaSettings, str, str]],
    all_jobs: bool = False,
) -> Status:
    """The status now: the cluster's REST API, and Kafka for each (settings, group, topic)."""
    now_ms = int(time.time() * 1000)

    def rest(path: str) -> Any:
        return http_json(f"http://127.0.0.1:{FLINK_REST_PORT}{path}", timeout=5)

    return Status(
        now_ms,
        list(services),
        gather_jobs(rest, now_ms, all_jobs),
        [group_lag(kafka, group, topic) for kafka, group, topic in consumers],
    )


# -- rendering ---------------------------------------------------------------------------------
def duration_text(ms: int | None) -> str:
    """`-`, `850ms`, `12.3s`, `4m05s`, `2h03m`, `3d04h`."""
    if ms is None:
        return "-"
    if ms < 1_000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


_STATE_STYLE = {"RUNNING": "green", "RESTARTING": "yellow", "FAILING": "red", "FAILED": "red"}


def render(status: Status) -> RenderableType:
    services = Table(title="services", title_justify="left")
    for column in ("service", "state", "detail"):
        services.add_column(column)
    for line in status.services:
        services.add_row(line.name, "[green]up[/]" if line.running else "[red]down[/]", line.detail)
    parts: list[RenderableType] = [services]
    if not status.jobs:
        parts.append("no jobs")
        return Group(*parts)
    jobs = Table(title="jobs", title_justify="left")
    for column in ("job", "id", "state", "uptime", "restarts", "last checkpoint"):
        jobs.add_column(column, justify="right" if column in ("restarts",) else "left")
    for job in status.jobs:
        style = _STATE_STYLE.get(job.state, "")
        jobs.add_row(
            job.name,
            job.job_id[:8],
            f"[{style}]{job.state}[/]" if style else job.state,
            duration_text(job.uptime_ms),
            _count(job.restarts),
            f"{duration_text(job.checkpoint_age_ms)} ago"
            if job.checkpoint_age_ms is not None
            else "-",
        )
    parts.append(jobs)
    pods = [(job, pod) for job in status.jobs for pod in job.pods]
    if pods:
        table = Table(title="ETL pods", title_justify="left")
        for column in ("job", "pod", "lag", "last poll"):
            table.add_column(column)
        for job, pod in pods:
            table.add_row(
                job.job_id[:8],
                pod.pod,
                duration_text(pod.lag_ms),
                f"{duration_text(pod.last_poll_age_ms)} ago"
                if pod.last_poll_age_ms is not None
                else "-",
            )
        parts.append(table)
    mergers = [job for job in status.jobs if job.vins_held is not None]
    if mergers:
        table = Table(title="mergers", title_justify="left")
        for column in ("job", "VINs held", "last flush"):
            table.add_column(column)
        for job in mergers:
            table.add_row(
                job.job_id[:8],
                _count(job.vins_held),
                f"{duration_text(job.last_flush_age_ms)} ago"
                if job.last_flush_age_ms is not None
                else "-",
            )
        parts.append(table)
    if status.consumer_lag:
        table = Table(
            title="Kafka consumer lag (records behind the committed offsets)", title_justify="left"
        )
        for column in ("group", "topic", "partitions", "behind", "uncommitted partitions"):
            table.add_column(column, justify="left" if column in ("group", "topic") else "right")
        for lag in status.consumer_lag:
            table.add_row(
                lag.group,
                lag.topic,
                str(lag.partitions),
                _count(lag.records_behind),
                str(lag.uncommitted_partitions),
            )
        parts.append(table)
    return Group(*parts)
