"""`bethos bench etl`: readings per second from InfluxDB into Kafka through the ETL job, against
a plain HTTP client fetching and parsing the same queries from the same server, side by side.

One data set (VINs spread over pods, one point per VIN in one 10 s window, `signals` fields
each) is written once. Each run then times the baseline (requests + orjson, the same InfluxQL,
the same chunking, one pod after another), the same client on as many connections as the ETL
keeps queries running (`influxdb.concurrent_reads` x parallelism), and a fresh ETL job on the
Flink cluster that reads exactly that window. The ETL's time runs from the first pod's read
being handed over to the last pod's records handed to the Kafka sink, taken from its
`event=poll` log lines; it also waits until Kafka holds every record. Medians over the runs.
One read of the ETL runs first and is not counted (the TaskManager's JIT compiles what it
runs). Where the CPU went in each read, per reading: InfluxDB, the Kafka brokers, the TaskManagers
(the ETL's Python runs inside them), this process (the plain client) and the whole machine,
sampled every 0.2 s over the read's span; the TaskManagers' CPU also by thread name.

Last, the extra load of reconcile passes on InfluxDB: the CPU seconds InfluxDB spends on one
pass's counts (every pod, `reconcile_window` up to the window's end) against those of reading
the window for every pod, scaled to one `reconcile_interval` of polls. The data set holds one
window, so the counts cover an hour that is mostly empty: InfluxDB's cost of a count is mostly
per series and field, but an hour full of points costs it more than this shows.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import requests
import yaml

from bethos.config import EtlSettings, load_settings
from bethos.fetch_result import Window
from bethos.logevents import parse_event
from bethos.source.window_reads import split_chunks
from connectors.influxdb.client import InfluxClient
from connectors.influxdb.influxql import wide_window_query, window_params
from connectors.influxdb.writer import InfluxWriter, Point
from connectors.kafka.admin import create_topics
from connectors.kafka.reader import end_offsets
from devstack.bench.cpu import CpuSampler, process_cpu_s, split_threads
from devstack.stack import Stack, jobs

WINDOW_MS = 10_000


def write_data(settings: EtlSettings, vins: int, signals: int, start: int) -> int:
    influx = settings.influxdb
    rng = random.Random(11)
    writer = InfluxWriter(influx)
    try:
        writer.drop_database()
        writer.create_database()
        points = (
            Point(
                influx.measurement,
                {influx.pod_tag: influx.pods[v % len(influx.pods)], influx.vin_tag: f"B{v:016d}"},
                {f"s{j:02d}": round(rng.uniform(0, 100), 2) for j in range(signals)},
                start + (v * 7919) % WINDOW_MS,
            )
            for v in range(vins)
        )
        return writer.write(points, batch=5_000)
    finally:
        writer.close()


def _fetch_pod(settings: EtlSettings, window: Window, pod: str) -> int:
    """Fetch and parse one pod's window the way the ETL queries it: the values read."""
    influx = settings.influxdb
    query = wide_window_query(influx.measurement, influx.pod_tag, influx.vin_tag)
    values = 0
    with requests.Session() as session:
        for chunk in split_chunks(window, settings.chunk_duration):
            response = session.post(
                f"{influx.url}/query",
                data={
                    "db": influx.database,
                    "q": query,
                    "params": orjson.dumps(window_params(pod, chunk.start, chunk.end)).decode(),
                    "epoch": "ns",
                    "chunked": "true",
                    "chunk_size": str(settings.batch_size),
                },
                stream=True,
            )
            for line in response.iter_lines():
                for result in orjson.loads(line).get("results", []):
                    for series in result.get("series", []):
                        for row in series["values"]:
                            values += len(row) - 1 - row.count(None)
    return values


def baseline(settings: EtlSettings, window: Window, connections: int = 1) -> tuple[int, float]:
    """A plain HTTP client fetching and parsing the ETL's queries, one pod at a time on each
    of `connections` connections: (values, seconds)."""
    pods = settings.influxdb.pods
    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        values = sum(pool.map(lambda pod: _fetch_pod(settings, window, pod), pods))
    return values, time.perf_counter() - started


def process_groups(stack: Stack) -> dict[str, list[int]]:
    """The processes whose CPU the benchmark reports, by what they are; `bench` is this
    process, where the plain client runs."""
    brokers = (stack.processes.pid(f"kafka-{node}") for node in stack.kafka.nodes())
    influxd = stack.processes.pid("influxdb")
    return {
        "influxdb": [] if influxd is None else [influxd],
        "kafka": [pid for pid in brokers if pid is not None],
        "taskmanager": stack.flink.taskmanager_pids(),
        "bench": [os.getpid()],
    }


def busiest_threads(cpu_s: dict[str, float], shown: int = 6) -> dict[str, float]:
    """The threads' figures of a `CpuSampler.between`: the busiest `shown` by name, the rest
    summed as `other`."""
    _, threads = split_threads(cpu_s)
    ordered = sorted(threads.items(), key=lambda item: -item[1])
    busiest = dict(ordered[:shown])
    busiest["other"] = round(sum(s for _, s in ordered[shown:]), 2)
    return busiest


