"""The `bethos` command: the local stack, topics, test data, jobs, verify and the demo."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from bethos.config import DEFAULT_BROKERS, EtlSettings, MergerSettings, load_settings
from bethos.durations import parse_duration_ms
from bethos.exceptions import BethosError
from bethos.strategy_registry import DEFAULT
from connectors.kafka.admin import create_topics
from devstack import chaos as chaos_run
from devstack import paths
from devstack.cli import data, progress
from devstack.package import build_package
from devstack.stack import FLINK_REST_PORT, PROMETHEUS_PORT, Stack, jobs, lifecycle
from devstack.verify import Difference


def _etl_settings(args: argparse.Namespace) -> EtlSettings:
    return load_settings(EtlSettings, args.config or jobs.DEFAULT_CONFIGS["etl"])


def cmd_up(args: argparse.Namespace) -> int:
    with progress.steps() as say:
        Stack(brokers=args.brokers, monitoring=args.monitoring).up(progress=say)
    print(f"stack is up; Flink dashboard: http://localhost:{FLINK_REST_PORT}")
    if args.monitoring:
        print(f"Prometheus: http://localhost:{PROMETHEUS_PORT} (docs/MONITORING.md)")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    with progress.steps() as say:
        Stack().down(progress=say, purge=args.purge)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from devstack import status as job_status

    merger = load_settings(MergerSettings, args.config or jobs.DEFAULT_CONFIGS["latest_merger"])
    consumers = [(merger.kafka, merger.consumer_group, merger.topics.aggregated)]
    stack = Stack()

    def take() -> job_status.Status:
        services = [job_status.ServiceLine(s.name, s.running, s.detail) for s in stack.status()]
        return job_status.collect(services, consumers, args.all)

    current = take()
    if args.watch is None:
        if args.json:
            print(json.dumps(current.to_json()))
        else:
            Console().print(job_status.render(current))
        return 0 if all(s.running for s in current.services) else 1
    if args.watch <= 0:
        raise BethosError(f"--watch takes a positive number of seconds, not {args.watch}")
    with contextlib.suppress(KeyboardInterrupt):
        if args.json:  # one JSON document per line, one line per refresh
            while True:
                print(json.dumps(current.to_json()), flush=True)
                time.sleep(args.watch)
                current = take()
        with Live(job_status.render(current), auto_refresh=False) as live:
            while True:
                time.sleep(args.watch)
                current = take()
                live.update(job_status.render(current), refresh=True)
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    settings = load_settings(MergerSettings, args.config or jobs.DEFAULT_CONFIGS["latest_merger"])
    with progress.console.status(f"creating topics on {settings.kafka.brokers} ..."):
        outcomes = create_topics(settings.kafka, settings.topics)
    for name, outcome in outcomes.items():
        print(f"{name}: {outcome}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    settings = _etl_settings(args)
    with progress.bar("points written to InfluxDB") as advance:
        count = data.generate(
            settings, args.vins, args.rounds, parse_duration_ms(args.interval), args.seed, advance
        )
    print(
        f"wrote {count} points ({args.vins} VINs x {args.rounds} rounds) to "
        f"{settings.influxdb.url} database {settings.influxdb.database}"
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    settings = _etl_settings(args)
    vins, signals, differences = data.verify(settings)
    if differences:
        print(data.format_differences(differences))
        print(f"verify: FAILED, {len(differences)} difference(s) over {vins} VINs")
        return 1
    print(f"verify: OK, {vins} VINs and {signals} signals equal the newest values in InfluxDB")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    print(data.format_latest(data.latest_records(_etl_settings(args))))
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    job_id = jobs.submit(Stack(), args.job, args.config, args.savepoint, args.parallelism)
    print(job_id)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    with progress.console.status(f"stopping {args.job} ..."):
        savepoint = lifecycle.stop_job(Stack(), args.job, cancel=args.cancel)
    if savepoint is None:
        print(
            f"cancelled {args.job}: only its retained checkpoints keep its state "
            f"(`bethos resume {args.job}` starts from the newest)"
        )
    else:
        print(f"stopped {args.job}; savepoint: {savepoint}")
    return 0


def _start_options(args: argparse.Namespace) -> lifecycle.StartOptions:
    return lifecycle.StartOptions(args.config, args.parallelism, args.allow_non_restored_state)


def cmd_resume(args: argparse.Namespace) -> int:
    with progress.steps() as tell:
        point, job_id = lifecycle.resume_job(Stack(), args.job, _start_options(args), tell)
    print(f"{args.job} runs as {job_id}, restored from its {point}")
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    with progress.steps() as tell:
        done = lifecycle.upgrade_job(Stack(), args.job, _start_options(args), tell)
    print(f"{args.job} runs the current code as {done.job_id}, restored from {done.savepoint}")
    for name, job_id in done.restarted.items():
        print(f"{name} restarted from its savepoint as {job_id}")
    return 0


def cmd_package(args: argparse.Namespace) -> int:
    code = build_package(Path(args.output).resolve())  # commands that run from anywhere
    print(code)
    if not args.quiet:
        print(
            "\nrun the jobs on any Flink cluster (its Python: apache-flink and the dependencies):"
        )
        for job in jobs.JOBS:
            config = paths.PROJECT_ROOT / jobs.DEFAULT_CONFIGS[job]
            print("  flink run " + " ".join(jobs.run_args(job, code, config)))
    return 0


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


def cmd_bench(args: argparse.Namespace) -> int:
    if args.which == "etl":
        from devstack.bench.etl_bench import bench

        with progress.steps() as tell:
            result = bench(args.vins, args.pods, args.signals, args.runs, args.parallelism, tell)
    elif args.which == "merger":
        from devstack.bench.merger_bench import bench as bench_merger

        with progress.steps() as tell:
            result = bench_merger(args.vins, args.signals, args.rounds, args.runs, tell)
    elif args.which == "latency":
        from devstack.bench.latency import bench as bench_latency

        flushes = [parse_duration_ms(text) for text in args.flush_intervals.split(",")]
        with progress.bars() as bars:
            status = bars.add_task("starting", total=None)
            writes = bars.add_task("readings written", total=None, visible=False)

            def report(text: str) -> None:
                bars.update(status, description=text)

            def advance(done: int, total: int) -> None:
                bars.update(writes, completed=done, total=total, visible=True)

            result = bench_latency(
                flushes,
                args.rate,
                args.latency_vins,
                args.latency_pods,
                args.seconds,
                args.warmup,
                report,
                advance,
            )
        progress.console.print(latency_table(result))
    else:
        raise BethosError(f"unknown benchmark {args.which!r}")
    print(json.dumps(result))
    return 0


def cmd_chaos(args: argparse.Namespace) -> int:
    with progress.steps() as tell:
        results = chaos_run.chaos(args.runs, args.seconds, args.seed, args.strategy, tell)
    table = Table(title=f"chaos: {args.runs} runs of {args.seconds:g} s, seed {args.seed}")
    for column in ("run", "seed", "faults", "readings", "cells checked", "cells wrong"):
        table.add_column(column, justify="left" if column == "faults" else "right")
    for r in results:
        faults = ", ".join(f"{f.kind} @{f.at_s:g}s for {f.down_s:g}s" for f in r.faults)
        table.add_row(
            str(r.run), str(r.seed), faults, str(r.readings_written), str(r.cells_checked),
            str(r.cells_wrong),
        )  # fmt: skip
    progress.console.print(table)
    for r in results:
        for line in r.differences:
            progress.console.print(f"run {r.run}: {line}")
    result = chaos_run.summary(results, args.seed)
    print(json.dumps(result))
    return 1 if result["cells_wrong"] else 0


def latency_table(result: dict[str, object]) -> Table:
    table = Table(title="end-to-end latency, seconds (InfluxDB write -> latest topic)")
    for column in ("flush", "part", "p50", "p95", "p99", "max", "readings"):
        table.add_column(column, justify="left" if column in ("flush", "part") else "right")
    cases = result.get("cases")
    for case in cases if isinstance(cases, list) else []:
        for part in ("etl_ms", "flush_wait_ms", "kafka_ms", "total_ms"):
            figures = case[part]
            table.add_row(
                f"{case['flush_interval_ms'] / 1000:g}s",
                part.removesuffix("_ms").replace("_", " "),
                *(f"{figures[q] / 1000:.2f}" for q in ("p50", "p95", "p99", "max")),
                str(case["readings_delivered"]),
            )
    return table


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="bethos", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    from devstack.cli.config import add_config_verbs  # `bethos config check|show`

    add_config_verbs(sub)

    up = sub.add_parser("up", help="start the local stack on loopback, installing nothing")
    up.add_argument(
        "--brokers",
        type=int,
        choices=(1, 2, 3),
        default=None,
        help="Kafka brokers (default 3; 1 for small machines and tests)",
    )
    up.add_argument(
        "--monitoring",
        action="store_true",
        help=f"also start Prometheus on 127.0.0.1:{PROMETHEUS_PORT} with the alert rules",
    )
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop exactly what `up` started")
    down.add_argument(
        "--purge",
        action="store_true",
        help=f"also delete {paths.state_dir()}, if `bethos up` made it (else exit 2)",
    )
    down.set_defaults(func=cmd_down)
    status = sub.add_parser(
        "status",
        help="each service; per job its state, uptime, restarts, checkpoint age, pod lag, "
        "VINs held, flush age and Kafka consumer lag",
    )
    status.add_argument("--json", action="store_true", help="one JSON document (for scripts)")
    status.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=2.0,
        default=None,
        metavar="SECONDS",
        help="refresh every SECONDS (default 2) until Ctrl-C",
    )
    status.add_argument("--all", action="store_true", help="also the jobs that are over")
    status.add_argument(
        "--config",
        help="the merger's config: its consumer group and aggregated topic give the consumer "
        "lag (default config/latest_merger.yaml)",
    )
    status.set_defaults(func=cmd_status)

    topics = sub.add_parser("topics", help="topic administration")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    create = topics_sub.add_parser("create", help="create the topics (idempotent)")
    create.add_argument("--config")
    create.set_defaults(func=cmd_topics)

    gen = sub.add_parser("generate", help="write varied telemetry into InfluxDB")
    gen.add_argument("--config")
    gen.add_argument("--vins", type=int, default=10)
    gen.add_argument("--rounds", type=int, default=6)
    gen.add_argument("--interval", default="10s", help="time between rounds")
    gen.add_argument("--seed", type=int, default=7)
    gen.set_defaults(func=cmd_generate)

    for name, func, text in (
        ("verify", cmd_verify, "compare the latest topic with InfluxDB; exit 1 on a difference"),
        ("show", cmd_show, "print the latest record of every VIN"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("--config", help="the ETL config (InfluxDB, pods, topics)")
        command.set_defaults(func=func)

    submit = sub.add_parser("submit", help="start a job on the Flink cluster")
    submit.add_argument("job", choices=sorted(jobs.JOBS))
    submit.add_argument("--config")
    submit.add_argument("--savepoint", help="resume from this savepoint")
    submit.add_argument("--parallelism", type=int)
    submit.set_defaults(func=cmd_submit)
    stop = sub.add_parser("stop", help="stop a job with a savepoint and print its path")
    stop.add_argument("job", choices=sorted(jobs.JOBS))
    stop.add_argument(
        "--cancel",
        action="store_true",
        help="cancel instead: only the retained checkpoints keep the state",
    )
    stop.set_defaults(func=cmd_stop)
    for name, func, text in (
        (
            "resume",
            cmd_resume,
            "start a job from its newest savepoint or retained checkpoint (after a stop, a "
            "cancel or a JobManager crash)",
        ),
        (
            "upgrade",
            cmd_upgrade,
            "stop a job with a savepoint and start the current code from it (fresh "
            "TaskManagers; the other jobs restart from savepoints too)",
        ),
    ):
        verb = sub.add_parser(name, help=text)
        verb.add_argument("job", choices=sorted(jobs.JOBS))
        verb.add_argument("--config", help="default: the config it last ran with")
        verb.add_argument("--parallelism", type=int, help="default: as it last ran")
        verb.add_argument(
            "--allow-non-restored-state",
            action="store_true",
            help="start even if the job drops state the restore point holds",
        )
        verb.set_defaults(func=func)
    pack = sub.add_parser(
        "package", help="build the zip of the code every job brings (`flink run -pyfs`)"
    )
    pack.add_argument("--output", default="dist", help="folder for the zip (default dist/)")
    pack.add_argument("--quiet", action="store_true", help="print only the zip's path")
    pack.set_defaults(func=cmd_package)

    chaos = sub.add_parser(
        "chaos",
        help="both jobs under random faults (TaskManager, JobManager, broker, InfluxDB) while "
        "late telemetry is written; compares the latest topic with InfluxDB; exit 1 on any "
        "difference",
    )
    chaos.add_argument("--runs", type=int, default=1)
    chaos.add_argument("--seconds", type=float, default=120, help="length of each run")
    chaos.add_argument("--seed", type=int, default=1, help="run i uses seed + i")
    chaos.add_argument("--strategy", choices=chaos_run.STRATEGIES, default=DEFAULT)
    chaos.set_defaults(func=cmd_chaos)
    bench = sub.add_parser("bench", help="benchmarks; each prints its figures as JSON last")
    bench.add_argument("which", choices=["etl", "merger", "latency"])
    bench.add_argument("--vins", type=int, default=100_000)
    bench.add_argument("--pods", type=int, default=10)
    bench.add_argument("--signals", type=int, default=20)
    bench.add_argument("--runs", type=int, default=3)
    bench.add_argument("--rounds", type=int, default=2, help="merger: update rounds per VIN")
    bench.add_argument("--parallelism", type=int, default=1, help="the job's parallelism")
    latency = bench.add_argument_group("latency")
    latency.add_argument("--flush-intervals", default="10s,2m", help="one case each")
    latency.add_argument("--rate", type=int, default=200, help="readings written per second")
    latency.add_argument("--latency-vins", type=int, default=2_000, help="VINs written round-robin")
    latency.add_argument("--latency-pods", type=int, default=2)
    latency.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="measured writing time per case (default three flush intervals, at least 60)",
    )
    latency.add_argument(
        "--warmup", type=float, default=20, help="seconds written first and left out"
    )
    bench.set_defaults(func=cmd_bench)

    demo = sub.add_parser("demo", help="everything end to end on local defaults")
    demo.add_argument("--brokers", type=int, choices=(1, 2, 3), default=None)
    demo.add_argument("--flush-interval", default="10s")
    demo.add_argument("--timeout", type=float, default=300)
    demo.set_defaults(func=cmd_demo)
    return root


@contextlib.contextmanager
def _local_stack_brokers(args: argparse.Namespace) -> Iterator[None]:
    """Without KAFKA_BROKERS or KAFKA_BROKER_1..N, a command talks to the brokers of the local
    stack when it runs other than the default three (`bethos up --brokers 1`): for the length
    of the command only, so that no later settings in this process inherit it."""
    if os.environ.get("KAFKA_BROKERS") or os.environ.get("KAFKA_BROKER_1"):
        yield
        return
    brokers = Stack(brokers=getattr(args, "brokers", None)).bootstrap_servers()
    if brokers == DEFAULT_BROKERS:
        yield
        return
    os.environ["KAFKA_BROKERS"] = brokers
    try:
        yield
    finally:
        os.environ.pop("KAFKA_BROKERS", None)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with _local_stack_brokers(args):
        try:
            return int(args.func(args))
        except BethosError as exc:
            print(f"bethos: error: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
