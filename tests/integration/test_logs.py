"""The event lines (docs/CONTRACT.md, "Log events"), read from the real TaskManager log: the
ETL's `poll`, the merger's `flush` (written right after its flush), `skip` and, at a stop with
a savepoint, `shutdown_flush`."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Producer

from bethos.config import EtlSettings
from bethos.logevents import Event, parse_event
from devstack.cli import data
from devstack.stack import Stack, jobs
from tests.data.bad_records import BAD_RECORDS
from tests.data.log_fields import POLL_FIELDS
from tests.integration.helpers import wait_for, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.own_flink]

FLUSH_INTERVAL_MS = 2_000
FLUSH_FIELDS = [
    "flush_duration_ms",
    "vin_count",
    "message_count",
    "emitted",
    "longest_timer_run_ms",
]


def log_events(stack: Stack) -> list[Event]:
    """Every event line of the TaskManagers' logs in time order: after a TaskManager restart an
    older TaskManager's log may hold lines written before those of the current one."""
    found = []
    for log in stack.taskmanager_logs():
        for line in log.read_text(errors="replace").split("\n"):
            event = parse_event(line)
            if event is not None:
                found.append(event)
    return sorted(found, key=lambda event: event.prefix[:23])


def written_at_ms(event: Event) -> int:
    """When log4j wrote the line: its prefix starts with the local time, to the millisecond."""
    stamp = datetime.strptime(event.prefix[:23], "%Y-%m-%d %H:%M:%S,%f")
    return int(stamp.timestamp() * 1000)


def bad_record(reason: str) -> tuple[str, bytes]:
    name, raw, _ = next(r for r in BAD_RECORDS if r[2] == reason and r[1])
    assert raw is not None
    return name, raw


def test_the_jobs_log_every_event_with_its_fields(
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
) -> None:
    etl_config, merger_config = pipeline_configs
    doc = yaml.safe_load(merger_config.read_text())
    doc["latest_merger"]["flush_interval"] = f"{FLUSH_INTERVAL_MS}ms"
    config = merger_config.with_name("merger-logs.yaml")
    config.write_text(yaml.safe_dump(doc))
    terminal = ("FINISHED", "CANCELED", "FAILED")
    wait_until(lambda: all(job.get("state") in terminal for job in stack.jobs()), timeout=60)
    seen_before = len(log_events(stack))

    def new_events(name: str, component: str) -> list[Event]:
        return [
            e
            for e in log_events(stack)[seen_before:]
            if e.event == name and e.component == component
        ]

    data.generate(etl_settings, vins=5, rounds=1, round_interval_ms=1_000)
    producer = Producer({"bootstrap.servers": etl_settings.kafka.brokers})
    for reason in ("empty_id", "invalid_json"):
        name, raw = bad_record(reason)
        producer.produce(etl_settings.topics.aggregated, key=f"bad-{name}".encode(), value=raw)
    assert producer.flush(60) == 0
    submit("etl", etl_config)
    merger_id = submit("latest_merger", config)
    assert wait_for(lambda: data.verify(etl_settings)[2], timeout=180) == []
    wait_until(lambda: len(new_events("flush", "latest_merger")) >= 2, timeout=60)

    savepoint = jobs.stop(stack, merger_id, str(stack.flink.state / "flink" / "savepoints"))
    assert savepoint
    wait_until(lambda: bool(new_events("shutdown_flush", "latest_merger")), timeout=60)

    polls = new_events("poll", "influxdb_source")
    assert polls and all(list(e.fields) == POLL_FIELDS for e in polls)
    assert sum(int(e.fields["records"]) for e in polls) >= 5
    (skip,) = new_events("skip", "latest_merger")
    assert skip.fields["reason"] == "empty_id"
    (error,) = new_events("error", "latest_merger")
    assert error.fields["reason"] == "invalid_json" and error.fields["err"]
    assert error.fields["topic"] == etl_settings.topics.aggregated

    flushes = new_events("flush", "latest_merger")
    assert len(flushes) >= 2
    assert all(list(e.fields) == FLUSH_FIELDS for e in flushes)
    assert sum(int(e.fields["emitted"]) for e in flushes) >= 5
    # Aligned flushes run at multiples of the interval; each line is written just after its
    # flush, not when the next flush starts.
    lateness = [written_at_ms(e) % FLUSH_INTERVAL_MS for e in flushes]
    assert all(late < 1_000 for late in lateness), lateness

    (shutdown,) = new_events("shutdown_flush", "latest_merger")
    assert list(shutdown.fields) == FLUSH_FIELDS
    assert all(value.isdigit() for value in shutdown.fields.values())
    # It is written at the stop, after the last flush's line.
    assert written_at_ms(shutdown) >= written_at_ms(flushes[-1])
    assert time.time() * 1000 - written_at_ms(shutdown) < 120_000
