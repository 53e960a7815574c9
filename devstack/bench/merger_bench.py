"""`bethos bench merger`: the latest merger at 100k VINs x 20 signals, against the same merge
written as Flink SQL (`GROUP BY vin` with `LAST_VALUE`), on the same input in the same run.

The aggregated topic gets one full record per VIN and then rounds of updates carrying 1 to 5
changed signals each. Each run starts the merger with a fresh consumer group and measures:
- merged records per second: the slope of its source's record count between 10% and 90% of the
  input, started just after a flush so that none falls inside (the SQL job does not flush);
- one flush of 100k VINs: one more update round touching every VIN is merged right after a
  flush, then the time from the next flush's timer to the moment Kafka has acknowledged all 100k
  latest records (the topic's end offsets grew by 100k);
- state bytes per VIN: the size of a savepoint taken after the run, divided by the VINs;
then the Flink SQL job reads the same input and its rate is measured the same way.
A first, warm-up run is printed but left out; medians over the other runs are reported.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Producer

from bethos.config import MergerSettings, load_settings
from bethos.record import AggregatedRecord, Signal, encode_aggregated
from bethos.strategies.flushing import flush_due
from connectors.kafka.admin import create_topics
from connectors.kafka.reader import end_offsets
from devstack.stack import FLINK_REST_PORT, Stack, jobs

FLUSH_INTERVAL_MS = 60_000
SQL_JOB = Path(__file__).with_name("sql_merge_job.py")


def vin(index: int) -> str:
    return f"BENCH{index:012d}"


def produce(settings: MergerSettings, records: list[AggregatedRecord]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka.brokers,
            "linger.ms": 20,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
        }
    )
    for record in records:
        producer.produce(
            settings.topics.aggregated, key=record.vin.encode(), value=encode_aggregated(record)
        )
        producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("the producer could not deliver every record")


def full_round(vins: int, signals: int, ts: int) -> list[AggregatedRecord]:
    rng = random.Random(1)
    return [
        AggregatedRecord(
            vin(v),
            {f"s{j:02d}": Signal(round(rng.uniform(0, 100), 2), ts) for j in range(signals)},
            f"pod-{v % 10}",
            ts,
            ts,
        )
        for v in range(vins)
    ]


def update_round(
    vins: int, signals: int, ts: int, seed: int, changed: int = 0
) -> list[AggregatedRecord]:
    """One record per VIN with 1 to 5 changed signals (exactly `changed` when given)."""
    rng = random.Random(seed)
    records = []
    for v in range(vins):
        count = changed or rng.randint(1, 5)
        names = rng.sample(range(signals), count)
        records.append(
            AggregatedRecord(
                vin(v),
                {f"s{j:02d}": Signal(round(rng.uniform(0, 100), 2), ts + j) for j in names},
                f"pod-{v % 10}",
                ts,
                ts,
            )
        )
    return records


def _rest(path: str) -> Any:
    with urllib.request.urlopen(f"http://localhost:{FLINK_REST_PORT}{path}", timeout=10) as reply:
        return json.load(reply)


def source_records_out(job_id: str) -> int:
    """Records emitted by the job's Kafka source operator (all subtasks)."""
    total = 0
    for vertex in _rest(f"/jobs/{job_id}")["vertices"]:
        if not vertex["name"].startswith("Source: aggregated_in"):
            continue
        names = [m["id"] for m in _rest(f"/jobs/{job_id}/vertices/{vertex['id']}/metrics")]
        wanted = [n for n in names if n.split(".", 1)[-1].startswith("Source__aggregated_in")]
        wanted = [n for n in wanted if n.endswith(".numRecordsOut")]
        if wanted:
            query = ",".join(wanted)
            values = _rest(f"/jobs/{job_id}/vertices/{vertex['id']}/metrics?get={query}")
            total += sum(int(float(v["value"])) for v in values)
    return total


def consume_rate(job_id: str, total: int, timeout: float = 900) -> float:
    """Records per second between 10% and 90% of `total` read by the job's source."""
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            count = source_records_out(job_id)
        except OSError:
            count = 0
        samples.append((time.monotonic(), count))
        if count >= total:
            break
        time.sleep(0.2)
    else:
        raise RuntimeError(f"the job read {samples[-1][1]} of {total} records in time")
    low = next(s for s in samples if s[1] >= total * 0.1)
    high = next(s for s in samples if s[1] >= total * 0.9)
    if high[0] > low[0]:
        return (high[1] - low[1]) / (high[0] - low[0])
    # Too fast to sample in between: from the last sample before any record to the end.
    before = [s for s in samples if s[1] == 0] or samples[:1]
    return total / max(samples[-1][0] - before[-1][0], 1e-3)


def latest_count(settings: MergerSettings) -> int:
    return sum(end_offsets(settings.kafka, settings.topics.latest).values())


def _sleep_past_boundary() -> None:
    now_ms = int(time.time() * 1000)
    time.sleep((flush_due(now_ms, FLUSH_INTERVAL_MS) - now_ms) / 1000 + 1)


