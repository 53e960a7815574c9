"""An upgrade from a released version: a savepoint the merger of an earlier release took
(`tests/data/savepoints/<release>`) restores into the current code, whatever layout the current
code keeps a VIN's state in. A release adds its own: with that release checked out and the
local stack up, `python -m tests.integration.test_release_savepoint
tests/data/savepoints/release-<commit>`."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka.admin import AdminClient

from bethos.config import EtlSettings, MergerSettings, load_settings
from bethos.record import AggregatedRecord, Signal, encode_aggregated
from connectors.kafka.admin import create_topics
from devstack.stack import Stack, jobs
from devstack.stack.pipeline import pipeline_docs
from tests.integration.conftest import CANCEL_WAIT_S, ended
from tests.integration.helpers import wait_for, wait_until
from tests.integration.test_deploy import source_records_read
from tests.integration.test_merger import latest_equals, produce

pytestmark = pytest.mark.integration

SAVEPOINTS = Path(__file__).resolve().parents[1] / "data" / "savepoints"
# The savepoint's Kafka source and sink state name these topics, and its sink this group's
# transactions: the restored job runs on the same ones.
TOPIC_PREFIX = "release-savepoint"
GROUP = "release-savepoint"
VINS = 40


def release_docs(stack: Stack) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (ETL, merger) documents the savepoints were taken with."""
    etl, merger = pipeline_docs(
        stack, TOPIC_PREFIX, "release_savepoint", ["p"], GROUP, partitions=2
    )
    merger["latest_merger"] = {"flush_interval": "3s", "bootstrap_from_latest": False}
    merger["flink"] = {"checkpoint_interval": "2s"}
    return etl, merger


def release_records() -> list[AggregatedRecord]:
    """What the released merger read before its savepoint: every kind of value, times decades
    apart, several records per VIN, one of them older."""
    records = []
    for i in range(VINS):
        vin = f"R{i:016d}"
        first = {
            "speed": Signal(10.5 + i, 1_700_000_000_000 + i),
            "odometer": Signal(100_000 + i, 1_700_000_000_500 + i),
            "door_open": Signal(i % 2 == 0, 1_699_999_000_000 + i),
            "gear": Signal(f"D{i % 5}", 1_700_000_001_000 + i),
        }
        records.append(AggregatedRecord(vin, first, "p", 1_700_000_010_000, 0))
        later = {"speed": Signal(20.25 + i, 1_700_000_005_000 + i)}
        if i % 4 == 0:
            later["epoch"] = Signal(-1, 1)
        records.append(AggregatedRecord(vin, later, "p", 1_700_000_020_000, 0))
        older = {"gear": Signal("P", 1_600_000_000_000)}
        records.append(AggregatedRecord(vin, older, "p", 1_700_000_030_000, 0))
    return records


def after_upgrade_records() -> list[AggregatedRecord]:
    """Written after the upgrade: for half the VINs a newer speed, for the other half an older
    one, which the restored state's newer time must win against."""
    records = []
    for i in range(VINS):
        ts = 1_700_000_009_000 if i % 2 == 0 else 1_600_000_000_000
        signals = {"speed": Signal(99.0 + i, ts), "battery": Signal(0.5, 1_700_000_009_000)}
        records.append(AggregatedRecord(f"R{i:016d}", signals, "p", 1_700_000_040_000, 0))
    return records


def release_input(
    stack: Stack, work: Path, backend: str
) -> tuple[Path, EtlSettings, list[AggregatedRecord]]:
    """The release configs (the merger's on `backend`) written in `work`, their topics made
    empty and the release records written to them: the merger's config, the settings to
    produce and read with, the records."""
    etl, merger = release_docs(stack)
    merger["flink"]["state_backend"] = backend
    work.mkdir(parents=True, exist_ok=True)
    config, etl_config = work / "merger.yaml", work / "etl.yaml"
    config.write_text(yaml.safe_dump(merger))
    etl_config.write_text(yaml.safe_dump(etl))
    fresh_topics(load_settings(MergerSettings, config))
    etl_settings = load_settings(EtlSettings, etl_config)
    records = release_records()
    produce(etl_settings, [(r.vin.encode(), encode_aggregated(r)) for r in records])
    return config, etl_settings, records


def fresh_topics(settings: MergerSettings) -> None:
    """The savepoint's topics, empty (an earlier run of this test wrote them)."""
    admin = AdminClient({"bootstrap.servers": settings.kafka.brokers})
    topics = settings.topics
    names = [topics.aggregated, topics.latest, topics.dlq]
    existing = set(admin.list_topics(timeout=10).topics)
    doomed = [name for name in names if name in existing]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result()
        wait_until(lambda: not set(doomed) & set(admin.list_topics(timeout=10).topics), 30)
    deadline = time.monotonic() + 30
    while True:
        try:
            create_topics(settings.kafka, topics)
            return
        except Exception:
            # A deleted topic's name may stay taken for a moment.
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


RELEASES = sorted(p.name for p in SAVEPOINTS.iterdir() if p.is_dir())


def test_a_savepoint_of_a_release_restores_every_vin_and_its_offsets(
    stack: Stack, submit: Callable[..., str], tmp_path: Path
) -> None:
    """Each release's savepoint into the current code, on both state backends (the releases
    took theirs on the hashmap backend; a savepoint is the same for every backend, so a
    restore also moves the state to RocksDB). One case after the other: they share the topics
    the savepoints name."""
    assert RELEASES
    for release in RELEASES:
        for backend in ("hashmap", "rocksdb"):
            restore_release(release, backend, stack, submit, tmp_path / release / backend)


def restore_release(
    release: str, backend: str, stack: Stack, submit: Callable[..., str], work: Path
) -> None:
    # The same messages at the same offsets as when the savepoint was taken: it resumes after
    # them, so what it knows of them is the restored state alone.
    config, etl_settings, before = release_input(stack, work, backend)
    after = after_upgrade_records()
    produce(etl_settings, [(r.vin.encode(), encode_aggregated(r)) for r in after])
    savepoint = work / "savepoint"
    shutil.copytree(SAVEPOINTS / release, savepoint)

    job_id = submit("latest_merger", config, savepoint=str(savepoint))
    try:
        where = f"{release} on {backend}"
        assert wait_for(latest_equals(etl_settings, before + after), timeout=120) == [], where

        # The restored offsets: the job read the messages written after the savepoint only.
        def read() -> int:
            return source_records_read(stack, job_id, "Source: aggregated_in")

        wait_until(lambda: read() >= len(after), 60)
        assert read() == len(after), where
    finally:
        stack.flink.cancel(job_id)
        wait_until(lambda: ended(stack, job_id), CANCEL_WAIT_S, 0.5)


def take_release_savepoint(out: Path, work: Path) -> None:
    """Run the merger of the code checked out here on the release records, on the local stack
    (`bethos up`), and keep its savepoint in `out`: what a release leaves for this test."""
    stack = Stack()
    config, etl_settings, records = release_input(stack, work, "hashmap")
    job_id = jobs.submit(stack, "latest_merger", str(config))
    assert wait_for(latest_equals(etl_settings, records), timeout=120) == []
    savepoint = jobs.stop(stack, job_id, str(work / "savepoints"))
    assert savepoint is not None
    shutil.copytree(Path(savepoint.removeprefix("file:")), out)


if __name__ == "__main__":
    take_release_savepoint(Path(sys.argv[1]), Path(tempfile.mkdtemp(prefix="release-savepoint-")))
