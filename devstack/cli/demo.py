"""`bethos demo`: everything end to end on local defaults, step by step."""

from __future__ import annotations

import argparse
import time

from bethos.config import EtlSettings, MergerSettings, load_settings
from bethos.exceptions import BethosError
from connectors.kafka.admin import create_topics
from devstack.cli import data, progress
from devstack.stack import Stack, jobs, lifecycle
from devstack.verify import Difference


def cmd_demo(args: argparse.Namespace) -> int:
    stack = Stack(brokers=args.brokers)
    step = 0

    def say(text: str) -> None:
        nonlocal step
        step += 1
        print(f"\n[{step}/7] {text}", flush=True)

    say("bringing the local stack up (Kafka, InfluxDB, Redis, Flink)")
    with progress.steps("   ") as tell:
        stack.up(progress=tell)
    say("creating topics")
    merger_settings = load_settings(MergerSettings, jobs.DEFAULT_CONFIGS["latest_merger"])
    with progress.console.status("creating topics ..."):
        outcomes = create_topics(merger_settings.kafka, merger_settings.topics)
    for name, outcome in outcomes.items():
        print(f"   {name}: {outcome}")
    say("generating the varied test set in InfluxDB (10 VINs x 6 rounds)")
    settings = load_settings(EtlSettings, jobs.DEFAULT_CONFIGS["etl"])
    with progress.bar("points written") as advance:
        count = data.generate(
            settings, vins=10, rounds=6, round_interval_ms=10_000, advance=advance
        )
    print(f"   wrote {count} points")
    say("starting the ETL and latest merger jobs on the Flink cluster")
    for name, _ in jobs.running_jobs(stack):
        if name in jobs.JOBS:
            print(f"   stopping the previous {name} with a savepoint ...", flush=True)
            print(f"   {name}: savepoint {lifecycle.stop_job(stack, name)}")
    demo_env = {"BETHOS_FLUSH_INTERVAL": args.flush_interval}
    for job in ("etl", "latest_merger"):
        print(f"   submitting {job} ...", flush=True)
        job_id = jobs.submit(stack, job, extra_env=demo_env)
        print(f"   {job}: {job_id}")
    say(
        f"waiting for a flush (flush interval {args.flush_interval}) until the latest topic "
        "matches InfluxDB"
    )
    deadline = time.monotonic() + args.timeout
    differences: list[Difference] = []
    vins = signals = 0
    while time.monotonic() < deadline:
        try:
            vins, signals, differences = data.verify(settings)
        except BethosError as exc:
            differences = [Difference("*", "*", "readable topic", str(exc))]
        if not differences:
            break
        print(
            f"   {len(differences)} difference(s) left, {int(deadline - time.monotonic())}s to go",
            flush=True,
        )
        time.sleep(5)
    say("verify")
    if differences:
        print(data.format_differences(differences))
        print(f"verify: FAILED, {len(differences)} difference(s)")
        return 1
    print(f"   verify: OK, {vins} VINs and {signals} signals equal the newest values in InfluxDB")
    say("the latest record of every VIN")
    print(data.format_latest(data.latest_records(settings)))
    print(
        "\nFlink dashboard: http://localhost:8081  (both jobs keep running; "
        "`bethos status`, `bethos down` to stop)"
    )
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`demo`."""
    demo = sub.add_parser("demo", help="everything end to end on local defaults")
    demo.add_argument("--brokers", type=int, choices=(1, 2, 3), default=None)
    demo.add_argument("--flush-interval", default="10s")
    demo.add_argument("--timeout", type=float, default=300)
    demo.set_defaults(func=cmd_demo)
