"""`bethos bench merger`: the latest merger at 100k VINs x 20 signals against, on the same input
in the same run, PyFlink's own floor and two plain Flink SQL forms of the merge.

The aggregated topic gets one full record per VIN and then rounds of updates carrying 1 to 5
changed signals each. Each run reads that input with a fresh consumer group, no state, in five
jobs one after the other, and measures:
- the merger with the shipped settings (`stagger` as shipped; a 60 s flush interval, longer when
  one update round of every VIN takes longer to read: `flush_interval_ms`): merged records per
  second, the slope of its source's record count between 10% and 90% of the input; then one more
  update round touching every VIN, and while those VINs flush the longest time the merge spent in
  timer callbacks in one go (`max_stall_ms`, its `longest_timer_run_ms` metric) and the
  TaskManagers' CPU from the round's last record read until every VIN was emitted, per VIN emitted
  meanwhile (`staggered_flush_cpu_us_per_vin`), the checkpoints completed and failed meanwhile,
  the longest of them end to end and the newest one's size (`checkpoints_completed`,
  `checkpoints_failed`, `checkpoint_max_s`, `checkpoint_mb`), and the TaskManagers' largest
  resident memory so far (the kernel's high water mark: the JVM and, in thread mode, Python;
  `taskmanager_peak_rss_mb`); then the size of a savepoint divided by the VINs
  (`state_bytes_per_vin`);
- the merger with `stagger: false` and `delivery: at_least_once`: one flush of every VIN (100k
  by default; `--vins`) at one aligned instant, from the flush's timer until Kafka acknowledged
  every latest record (`flush_100k_s`: the cost of a burst);
- the floor (`bethos_flink.floor_graph`): the same source and key into a KeyedProcessFunction
  that does nothing: `ratio_to_floor` = the merger's rate / the floor's;
- Flink SQL `GROUP BY vin` with `LAST_VALUE` per signal (arrival order) and with the value of
  the newest event time per signal (`MAX` of a ts-prefixed value, mini-batches in two phases):
  `ratio_to_last_value_sql`, `ratio_to_event_time_sql`.
A first, warm-up run is printed but left out; medians over the other runs are reported (with
`--runs 0` the warm-up run is the one reported: for inputs so large that a warm-up is too long).
`--state-backend` sets `flink.state_backend`; `--no-baselines` leaves out the floor and the SQL
jobs.
"""

from __future__ import annotations

import functools
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Producer

from bethos.config import MergerSettings, load_settings
from bethos.record import AggregatedRecord, Signal, encode_aggregated
from bethos.strategies.flushing import flush_due
from connectors.kafka.admin import create_topics
from connectors.kafka.reader import end_offsets
from devstack.bench.cpu import process_cpu_s
from devstack.stack import Stack, jobs
from devstack.stack.health import http_json

FLUSH_INTERVAL_MS = 60_000
# The slowest rate the merger read an update round at (1M VINs on this machine: 7.4k/s), so
# that a round fits in one flush interval (`flush_interval_ms`).
SLOWEST_RECORDS_PER_S = 5_000


