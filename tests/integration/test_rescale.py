"""Every strategy rescales: a merger run with one subtask is stopped with a savepoint, resumed
with two, stopped again and resumed with one (`bethos upgrade JOB --parallelism N` does the
same stop and start, and restarts the TaskManagers besides). Each run gets a signal of its own,
so a VIN whose earlier signals are missing from its output lost its state in a rescale; the
source offsets come back too, or a batch would be read twice or not at all."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from bethos.config import EtlSettings, MergerSettings, load_settings
from bethos.record import AggregatedRecord, Signal, decode_latest_signals
from bethos.strategies.state_store import StateStoreSettings
from connectors.kafka.admin import create_topics
from connectors.kafka.reader import latest_by_key, read_topic
from devstack.stack import FLINK_REST_PORT, Stack, jobs
from devstack.stack.health import http_json
from devstack.verify import Difference, compare
from tests.integration.helpers import subtask_metrics, wait_for, wait_until
from tests.integration.test_merger import expected_latest, produce
from tests.integration.test_strategies import keyed, merger_config, redis_store_config

pytestmark = pytest.mark.integration

VINS = 40
PARALLELISMS = (1, 2, 1)
STRATEGIES = ("log_compacted", "inline", "state_store", "window_stream")
PUBLISHER = "state_store_publisher"


@dataclass
class Case:
    config: Path
    settings: EtlSettings
    output_topic: str
    jobs: tuple[str, ...] = ("latest_merger",)
    # window_stream: a record that closes the windows of the batch before it.
    closer: Callable[[int], list[AggregatedRecord]] = field(default=lambda _: [])


def batch(run: int, ts: int) -> list[AggregatedRecord]:
    """Signal `s<run>` of every VIN at event time `ts` (+ the VIN's number, in ms)."""
    return [
        AggregatedRecord(f"R{i:016d}", {f"s{run}": Signal(float(run), ts + i)}, "p", ts, 0)
        for i in range(VINS)
    ]


def output_equals(case: Case, records: list[AggregatedRecord]) -> Callable[[], list[Difference]]:
    """The merge of `records` against the output topic's compacted view of their VINs (each
    VIN's signals in its last record; window_stream's `Z` aside)."""
    expected = expected_latest(records)

    def differences() -> list[Difference]:
        messages = latest_by_key(read_topic(case.settings.kafka, case.output_topic))
        found = {vin: decode_latest_signals(value)[1] for vin, value in messages.items()}
        return compare(expected, {vin: found[vin] for vin in expected if vin in found})

    return differences


def single_partition_topics(
    base: Path, etl_settings: EtlSettings, unique: str
) -> tuple[Path, EtlSettings]:
    doc = yaml.safe_load(base.read_text())
    doc["topics"] = {
        "aggregated": f"test-{unique}.rescale.aggregated",
        "latest": f"test-{unique}.rescale.latest",
        "dlq": f"test-{unique}.rescale.dlq",
        "partitions": 1,
    }
    path = base.with_name("rescale-topics.yaml")
    path.write_text(yaml.safe_dump(doc))
    settings = load_settings(MergerSettings, path)
    create_topics(settings.kafka, settings.topics)
    return path, etl_settings.model_copy(update={"topics": settings.topics})


def case_for(strategy: str, base: Path, etl_settings: EtlSettings, unique: str) -> Case:
    if strategy == "log_compacted":
        return Case(base, etl_settings, etl_settings.topics.latest)
    if strategy == "inline":
        topic = f"{etl_settings.topics.latest}.inline"
        create_topics(etl_settings.kafka, etl_settings.topics.model_copy(update={"latest": topic}))
        inline = {"sink": "kafka", "topic": topic}
        config = merger_config(base, "rescale-inline", strategy="inline", inline=inline)
        return Case(config, etl_settings, topic)
    if strategy == "state_store":
        config = redis_store_config(base, "rescale-store", f"test:{unique}")
        return Case(
            config, etl_settings, etl_settings.topics.latest, jobs=("latest_merger", PUBLISHER)
        )
    # Event time, one partition (one watermark); each batch's windows close by a later record
    # of a VIN of its own (`Z`), whose own last window stays open.
    topics, settings = single_partition_topics(base, etl_settings, unique)
    window = {"size": "10s", "out_of_orderness": "1s", "allowed_lateness": "10s", "idleness": "2s"}
    config = merger_config(topics, "rescale-windows", strategy="window_stream", window=window)

    def closer(ts: int) -> list[AggregatedRecord]:
        return [AggregatedRecord("Z", {"z": Signal(1.0, ts + 15_000)}, "p", ts, 0)]

    return Case(config, settings, settings.topics.latest, closer=closer)


def restored_from(job_id: str) -> str | None:
    """The savepoint a job was started from, as its checkpoint statistics say."""
    answer = http_json(f"http://127.0.0.1:{FLINK_REST_PORT}/jobs/{job_id}/checkpoints")
    restored = (answer or {}).get("latest", {}).get("restored") or {}  # type: ignore[union-attr]
    return restored.get("external_path")  # type: ignore[no-any-return]


def records_read(stack: Stack, job_id: str) -> int:
    """What the merger's source of the aggregated topic has passed on since the job started."""
    vertices = stack.flink.job(job_id).get("vertices", [])
    return sum(
        int(vertex["metrics"]["write-records"])  # type: ignore[index]
        for vertex in vertices  # type: ignore[attr-defined]
        if str(vertex["name"]).startswith("Source: aggregated_in")  # type: ignore[index]
    )


def publishes_its_share(publisher: str) -> None:
    """Each subtask of the `state_store` publisher holds some of the store's shards, together
    all of them, and has published some of this run's VINs."""

    def figures() -> dict[str, Mapping[str, Any]]:
        return subtask_metrics(publisher, "published", "shards")

    def each_published() -> bool:
        return int(figures().get("published", {}).get("min", 0)) > 0

    wait_until(each_published, timeout=60, interval=1)
    shards = StateStoreSettings().shards
    found = figures()
    assert int(found["published"]["min"]) > 0
    assert int(found["shards"]["sum"]) == shards and int(found["shards"]["min"]) > 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_strategy_rescales_from_one_subtask_to_two_and_back(
    strategy: str,
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
    unique: str,
) -> None:
    case = case_for(strategy, pipeline_configs[1], etl_settings, unique)
    # An hour ago, on a window boundary, 20 s between runs: each run's windows are its own.
    t0 = (int(time.time() * 1000) - 3_600_000) // 10_000 * 10_000
    savepoints = stack.state / "flink" / "savepoints"
    sent: list[AggregatedRecord] = []
    running: dict[str, str] = {}
    restored: dict[str, str] = {}
    for run, parallelism in enumerate(PARALLELISMS):
        records = batch(run, t0 + run * 20_000)
        produce(case.settings, keyed(records + case.closer(t0 + run * 20_000)))
        sent += records
        for job in case.jobs:
            running[job] = submit(
                job, case.config, savepoint=restored.get(job), parallelism=parallelism
            )
        assert wait_for(output_equals(case, sent), timeout=120) == [], (run, parallelism)
        # The state came from the savepoint (so the earlier runs' signals are its), and the
        # source went on from its offsets: it read this run's records alone.
        merger = running["latest_merger"]
        if run:
            started_from = restored_from(merger) or ""
            assert started_from.removeprefix("file:") == restored["latest_merger"].removeprefix(
                "file:"
            )
        produced = len(records) + len(case.closer(0))

        def all_read(merger: str = merger, produced: int = produced) -> bool:
            return records_read(stack, merger) >= produced

        wait_until(all_read, timeout=30, interval=1)
        assert records_read(stack, merger) == produced
        if PUBLISHER in running:
            publishes_its_share(running[PUBLISHER])
        if run < len(PARALLELISMS) - 1:
            for job in case.jobs:
                point = jobs.stop(stack, running[job], str(savepoints))
                assert point
                restored[job] = point