def cpu_us_per_reading(cpu_s: dict[str, float], readings: int) -> dict[str, float]:
    return {name: round(seconds * 1e6 / max(readings, 1), 2) for name, seconds in cpu_s.items()}


def reconcile_load(
    settings: EtlSettings, window: Window, influxd: int, runs: int
) -> dict[str, float]:
    """InfluxDB's CPU seconds for reading the window of every pod (one poll of each) and for one
    reconcile pass's counts; the extra load is the pass against the polls of one interval."""
    pods = settings.influxdb.pods
    counted = Window(window.end - settings.reconcile_window, window.end)
    client = InfluxClient(settings.influxdb)
    reads, passes, pass_walls = [], [], []
    try:
        for _ in range(runs):
            before = process_cpu_s([influxd])
            for pod in pods:
                client.fetch_window(pod, window)
            reads.append(process_cpu_s([influxd]) - before)
            before, started = process_cpu_s([influxd]), time.perf_counter()
            for pod in pods:
                client.count_buckets(pod, counted, settings.chunk_duration)
            passes.append(process_cpu_s([influxd]) - before)
            pass_walls.append(time.perf_counter() - started)
    finally:
        client.close()
    polls_per_interval = settings.reconcile_interval / settings.poll_interval
    read_cpu, pass_cpu = statistics.median(reads), statistics.median(passes)
    return {
        "influxdb_cpu_s_per_poll_of_every_pod": round(read_cpu, 2),
        "influxdb_cpu_s_per_reconcile_pass": round(pass_cpu, 2),
        "reconcile_pass_s": round(statistics.median(pass_walls), 2),
        "polls_per_reconcile_interval": polls_per_interval,
        "reconcile_extra_load": round(pass_cpu / (read_cpu * polls_per_interval), 4),
    }