def flush_interval_ms(vins: int) -> int:
    """The runs' flush interval: 60 s, or whole minutes long enough to read one update round of
    every VIN in (else the flush measured is not one burst: part of the VINs would flush at
    the boundary passed while the round was read)."""
    minutes = -(-vins // (SLOWEST_RECORDS_PER_S * 60))
    return max(FLUSH_INTERVAL_MS, minutes * 60_000)


SQL_JOB = Path(__file__).with_name("sql_merge_job.py")
FLOOR_JOB = Path(__file__).with_name("floor_job.py")


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


@functools.cache
def _rest_url() -> str:
    """The REST address of the stack's cluster (a second cluster listens on other ports)."""
    return Stack().flink.rest_url


def _rest(path: str) -> Any:
    return http_json(f"{_rest_url()}{path}", timeout=10)


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


def operator_metric(job_id: str, name: str) -> int:
    """The largest value of an operator metric (`<operator>.<name>`) over the job's subtasks."""
    largest = 0
    for vertex in _rest(f"/jobs/{job_id}")["vertices"]:
        base = f"/jobs/{job_id}/vertices/{vertex['id']}/metrics"
        wanted = [m["id"] for m in _rest(base) if m["id"].endswith(f".{name}")]
        if wanted:
            values = _rest(f"{base}?get={','.join(wanted)}")
            largest = max([largest, *(int(float(v["value"])) for v in values)])
    return largest


def latest_count(settings: MergerSettings) -> int:
    return sum(end_offsets(settings.kafka, settings.topics.latest).values())


def _sleep_past_boundary(interval_ms: int) -> None:
    now_ms = int(time.time() * 1000)
    time.sleep((flush_due(now_ms, interval_ms) - now_ms) / 1000 + 1)


@dataclass(frozen=True)
class FlushProbe:
    """A running merger job whose flush of every VIN is measured: one more update round of
    every VIN, merged by the job, then what it emits."""

    settings: MergerSettings
    job_id: str
    vins: int
    signals: int
    read: int
    """Records the job has read before the round."""
    interval_ms: int

    def update_every_vin(self, seed: int) -> int:
        """Once the latest topic is still, the round, read by the job; the latest topic's
        count before it."""
        _wait_stable(self.settings)
        before = latest_count(self.settings)
        now_ms = int(time.time() * 1000)
        produce(self.settings, update_round(self.vins, self.signals, now_ms - 60_000, seed, 1))
        consume_rate(self.job_id, self.read + self.vins)
        return before

    def emitted_since(self, before: int) -> int:
        return latest_count(self.settings) - before


def measure_flush(probe: FlushProbe, seed: int) -> float:
    """Seconds from a flush's timer until Kafka acknowledged all the VINs' latest records."""
    # Start right after a flush, so every VIN's update lands in the same next flush.
    _sleep_past_boundary(probe.interval_ms)
    due_ms = flush_due(int(time.time() * 1000), probe.interval_ms)
    before = probe.update_every_vin(seed)
    if time.time() * 1000 >= due_ms:
        raise RuntimeError(
            f"reading the update round took past the flush at {due_ms}: the flush would not be "
            "one burst (flush_interval_ms is too short for this many VINs)"
        )
    deadline = time.monotonic() + probe.interval_ms / 1000 + 300
    while time.monotonic() < deadline:
        if probe.emitted_since(before) >= probe.vins:
            return time.time() - due_ms / 1000
        time.sleep(0.2)
    raise RuntimeError(f"the flush emitted {probe.emitted_since(before)} of {probe.vins} in time")


@dataclass(frozen=True)
class StaggeredFlush:
    """What an update round of every VIN cost while it flushed (shipped settings)."""

    max_stall_ms: int
    """The longest go of timer callbacks."""
    cpu_us_per_vin: int
    """The TaskManagers' CPU (every thread: the task's, Flink's timer thread, Kafka's, the
    JIT's, GC) from the round's last record read until the last VIN was emitted, per VIN
    emitted in that time."""


def measure_stall(probe: FlushProbe, seed: int, pids: list[int]) -> StaggeredFlush:
    """An update round of every VIN, read by the job, and its flush: `StaggeredFlush`."""
    before = probe.update_every_vin(seed)
    cpu_before, emitted_before = process_cpu_s(pids), probe.emitted_since(before)
    cpu_us_per_vin = 0
    longest = 0
    deadline = time.monotonic() + 2 * probe.interval_ms / 1000 + 300
    # The gauge holds a flush's figure once the flush's interval has ended: read it until the
    # interval in which the last VIN was emitted is over.
    closed: float | None = None
    while closed is None or time.time() < closed:
        longest = max(longest, operator_metric(probe.job_id, "longest_timer_run_ms"))
        if closed is None and probe.emitted_since(before) >= probe.vins:
            cpu_s = process_cpu_s(pids) - cpu_before
            cpu_us_per_vin = round(cpu_s * 1e6 / max(probe.vins - emitted_before, 1))
            closed = flush_due(int(time.time() * 1000), probe.interval_ms) / 1000 + 3
        elif closed is None and time.monotonic() > deadline:
            raise RuntimeError(f"the flush emitted {probe.emitted_since(before)} of {probe.vins}")
        time.sleep(1)
    longest = max(longest, operator_metric(probe.job_id, "longest_timer_run_ms"))
    return StaggeredFlush(longest, cpu_us_per_vin)


def checkpoints(job_id: str) -> dict[str, Any]:
    """The job's checkpoint statistics (Flink's `/jobs/ID/checkpoints`)."""
    return _rest(f"/jobs/{job_id}/checkpoints")  # type: ignore[no-any-return]


def checkpoint_figures(job_id: str, before: dict[str, Any]) -> dict[str, Any]:
    """The checkpoints completed and failed since `before` (a `checkpoints` answer), the
    longest of them end to end, and the newest one's size."""
    now = checkpoints(job_id)
    first = before["counts"]["completed"] + before["counts"]["failed"]
    since = [c for c in now.get("history", []) if c["id"] > first]
    done = [c for c in since if c["status"] == "COMPLETED"]
    latest = (now.get("latest") or {}).get("completed") or {}
    return {
        "checkpoints_completed": now["counts"]["completed"] - before["counts"]["completed"],
        "checkpoints_failed": now["counts"]["failed"] - before["counts"]["failed"],
        "checkpoint_max_s": round(
            max((c["end_to_end_duration"] for c in done), default=0) / 1000, 2
        ),
        "checkpoint_mb": round(latest.get("checkpointed_size", 0) / 1e6, 1),
    }


def peak_rss_mb(pids: list[int]) -> int:
    """The largest resident size any of these processes has had (the kernel's VmHWM), MB."""
    peak = 0
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
        peak = max(peak, kb // 1024)
    return peak


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


def run_baseline(stack: Stack, script: Path, config: Path, group: str, **env: str) -> str:
    """Submit one of the baselines (SQL_JOB, FLOOR_JOB) on the run's config and a group."""
    env = {"BETHOS_CONFIG": str(config), "BETHOS_BENCH_GROUP": group, **env}
    return jobs.run_script(stack, script, [], env)


def rate_of(job_id: str, total: int, stack: Stack) -> float:
    """The job's rate over the first `total` records; the job is cancelled after."""
    try:
        return consume_rate(job_id, total)
    finally:
        jobs.stop(stack, job_id)


KEYS = (
    "merged_records_per_s",
    "noop_floor_records_per_s",
    "ratio_to_floor",
    "event_time_sql_records_per_s",
    "ratio_to_event_time_sql",
    "last_value_sql_records_per_s",
    "ratio_to_last_value_sql",
    "flush_100k_s",
    "max_stall_ms",
    "staggered_flush_cpu_us_per_vin",
    "state_bytes_per_vin",
    "checkpoints_completed",
    "checkpoints_failed",
    "checkpoint_max_s",
    "checkpoint_mb",
    "taskmanager_peak_rss_mb",
)
BASELINE_KEYS = {
    "noop_floor_records_per_s",
    "ratio_to_floor",
    "event_time_sql_records_per_s",
    "ratio_to_event_time_sql",
    "last_value_sql_records_per_s",
    "ratio_to_last_value_sql",
}


def bench(
    vins: int,
    signals: int,
    rounds: int,
    runs: int,
    report: Callable[[str], None] = print,
    state_backend: str = "hashmap",
    baselines: bool = True,
) -> dict[str, Any]:
    """`report` hears each step as it starts (the CLI shows it with a spinner). Without
    `baselines` the floor and the SQL jobs are left out (and their ratios)."""
    stack = Stack()
    if not all(s.running for s in stack.status()):
        stack.up(progress=report)
    elif not jobs.running_jobs(stack):
        # A TaskManager's Python keeps the modules of the first code it ran (thread mode): the
        # jobs measured here must run the current code, the floor's module included.
        stack.flink.restart_taskmanagers(report)
    work = Path(tempfile.mkdtemp(prefix="bethos-bench-merger-"))
    tag = str(int(time.time()))
    total = vins * (rounds + 1)
    interval_ms = flush_interval_ms(vins)
    per_run = []
    # Run 0 warms up the TaskManager (its JVM and Python interpreter live across jobs; first
    # jobs measured up to 3x slower) and is left out of the medians.
    for run in range(0, runs + 1):
        # Each run: topics of its own holding the same input, a fresh group, no state.
        doc: dict[str, Any] = {
            "kafka": {"brokers": stack.bootstrap_servers()},
            "topics": {
                "aggregated": f"bench.merger.{tag}.{run}.aggregated",
                "latest": f"bench.merger.{tag}.{run}.latest",
                "dlq": f"bench.merger.{tag}.{run}.dlq",
                "partitions": 3,
            },
            "latest_merger": {
                "flush_interval": f"{interval_ms}ms",
                "emit": "changed",
                "bootstrap_from_latest": False,
            },
            "flink": {
                "parallelism": 1,
                "checkpoint_interval": "30s",
                "state_backend": state_backend,
            },
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
        report(f"{label}: the merger (shipped settings) consumes {total} records ...")
        job_id = jobs.submit(stack, "latest_merger", str(config))
        try:
            rate = consume_rate(job_id, total)
            report(f"{label}: {vins} VINs flush; the longest go of timer callbacks ...")
            before = checkpoints(job_id)
            probe = FlushProbe(settings, job_id, vins, signals, total, interval_ms)
            staggered = measure_stall(probe, 100 + run, stack.flink.taskmanager_pids())
            # The checkpoints taken while every VIN was updated and flushed.
            during_flush = checkpoint_figures(job_id, before)
            rss_mb = peak_rss_mb(stack.flink.taskmanager_pids())
        finally:
            report(f"{label}: stopping the merger with a savepoint (its state size) ...")
            savepoint = jobs.stop(stack, job_id, str(work / "savepoints"))
        state_bytes = directory_bytes(Path(str(savepoint).removeprefix("file:")))
        aligned = work / f"merger-{run}-aligned.yaml"
        doc["latest_merger"]["stagger"] = False
        # The burst as written at once (exactly once, it would wait for the next checkpoint).
        doc["latest_merger"]["delivery"] = "at_least_once"
        doc["consumer_group"] = f"bench-merger-{tag}-{run}-aligned"
        doc["topics"]["latest"] = f"{doc['topics']['latest']}.aligned"
        aligned.write_text(yaml.safe_dump(doc))
        aligned_settings = load_settings(MergerSettings, aligned)
        create_topics(aligned_settings.kafka, aligned_settings.topics)
        report(f"{label}: a flush of {vins} VINs at one instant until Kafka acknowledges it ...")
        aligned_id = jobs.submit(stack, "latest_merger", str(aligned))
        try:
            consume_rate(aligned_id, total + vins)
            probe = FlushProbe(
                aligned_settings, aligned_id, vins, signals, total + vins, interval_ms
            )
            flush_s = measure_flush(probe, seed=200 + run)
        finally:
            jobs.stop(stack, aligned_id)
        result: dict[str, Any] = {"run": run, "merged_records_per_s": round(rate)}
        if baselines:
            report(f"{label}: the floor (a keyed function doing nothing) consumes {total} ...")
            floor_rate = rate_of(
                run_baseline(stack, FLOOR_JOB, config, f"bench-floor-{tag}-{run}"), total, stack
            )
            report(f"{label}: Flink SQL, newest by event time, consumes {total} records ...")
            event_sql = rate_of(
                run_baseline(
                    stack,
                    SQL_JOB,
                    config,
                    f"bench-sql-et-{tag}-{run}",
                    BETHOS_BENCH_SQL="event_time",
                ),
                total,
                stack,
            )
            report(f"{label}: Flink SQL, LAST_VALUE, consumes {total} records ...")
            last_sql = rate_of(
                run_baseline(
                    stack,
                    SQL_JOB,
                    config,
                    f"bench-sql-lv-{tag}-{run}",
                    BETHOS_BENCH_SQL="last_value",
                ),
                total,
                stack,
            )
            result |= {
                "noop_floor_records_per_s": round(floor_rate),
                "ratio_to_floor": round(rate / floor_rate, 3),
                "event_time_sql_records_per_s": round(event_sql),
                "ratio_to_event_time_sql": round(rate / event_sql, 3),
                "last_value_sql_records_per_s": round(last_sql),
                "ratio_to_last_value_sql": round(rate / last_sql, 3),
            }
        result |= {
            "flush_100k_s": round(flush_s, 2),
            "max_stall_ms": staggered.max_stall_ms,
            "staggered_flush_cpu_us_per_vin": staggered.cpu_us_per_vin,
            "state_bytes_per_vin": round(state_bytes / vins),
            **during_flush,
            "taskmanager_peak_rss_mb": rss_mb,
        }
        if run == 0:
            result["warmup"] = True
        if run > 0 or runs == 0:
            per_run.append(result)
        print(json.dumps(result), flush=True)
    keys = [key for key in KEYS if baselines or key not in BASELINE_KEYS]
    return {
        "benchmark": "merger",
        "vins": vins,
        "signals": signals,
        "input_records": vins * (rounds + 1),
        "runs": runs,
        "state_backend": state_backend,
        "taskmanager_process_size": stack.flink.taskmanager_process_size(),
        **{key: statistics.median(r[key] for r in per_run) for key in keys},
    }
