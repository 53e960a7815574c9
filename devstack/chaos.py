"""`bethos chaos`: both jobs on the local stack under a randomized schedule of faults, while
out-of-order telemetry with late and very late points is written; after each run the latest
topic is compared with InfluxDB's own `last()` for every VIN and signal.

A run's schedule comes from `random.Random(seed + run)` alone, so the same seed gives the same
faults at the same moments and the same writes. Faults, one at a time:
- `taskmanager`: SIGKILL of every TaskManager; new ones are started, Flink restores the jobs
  from their last checkpoint.
- `jobmanager`: SIGKILL of the JobManager, which ends both jobs; `up` starts a new one and each
  job is resumed from its retained checkpoint (`bethos resume`).
- `broker`: SIGKILL of the Kafka broker; it is started again.
- `influxdb`: InfluxDB stopped; the writer keeps what it could not write and writes it once
  InfluxDB is back, so those points arrive late.
- `redis` (with `--strategy state_store`): Redis stopped and started again.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from bethos.config import EtlSettings, MergerSettings, load_settings
from bethos.exceptions import BethosError
from bethos.strategy_registry import DEFAULT
from bethos.strategy_registry import STRATEGIES as REGISTERED
from connectors.influxdb.writer import InfluxWriter, Point
from connectors.kafka.admin import create_topics
from devstack.stack import REDIS_PORT, Stack, jobs, lifecycle
from devstack.stack.pipeline import pipeline_docs
from devstack.verify import history_regressions, verify

FAULTS = ("taskmanager", "jobmanager", "broker", "influxdb")
# The registered strategies a run knows how to set up: the default, and `state_store` with its
# store, its publisher job and Redis among the faults. (`inline` writes where its sink says and
# `window_stream` dead-letters the very late points: neither would end equal to InfluxDB.)
STRATEGIES = tuple(name for name in REGISTERED if name in (DEFAULT, "state_store"))
VINS = 40
SIGNALS = ("speed", "soc", "odometer", "temp")
POLL_S, LOOKBACK_S, RECONCILE_S, FLUSH_S = 2, 10, 10, 3
# Very late points are written up to this long after their own time.
VERY_LATE_S = 480


@dataclass(frozen=True)
class Fault:
    at_s: float
    kind: str
    down_s: float


@dataclass
class RunResult:
    run: int
    seed: int
    faults: list[Fault]
    readings_written: int = 0
    cells_checked: int = 0
    cells_wrong: int = 0
    differences: list[str] = field(default_factory=list)
    history_messages: int = 0
    history_regressions: int = 0
    regressions: list[str] = field(default_factory=list)
    seconds: float = 0.0


def schedule(rng: random.Random, seconds: float, kinds: tuple[str, ...]) -> list[Fault]:
    """About one fault per 40 s of the run (at least one), one at a time, none in the first 8 s
    nor in the last 10 s."""
    count = max(1, int(seconds // 40))
    # In tenths of a second, so that rounding never moves a fault out of its slot.
    slot = int((seconds - 18) * 10) // count
    faults = []
    for i in range(count):
        down = round(rng.uniform(2, min(10, slot / 20)) * 10)
        at = 80 + i * slot + int(rng.uniform(0, slot - down))
        faults.append(Fault(at / 10, rng.choice(kinds), down / 10))
    return faults


@dataclass(frozen=True)
class Reading:
    vin: str
    pod: str
    fields: dict[str, float]
    ts_ms: int


def readings(rng: random.Random, second: int, now_ms: int, pods: list[str]) -> list[Reading]:
    """One second's telemetry: some VINs report, mostly on time, some a few seconds late (inside
    the lookback), a few minutes late (a vehicle uploading its buffer: past the lookback)."""
    out = []
    for vin_no in rng.sample(range(VINS), rng.randint(3, 8)):
        roll = rng.random()
        if roll < 0.8:
            delay_ms = rng.randint(0, 2_000)
        elif roll < 0.92:
            delay_ms = rng.randint(3_000, (LOOKBACK_S - 2) * 1_000)
        else:
            delay_ms = rng.randint(60_000, VERY_LATE_S * 1_000)
        names = rng.sample(SIGNALS, rng.randint(1, len(SIGNALS)))
        fields = {name: round(second + rng.random(), 3) for name in names}
        vin = f"CHAOS{vin_no:012d}"
        out.append(Reading(vin, pods[vin_no % len(pods)], fields, now_ms - delay_ms))
    return out


def configs(stack: Stack, work: Path, strategy: str) -> tuple[Path, Path]:
    unique = uuid.uuid4().hex[:10]
    etl, merger = pipeline_docs(
        stack,
        f"chaos-{unique}",
        f"chaos_{unique}",
        [f"chaos-a-{unique}", f"chaos-b-{unique}"],
        f"chaos-{unique}",
        partitions=2,
    )
    etl.update(
        poll_interval=f"{POLL_S}s",
        chunk_duration="10s",
        lookback=f"{LOOKBACK_S}s",
        backfill="15m",
        reconcile_interval=f"{RECONCILE_S}s",
        reconcile_window="15m",
        retry_max_interval="2s",
        flink={"checkpoint_interval": "2s"},
    )
    merger.update(
        latest_merger={"flush_interval": f"{FLUSH_S}s"}, flink={"checkpoint_interval": "2s"}
    )
    if strategy == "state_store":
        merger["latest_merger"] = {
            "strategy": "state_store",
            "flush_interval": f"{FLUSH_S}s",
            "state_store": {
                "redis_url": f"redis://127.0.0.1:{REDIS_PORT}/0",
                "key_prefix": f"chaos-{unique}",
                "publish_interval": "2s",
            },
        }
    etl_path, merger_path = work / f"etl-{unique}.yaml", work / f"merger-{unique}.yaml"
    etl_path.write_text(yaml.safe_dump(etl))
    merger_path.write_text(yaml.safe_dump(merger))
    return etl_path, merger_path


class Writer:
    """Writes each second's readings on a thread of its own; what InfluxDB does not take is
    kept and written again on the next second."""

    def __init__(self, settings: EtlSettings, rng: random.Random, seconds: float) -> None:
        self.settings, self.rng, self.seconds = settings, rng, seconds
        self.pending: list[Point] = []
        self.written = 0
        self.thread = threading.Thread(target=self._run, name="chaos-writer", daemon=True)

    def _run(self) -> None:
        influx = self.settings.influxdb
        writer = InfluxWriter(influx)
        started = time.monotonic()
        try:
            for second in itertools.count():
                if time.monotonic() - started >= self.seconds:
                    break
                now_ms = int(time.time() * 1000)
                self.pending += [
                    Point(
                        influx.measurement,
                        {influx.pod_tag: r.pod, influx.vin_tag: r.vin},
                        r.fields,
                        r.ts_ms,
                    )
                    for r in readings(self.rng, second, now_ms, influx.pods)
                ]
                self._flush(writer)
                time.sleep(max(0.0, started + second + 1 - time.monotonic()))
            deadline = time.monotonic() + 120
            while self.pending and time.monotonic() < deadline:
                self._flush(writer)
                time.sleep(1)
        finally:
            writer.close()

    def _flush(self, writer: InfluxWriter) -> None:
        try:
            writer.write(self.pending)
        except Exception:  # InfluxDB is down (a fault): keep them for the next second
            return
        self.written += sum(len(p.fields) for p in self.pending)
        self.pending = []


def inject(stack: Stack, fault: Fault) -> None:
    if fault.kind == "taskmanager":
        stack.kill_taskmanager()
    elif fault.kind == "jobmanager":
        stack.kill_jobmanager()
    elif fault.kind == "broker":
        pid = stack.processes.pid("kafka-1")
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
    elif fault.kind == "influxdb":
        stack.stop_service("influxdb")
    elif fault.kind == "redis":
        stack.stop_service("redis")
    else:
        raise BethosError(f"unknown fault {fault.kind!r}")


def repair(stack: Stack, fault: Fault, job_names: list[str]) -> None:
    quiet: Callable[[str], None] = lambda _: None  # noqa: E731
    if fault.kind == "taskmanager":
        stack.start_taskmanager()
    elif fault.kind == "jobmanager":
        stack.up(progress=quiet)
        for job in job_names:
            if lifecycle.restore_points(stack, job):
                lifecycle.resume_job(stack, job, progress=quiet)
            else:  # killed before the job's first checkpoint: it starts again without state
                jobs.submit(stack, job, str(jobs.submission(stack, job)["config"]))
    elif fault.kind == "broker":
        stack.start_service("kafka")
    else:
        stack.start_service(fault.kind)


def one_run(
    stack: Stack,
    run: int,
    seed: int,
    seconds: float,
    strategy: str,
    work: Path,
    say: Callable[[str], None],
) -> RunResult:
    rng = random.Random(seed)
    kinds = FAULTS + (("redis",) if strategy == "state_store" else ())
    faults = schedule(rng, seconds, kinds)
    result = RunResult(run, seed, faults)
    etl_config, merger_config = configs(stack, work, strategy)
    settings = load_settings(EtlSettings, etl_config)
    merger = load_settings(MergerSettings, merger_config)
    create_topics(merger.kafka, merger.topics)
    setup = InfluxWriter(settings.influxdb)
    try:
        setup.create_database()
    finally:
        setup.close()
    writer = Writer(settings, random.Random(seed * 7919 + 1), seconds)
    started = time.monotonic()
    say(f"run {run}: starting both jobs; faults {[f'{f.kind}@{f.at_s}s' for f in faults]}")
    job_names = ["etl", "latest_merger"]
    jobs.submit(stack, "etl", str(etl_config))
    jobs.submit(stack, "latest_merger", str(merger_config))
    if strategy == "state_store":
        job_names.append("state_store_publisher")
        jobs.submit(stack, "state_store_publisher", str(merger_config))
    writer.thread.start()
    for fault in faults:
        time.sleep(max(0.0, started + fault.at_s - time.monotonic()))
        say(f"run {run}: {fault.kind} down for {fault.down_s}s")
        inject(stack, fault)
        time.sleep(fault.down_s)
        repair(stack, fault, job_names)
    writer.thread.join()
    say(f"run {run}: writes done; waiting for the latest topic to match InfluxDB ...")
    # Up to 3 minutes: a reconcile pass, a flush and the recovery from the last fault.
    deadline = time.monotonic() + 180
    _, truth_cells, differences = verify(settings)
    while differences and time.monotonic() < deadline:
        time.sleep(3)
        _, truth_cells, differences = verify(settings)
    for _, job_id in jobs.running_jobs(stack):
        stack.flink.cancel(job_id)
    # The whole history, as a read_committed consumer from the beginning saw it.
    messages, taken_back = history_regressions(settings)
    result.history_messages = messages
    result.history_regressions = len(taken_back)
    result.regressions = [
        f"{r.vin}/{r.signal}: {r.kind}, published ts {r.published}, then {r.now}"
        for r in taken_back[:10]
    ]
    result.readings_written = writer.written
    result.cells_checked = truth_cells
    result.cells_wrong = len(differences)
    result.differences = [
        f"{d.vin}/{d.signal}: InfluxDB {d.expected}, topic {d.actual}" for d in differences[:10]
    ]
    result.seconds = round(time.monotonic() - started, 1)
    return result


def chaos(
    runs: int,
    seconds: float,
    seed: int,
    strategy: str = DEFAULT,
    say: Callable[[str], None] = print,
    stack: Stack | None = None,
) -> list[RunResult]:
    """`runs` runs of `seconds` each on the local stack (started if need be); run i uses seed
    `seed + i`."""
    stack = stack or Stack()
    if not all(s.running for s in stack.status()):
        stack.up(progress=say)
    if seconds < 40:
        raise BethosError("a chaos run needs at least 40 seconds (faults, then a settled end)")
    deadline = time.monotonic() + 60
    while jobs.running_jobs(stack) and time.monotonic() < deadline:
        time.sleep(2)  # jobs that are being stopped
    if jobs.running_jobs(stack):
        raise BethosError("jobs run on the stack already: `bethos stop` them before chaos")
    work = stack.state / "chaos"
    work.mkdir(parents=True, exist_ok=True)
    return [one_run(stack, run, seed + run, seconds, strategy, work, say) for run in range(runs)]


def summary(results: list[RunResult], seed: int) -> dict[str, object]:
    return {
        "runs": len(results),
        "seed": seed,
        "readings_written": sum(r.readings_written for r in results),
        "faults_injected": sum(len(r.faults) for r in results),
        "cells_checked": sum(r.cells_checked for r in results),
        "cells_wrong": sum(r.cells_wrong for r in results),
        "history_messages": sum(r.history_messages for r in results),
        "history_regressions": sum(r.history_regressions for r in results),
        "per_run": [{**asdict(r), "faults": [asdict(f) for f in r.faults]} for r in results],
    }