def measure_flush(
    settings: MergerSettings, vins: int, signals: int, seed: int, job_id: str, total: int
) -> float:
    """Seconds from a flush's timer until Kafka acknowledged all `vins` latest records."""
    # Start right after a flush, so every VIN's update lands in the same next flush.
    _sleep_past_boundary()
    _wait_stable(settings)
    before = latest_count(settings)
    produce(settings, update_round(vins, signals, int(time.time() * 1000) - 60_000, seed, 1))
    consume_rate(job_id, total + vins)
    due_ms = flush_due(int(time.time() * 1000), FLUSH_INTERVAL_MS)
    deadline = time.monotonic() + FLUSH_INTERVAL_MS / 1000 + 300
    while time.monotonic() < deadline:
        if latest_count(settings) - before >= vins:
            return time.time() - due_ms / 1000
        time.sleep(0.2)
    raise RuntimeError(f"the flush emitted {latest_count(settings) - before} of {vins} in time")


def _wait_stable(settings: MergerSettings) -> None:
    previous = -1
    while True:
        count = latest_count(settings)
        if count == previous:
            return
        previous = count
        time.sleep(2)


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_sql(stack: Stack, config: Path, group: str) -> str:
    env = {"BETHOS_CONFIG": str(config), "BETHOS_BENCH_GROUP": group}
    return jobs.run_script(stack, SQL_JOB, [], env)


def bench(
    vins: int, signals: int, rounds: int, runs: int, report: Callable[[str], None] = print
) -> dict[str, Any]:
    """`report` hears each step as it starts (the CLI shows it with a spinner)."""
    stack = Stack()
    if not all(s.running for s in stack.status()):
        stack.up(progress=report)
    work = Path(tempfile.mkdtemp(prefix="bethos-bench-merger-"))
    tag = str(int(time.time()))
    total = vins * (rounds + 1)
    per_run = []
    # Run 0 warms up the TaskManager (its JVM and Python interpreter live across jobs; first
    # jobs measured up to 3x slower) and is left out of the medians.
    for run in range(0, runs + 1):
        # Each run: topics of its own holding the same input, a fresh group, no state.
        doc = {
            "kafka": {"brokers": stack.bootstrap_servers()},
            "topics": {
                "aggregated": f"bench.merger.{tag}.{run}.aggregated",
                "latest": f"bench.merger.{tag}.{run}.latest",
                "dlq": f"bench.merger.{tag}.{run}.dlq",
                "partitions": 3,
            },
            "latest_merger": {
                "flush_interval": f"{FLUSH_INTERVAL_MS}ms",
                "emit": "changed",
                "bootstrap_from_latest": False,
            },
            "flink": {"parallelism": 1, "checkpoint_interval": "30s"},
            "consumer_group": f"bench-merger-{tag}-{run}",
        }
        config = work / f"merger-{run}.yaml"
        config.write_text(yaml.safe_dump(doc))
        settings = load_settings(MergerSettings, config)
        create_topics(settings.kafka, settings.topics)
        create_topics(
            settings.kafka,
            settings.topics.model_copy(update={"latest": f"{settings.topics.latest}.sql"}),
        )
        label = f"run {run}/{runs}" + (" (warm-up)" if run == 0 else "")
        report(f"{label}: writing {vins} VINs x {signals} signals, {rounds} update rounds ...")
        now = int(time.time() * 1000) - 3_600_000
        produce(settings, full_round(vins, signals, now))
        for r in range(rounds):
            produce(settings, update_round(vins, signals, now + (r + 1) * 1000, seed=r + 2))
        # Start just after a flush, so the ingest is measured between flushes (the SQL job
        # does not flush either); the flush is measured on its own below.
        _sleep_past_boundary()
        report(f"{label}: the merger consumes {total} records ...")
        job_id = jobs.submit(stack, "latest_merger", str(config))
        try:
            rate = consume_rate(job_id, total)
            report(f"{label}: a flush of {vins} VINs until Kafka acknowledges it ...")
            flush_s = measure_flush(settings, vins, signals, 100 + run, job_id, total)
        finally:
            report(f"{label}: stopping the merger with a savepoint (its state size) ...")
            savepoint = jobs.stop(stack, job_id, str(work / "savepoints"))
        state_bytes = directory_bytes(Path(str(savepoint).removeprefix("file:")))
        report(f"{label}: the same merge as Flink SQL consumes {total} records ...")
        sql_id = run_sql(stack, config, f"bench-sql-{tag}-{run}")
        try:
            # The same first `total` records the merger was measured on (the flush round
            # follows them in the topic).
            sql_rate = consume_rate(sql_id, total)
        finally:
            jobs.stop(stack, sql_id)
        result = {
            "run": run,
            "merged_records_per_s": round(rate),
            "flush_100k_s": round(flush_s, 2),
            "state_bytes_per_vin": round(state_bytes / vins),
            "flink_sql_records_per_s": round(sql_rate),
            "ratio": round(rate / sql_rate, 3),
        }
        if run == 0:
            result["warmup"] = True
        else:
            per_run.append(result)
        print(json.dumps(result), flush=True)
    return {
        "benchmark": "merger",
        "vins": vins,
        "signals": signals,
        "input_records": vins * (rounds + 1),
        "runs": runs,
        **{
            key: statistics.median(r[key] for r in per_run)
            for key in (
                "merged_records_per_s",
                "flush_100k_s",
                "state_bytes_per_vin",
                "flink_sql_records_per_s",
                "ratio",
            )
        },
    }
