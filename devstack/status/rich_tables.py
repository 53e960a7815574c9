"""The tables `bethos status` prints: the services, the jobs, the ETL's pods, the mergers and
the consumer lag."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table

from devstack.status.snapshot import Status


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
        thresholds = list(dict.fromkeys(t for job in mergers for t in job.vins_silent))
        for column in ("job", "VINs held", *(f"silent {t}+" for t in thresholds), "last flush"):
            table.add_column(column)
        for job in mergers:
            table.add_row(
                job.job_id[:8],
                _count(job.vins_held),
                *(_count(job.vins_silent.get(t)) for t in thresholds),
                f"{duration_text(job.last_flush_age_ms)} ago"
                if job.last_flush_age_ms is not None
                else "-",
            )
        parts.append(table)
    if status.most_silent:
        table = Table(title="longest-silent VINs (latest topic)", title_justify="left")
        for column in ("VIN", "silent for", "newest reading (epoch ms)"):
            table.add_column(column)
        for silent in status.most_silent:
            table.add_row(silent.vin, duration_text(silent.silent_ms), str(silent.updated_at))
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