def etl_polls(stack: Stack, pods: set[str], window: Window) -> list[tuple[int, int, int, float]]:
    """(rows, records, duration_ms, logged at) of the logged polls of exactly this window."""
    found = []
    for log in stack.taskmanager_logs():
        for line in log.read_text(errors="replace").split("\n"):
            event = parse_event(line)
            if event is None or event.component != "influxdb_source" or event.event != "poll":
                continue
            fields = event.fields
            polled = (int(fields["window_start"]), int(fields["window_end"]))
            if fields["pod"] in pods and polled == (window.start, window.end):
                logged = datetime.strptime(event.prefix[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                found.append(
                    (
                        int(fields["rows"]),
                        int(fields["records"]),
                        int(fields["duration_ms"]),
                        logged,
                    )
                )
    return found


def run_etl(stack: Stack, settings: EtlSettings, config: Path, window: Window) -> dict[str, Any]:
    pods = set(settings.influxdb.pods)
    before = sum(end_offsets(settings.kafka, settings.topics.aggregated).values())
    earlier_polls = len(etl_polls(stack, pods, window))  # earlier runs read the same window
    job_id = jobs.submit(stack, "etl", str(config))
    try:
        deadline = time.monotonic() + 600
        polls: list[tuple[int, int, int, float]] = []
        while time.monotonic() < deadline:
            polls = etl_polls(stack, pods, window)[earlier_polls:]
            if len(polls) >= len(pods):
                break
            time.sleep(1)
        else:
            raise RuntimeError(f"the ETL polled {len(polls)} of {len(pods)} pods in time")
        records = sum(p[1] for p in polls)
        while time.monotonic() < deadline:
            arrived = sum(end_offsets(settings.kafka, settings.topics.aggregated).values())
            if arrived - before >= records:
                break
            time.sleep(1)
    finally:
        jobs.stop(stack, job_id)
    rows = sum(p[0] for p in polls)
    # Wall time from the first poll's start to the last poll's end: with parallel subtasks the
    # polls overlap. (With one subtask this equals the sum of the durations, give or take.)
    first_start = min(p[3] - p[2] / 1000 for p in polls)
    seconds = max(p[3] for p in polls) - first_start
    return {
        "readings": rows,
        "records": records,
        "seconds": seconds,
        "in_kafka": arrived - before,
        "span": (first_start, first_start + seconds),
    }


def median_per_group(runs: Iterable[dict[str, float]]) -> dict[str, float]:
    figures = list(runs)
    return {name: statistics.median(f[name] for f in figures) for name in figures[0]}


def bench(
    vins: int,
    pods: int,
    signals: int,
    runs: int,
    parallelism: int,
    report: Callable[[str], None] = print,
) -> dict[str, Any]:
    """`report` hears each step as it starts (the CLI shows it with a spinner)."""
    stack = Stack()
    if not all(s.running for s in stack.status()):
        stack.up(progress=report)
    start = (int(time.time() * 1000) // WINDOW_MS - 12) * WINDOW_MS
    window = Window(start, start + WINDOW_MS)
    work = Path(tempfile.mkdtemp(prefix="bethos-bench-etl-"))
    doc = {
        "kafka": {"brokers": stack.bootstrap_servers()},
        "topics": {
            "aggregated": "bench.etl.aggregated",
            "latest": "bench.etl.latest",
            "dlq": "bench.etl.dlq",
        },
        "influxdb": {"database": "bench_etl", "pods": [f"bench-{i}" for i in range(pods)]},
        "poll_interval": "10s",
        "chunk_duration": "10s",
        "lookback": "0s",
        "max_window": "10s",
        "start_at": start,
        "batch_size": 10_000,
        "reconcile_interval": "5m",
        "reconcile_window": "1h",
        "flink": {"parallelism": parallelism},
    }
    config = work / "etl.yaml"
    config.write_text(yaml.safe_dump(doc))
    settings = load_settings(EtlSettings, config)
    create_topics(settings.kafka, settings.topics)
    report(f"writing {vins} VINs x {signals} signals over {pods} pods into InfluxDB ...")
    written = write_data(settings, vins, signals, start)
    report("warming up: one read of the window by the plain client ...")
    baseline(settings, window)  # warm-up: the first read after a write is slower for anyone
    # The ETL keeps this many queries running at once; the second baseline does the same.
    connections = min(pods, settings.influxdb.concurrent_reads * parallelism)
    # The TaskManager's JVM lives across jobs and compiles what a job runs as it goes: after a
    # TaskManager's start its JIT took as much CPU as the poll function's task thread in the
    # first read. One read of the ETL, not counted, runs first.
    report("warming up: one read of the window by the ETL job (not counted) ...")
    run_etl(stack, settings, config, window)
    per_run = []
    groups = process_groups(stack)
    for run in range(1, runs + 1):
        report(f"run {run}/{runs}: the plain client reads the window, one pod after another ...")
        values, base_s = baseline(settings, window)
        report(f"run {run}/{runs}: the plain client on {connections} connections ...")
        with CpuSampler(groups) as sampler:
            same_started = time.time()
            same_values, same_s = baseline(settings, window, connections)
        same_cpu = sampler.between(same_started, same_started + same_s)
        report(f"run {run}/{runs}: the ETL job reads the window into Kafka ...")
        with CpuSampler(groups, threads_of=groups["taskmanager"]) as sampler:
            etl = run_etl(stack, settings, config, window)
        etl_cpu = sampler.between(*etl["span"])
        etl_groups, _ = split_threads(etl_cpu)
        etl_threads = busiest_threads(etl_cpu)
        result = {
            "run": run,
            "baseline_readings_per_s": round(values / base_s),
            "baseline_same_connections_readings_per_s": round(same_values / same_s),
            "etl_readings_per_s": round(etl["readings"] / etl["seconds"]),
            "etl_readings": etl["readings"],
            "baseline_readings": values,
            "etl_records": etl["records"],
            "records_in_kafka": etl["in_kafka"],
            # Where the CPU went during each read: per reading, per group of processes
            # (`machine` is every process, all cores).
            "etl_cpu_us_per_reading": cpu_us_per_reading(etl_groups, etl["readings"]),
            # The TaskManagers' share by thread: the poll function's task thread (named after
            # its operator chain), `influxdb-read_N` (queries and parsing), the Kafka producer.
            "etl_taskmanager_threads_us_per_reading": cpu_us_per_reading(
                etl_threads, etl["readings"]
            ),
            "baseline_same_connections_cpu_us_per_reading": cpu_us_per_reading(
                same_cpu, same_values
            ),
        }
        etl_rate = result["etl_readings_per_s"]
        result["ratio"] = round(etl_rate / result["baseline_readings_per_s"], 3)
        result["ratio_same_connections"] = round(
            etl_rate / result["baseline_same_connections_readings_per_s"], 3
        )
        print(json.dumps(result), flush=True)
        per_run.append(result)
    influxd = stack.processes.pid("influxdb")
    reconcile: dict[str, float] = {}
    if influxd is not None:
        report(f"reconcile: InfluxDB's CPU for {runs} passes' counts against reads ...")
        reconcile = reconcile_load(settings, window, influxd, runs)
    return {
        "benchmark": "etl",
        "vins": vins,
        "pods": pods,
        "signals": signals,
        "points_written": written,
        "runs": runs,
        "parallelism": parallelism,
        "connections": connections,
        "etl_readings_per_s": statistics.median(r["etl_readings_per_s"] for r in per_run),
        "baseline_readings_per_s": statistics.median(r["baseline_readings_per_s"] for r in per_run),
        "baseline_same_connections_readings_per_s": statistics.median(
            r["baseline_same_connections_readings_per_s"] for r in per_run
        ),
        "ratio_same_connections": statistics.median(r["ratio_same_connections"] for r in per_run),
        "ratio": statistics.median(r["ratio"] for r in per_run),
        **{
            key: median_per_group(r[key] for r in per_run)
            for key in ("etl_cpu_us_per_reading", "baseline_same_connections_cpu_us_per_reading")
        },
        **reconcile,
    }
