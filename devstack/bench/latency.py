"""`bethos bench latency`: the delay from a reading's write into InfluxDB to its value on the
latest topic, at a steady load, for each flush interval asked (default 10 s and 2 min) and each
`latest_merger.delivery` asked (default both: `exactly_once`, then `at_least_once`).

Each case gets its own topics and database, a fresh ETL and merger, and a writer that writes
`rate` readings per second round-robin over `vins` VINs for `seconds`, each stamped with its
write time as the reading's ts (one signal, `value`). A reading counts as delivered by the
first record of its VIN carrying a `ts` at least its own (a newer reading of the same VIN
delivers it too: the latest topic only ever holds the newest value). For each reading:
- ETL: `produced_at` of the first aggregated record that delivers it, minus its ts;
- flush wait: `produced_at` of the first latest record that delivers it, minus the above;
- Kafka: when a `read_committed` consumer, reading the latest topic all along, received that
  message, minus its `produced_at` (with `exactly_once` this holds the wait for the checkpoint
  that commits the message's transaction);
- total: when that consumer received the message minus the reading's ts (the three summed).
Readings written during the first `warmup` seconds (the jobs' start) are left out.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from confluent_kafka import Consumer, TopicPartition

from bethos.config import EtlSettings, KafkaSettings, MergerSettings, load_settings
from bethos.exceptions import BethosError
from connectors.influxdb.writer import InfluxWriter, Point
from connectors.kafka.admin import create_topics
from devstack.stack import Stack, jobs
from devstack.stack.pipeline import pipeline_docs

SIGNAL = "value"
Report = Callable[[str], None]
Advance = Callable[[int, int], None]  # (readings written, readings to write)


@dataclass(frozen=True, slots=True)
class Reading:
    vin: str
    ts: int


@dataclass(frozen=True, slots=True)
class Seen:
    """A record of a VIN as a topic carried it: its signal's ts, produced_at, and when it
    reached the reader (the message's timestamp, or when a live reader received it)."""

    ts: int
    produced_at: int
    message_ts: int


class LiveReader:
    """Reads a topic from the beginning as a `read_committed` consumer until stopped, noting
    when each record arrived: when it became visible to such a reader."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.kafka, self.topic = kafka, topic
        self.seen: dict[str, list[Seen]] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.failure: Exception | None = None
        self.thread = threading.Thread(target=self._run, name="latency-reader", daemon=True)

    def _run(self) -> None:
        consumer = Consumer(
            {
                **self.kafka.python_client_properties(),
                "group.id": f"bethos-bench-latency-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        try:
            consumer.subscribe([self.topic])
            while not self.stopping.is_set():
                message = consumer.poll(0.2)
                value = None if message is None or message.error() else message.value()
                if value is None:
                    continue
                arrived = int(time.time() * 1000)
                doc = orjson.loads(value)
                signal = doc.get("data", {}).get("signals", {}).get(SIGNAL)
                if signal is not None:
                    with self.lock:
                        self.seen.setdefault(doc["vin"], []).append(
                            Seen(int(signal["ts"]), int(doc["produced_at"]), arrived)
                        )
        except Exception as exc:  # reported by snapshot(), not lost with the thread
            self.failure = exc
        finally:
            consumer.close()

    def start(self) -> LiveReader:
        self.thread.start()
        return self

    def snapshot(self) -> dict[str, list[Seen]]:
        if self.failure is not None:
            raise BethosError(f"reading {self.topic}: {self.failure}")
        with self.lock:
            return {vin: list(seen) for vin, seen in self.seen.items()}

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)


@dataclass(frozen=True, slots=True)
class Delay:
    etl_ms: int
    flush_wait_ms: int
    kafka_ms: int

    @property
    def total_ms(self) -> int:
        return self.etl_ms + self.flush_wait_ms + self.kafka_ms


# -- the arithmetic (pure) ---------------------------------------------------------------------
def newest_per_vin(readings: Iterable[Reading]) -> dict[str, int]:
    newest: dict[str, int] = {}
    for reading in readings:
        newest[reading.vin] = max(reading.ts, newest.get(reading.vin, reading.ts))
    return newest


def vins_behind(newest: dict[str, int], latest: dict[str, list[Seen]]) -> int:
    """The VINs whose newest reading no record of the latest topic delivers yet."""
    return sum(
        1 for vin, ts in newest.items() if not any(seen.ts >= ts for seen in latest.get(vin, []))
    )


def first_delivering(seen: Sequence[Seen], ts: int) -> Seen | None:
    """The earliest record (by produced_at) whose ts is at least `ts`."""
    found = [s for s in seen if s.ts >= ts]
    return min(found, key=lambda s: s.produced_at) if found else None


def delays(
    readings: Iterable[Reading],
    aggregated: dict[str, list[Seen]],
    latest: dict[str, list[Seen]],
) -> tuple[list[Delay], int]:
    """(the delay of every reading delivered to the latest topic, readings not delivered)."""
    found: list[Delay] = []
    missing = 0
    for reading in readings:
        agg = first_delivering(aggregated.get(reading.vin, []), reading.ts)
        out = first_delivering(latest.get(reading.vin, []), reading.ts)
        if agg is None or out is None:
            missing += 1
            continue
        found.append(
            Delay(
                agg.produced_at - reading.ts,
                out.produced_at - agg.produced_at,
                out.message_ts - out.produced_at,
            )
        )
    return found, missing


def percentile(sorted_values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of sorted values (q in 0..100)."""
    if not sorted_values:
        raise BethosError("no values to take a percentile of")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


def summary(values: Iterable[int]) -> dict[str, int]:
    ordered = sorted(values)
    return {f"p{q}": percentile(ordered, q) for q in (50, 95, 99)} | {"max": ordered[-1]}


def summarize(found: Sequence[Delay]) -> dict[str, dict[str, int]]:
    return {
        "etl_ms": summary(d.etl_ms for d in found),
        "flush_wait_ms": summary(d.flush_wait_ms for d in found),
        "kafka_ms": summary(d.kafka_ms for d in found),
        "total_ms": summary(d.total_ms for d in found),
    }


# -- writing and reading -----------------------------------------------------------------------
def vin(index: int) -> str:
    return f"LAT{index:014d}"


def write_steady(
    settings: EtlSettings,
    rate: int,
    vins: int,
    seconds: float,
    advance: Advance,
    tick_s: float = 0.1,
) -> list[Reading]:
    """Write `rate` readings per second for `seconds`, a batch per tick, each stamped with the
    time just before its batch's write; returns what was written."""
    influx = settings.influxdb
    writer = InfluxWriter(influx)
    total = int(rate * seconds)
    written: list[Reading] = []
    started = time.monotonic()
    try:
        while len(written) < total:
            due = min(total, int((time.monotonic() - started) * rate) + 1)
            now = int(time.time() * 1000)
            indexes = range(len(written), due)
            batch = [Reading(vin(i % vins), now) for i in indexes]
            writer.write(
                Point(
                    influx.measurement,
                    {
                        influx.pod_tag: influx.pods[i % vins % len(influx.pods)],
                        influx.vin_tag: r.vin,
                    },
                    {SIGNAL: float(i)},
                    r.ts,
                )
                for i, r in zip(indexes, batch, strict=True)
            )
            written.extend(batch)
            advance(len(written), total)
            # The next batch holds what fell due meanwhile: `rate` per second on average.
            time.sleep(tick_s)
    finally:
        writer.close()
    return written


def read_seen(kafka: KafkaSettings, topic: str, timeout: float = 30.0) -> dict[str, list[Seen]]:
    """Every record of the topic up to its current end: VIN -> what each carried of SIGNAL."""
    consumer = Consumer(
        {
            **kafka.python_client_properties(),
            "group.id": f"bethos-bench-latency-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    seen: dict[str, list[Seen]] = {}
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        partitions = list(metadata.topics[topic].partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in partitions
        }
        pending = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        while pending:
            message = consumer.poll(timeout)
            if message is None:
                raise BethosError(f"timed out reading {topic}")
            if message.error():
                raise BethosError(f"reading {topic}: {message.error()}")
            partition, offset, value = message.partition(), message.offset(), message.value()
            if partition is None or offset is None:
                continue
            if offset >= ends[partition] - 1:
                pending.discard(partition)
            if value is None or offset >= ends[partition]:
                continue
            doc = orjson.loads(value)
            signal = doc.get("data", {}).get("signals", {}).get(SIGNAL)
            if signal is None:
                continue
            seen.setdefault(doc["vin"], []).append(
                Seen(int(signal["ts"]), int(doc["produced_at"]), int(message.timestamp()[1]))
            )
    finally:
        consumer.close()
    return seen


# -- one case ----------------------------------------------------------------------------------
def case_configs(
    work: Path, stack: Stack, tag: str, pods: int, flush_ms: int, delivery: str
) -> tuple[Path, Path]:
    etl, merger = pipeline_docs(
        stack,
        f"bench.latency.{tag}",
        f"bench_latency_{tag}",
        [f"lat-{i}" for i in range(pods)],
        f"bench-latency-{tag}",
    )
    # The production settings of config/etl.yaml, except where a poll starts.
    etl.update(
        poll_interval="10s",
        chunk_duration="10s",
        lookback="30s",
        ingest_delay="2s",
        start_at=int(time.time() * 1000),
    )
    merger["latest_merger"] = {"flush_interval": f"{flush_ms}ms", "delivery": delivery}
    etl_path, merger_path = work / f"etl-{tag}.yaml", work / f"merger-{tag}.yaml"
    etl_path.write_text(yaml.safe_dump(etl))
    merger_path.write_text(yaml.safe_dump(merger))
    return etl_path, merger_path


def run_case(
    stack: Stack,
    work: Path,
    flush_ms: int,
    delivery: str,
    rate: int,
    vins: int,
    pods: int,
    seconds: float,
    warmup: float,
    report: Report,
    advance: Advance,
) -> dict[str, Any]:
    tag = f"{flush_ms // 1000}s-{delivery.split('_')[0]}-{uuid.uuid4().hex[:6]}"
    etl_config, merger_config = case_configs(work, stack, tag, pods, flush_ms, delivery)
    etl_settings = load_settings(EtlSettings, etl_config)
    merger_settings = load_settings(MergerSettings, merger_config)
    report("creating the case's topics and database")
    create_topics(merger_settings.kafka, merger_settings.topics)
    writer = InfluxWriter(etl_settings.influxdb)
    try:
        writer.create_database()
    finally:
        writer.close()
    report("submitting the ETL and the merger")
    reader = LiveReader(merger_settings.kafka, merger_settings.topics.latest).start()
    started = [jobs.submit(stack, "etl", str(etl_config))]
    try:
        started.append(jobs.submit(stack, "latest_merger", str(merger_config)))
        report(f"writing {rate} readings/s over {vins} VINs for {seconds + warmup:.0f}s")
        written = write_steady(etl_settings, rate, vins, seconds + warmup, advance)
        measured_from = written[0].ts + int(warmup * 1000) if written else 0
        measured = [r for r in written if r.ts >= measured_from]
        newest = newest_per_vin(measured)
        # Until every VIN's newest reading is on the latest topic (then every reading is): a
        # poll, a flush (each VIN at its own offset), a checkpoint, and some slack.
        checkpoint_s = merger_settings.checkpoint_interval_ms / 1000
        deadline = time.monotonic() + 10 + 2 + flush_ms / 1000 + checkpoint_s + 60
        latest: dict[str, list[Seen]] = {}
        while time.monotonic() < deadline:
            latest = reader.snapshot()
            behind = vins_behind(newest, latest)
            report(
                f"waiting for every VIN's newest reading on the latest topic "
                f"({behind} VINs to go, {deadline - time.monotonic():.0f}s left)"
            )
            if not behind:
                break
            time.sleep(2)
        aggregated = read_seen(merger_settings.kafka, merger_settings.topics.aggregated)
    finally:
        reader.stop()
        for job_id in started:
            jobs.stop(stack, job_id)
    found, missing = delays(measured, aggregated, latest)
    if not found:
        raise BethosError(f"flush {flush_ms} ms: no reading reached the latest topic")
    return {
        "flush_interval_ms": flush_ms,
        "delivery": delivery,
        "readings_written": len(written),
        "readings_measured": len(measured),
        "readings_delivered": len(found),
        "readings_missing": missing,
        **summarize(found),
        "mean_total_ms": round(statistics.fmean(d.total_ms for d in found)),
    }


def bench(
    flush_intervals_ms: Sequence[int],
    deliveries: Sequence[str],
    rate: int,
    vins: int,
    pods: int,
    seconds: float | None,
    warmup: float,
    report: Report,
    advance: Advance,
) -> dict[str, Any]:
    """Every case one after another; `seconds` None: three flush intervals, at least 60 s."""
    if rate <= 0 or vins <= 0 or pods <= 0:
        raise BethosError("--rate, --vins and --pods must be positive")
    stack = Stack()
    if not all(s.running for s in stack.status()):
        stack.up(progress=report)
    work = Path(tempfile.mkdtemp(prefix="bethos-bench-latency-"))
    cases = []
    for flush_ms in flush_intervals_ms:
        length = seconds if seconds is not None else max(60.0, 3 * flush_ms / 1000)
        for delivery in deliveries:
            case = (flush_ms, delivery, rate, vins, pods, length, warmup, report, advance)
            cases.append(run_case(stack, work, *case))
    return {"benchmark": "latency", "rate": rate, "vins": vins, "pods": pods, "cases": cases}
