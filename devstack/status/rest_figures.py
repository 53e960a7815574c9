"""The jobs' figures from Flink's REST API: each answer read by a pure function, and gathered
per job with the REST reader given as a function (tests feed recorded JSON)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bethos.durations import parse_duration_ms
from bethos.exceptions import BethosError

Rest = Callable[[str], Any]

# Flink states in which a job is over; `status` shows the others unless asked for all.
TERMINAL_STATES = frozenset({"FINISHED", "CANCELED", "FAILED"})

_POD_METRIC = re.compile(
    r"^(?P<operator>[^.]+)\.pod\.(?P<pod>.+)\.(?P<name>lag_ms|last_poll_at_ms)$"
)
_MERGER_METRIC = re.compile(r"^(?P<operator>[^.]+)\.(?P<name>vins_held|last_flush_at_ms)$")
_SILENT_METRIC = re.compile(r"^(?P<operator>[^.]+)\.silent_for\.(?P<threshold>[^.]+)\.vins_silent$")
_WANTED = (_POD_METRIC, _MERGER_METRIC, _SILENT_METRIC)


@dataclass(frozen=True)
class PodStatus:
    pod: str
    lag_ms: int | None
    last_poll_age_ms: int | None


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
    vins_silent: dict[str, int] = field(default_factory=dict)
    """Per silence threshold (`10m`, ...): VINs whose newest reading is at least that old."""


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


def silent_figures(values: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Per threshold, the silent VINs summed over subtasks, shortest threshold first."""
    found: dict[str, int] = {}
    for metric_id, aggregate in values.items():
        match = _SILENT_METRIC.match(metric_id)
        if match:
            found[match["threshold"]] = found.get(match["threshold"], 0) + (
                _int(aggregate.get("sum")) or 0
            )
    return dict(sorted(found.items(), key=lambda item: _threshold_ms(item[0])))


def _threshold_ms(label: str) -> int:
    try:
        return parse_duration_ms(label)
    except BethosError:
        return 0


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
        vins_silent=silent_figures(values),
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
