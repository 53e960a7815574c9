"""`bethos bench etl|merger|latency`: the benchmarks (`devstack/bench/`), each printing its
figures as JSON last."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from bethos.durations import parse_duration_ms
from bethos.exceptions import BethosError
from devstack.cli import progress


def cmd_bench(args: argparse.Namespace) -> int:
    if args.which == "etl":
        from devstack.bench.etl_bench import bench

        with progress.steps() as tell:
            result = bench(args.vins, args.pods, args.signals, args.runs, args.parallelism, tell)
    elif args.which == "merger":
        from devstack.bench.merger_bench import bench as bench_merger

        with progress.steps() as tell:
            result = bench_merger(
                args.vins,
                args.signals,
                args.rounds,
                args.runs,
                tell,
                state_backend=args.state_backend,
                baselines=not args.no_baselines,
            )
    elif args.which == "latency":
        from devstack.bench.latency import bench as bench_latency

        flushes = [parse_duration_ms(text) for text in args.flush_intervals.split(",")]
        deliveries = [text.strip() for text in args.deliveries.split(",")]
        unknown = set(deliveries) - {"exactly_once", "at_least_once"}
        if unknown:
            raise BethosError(f"--deliveries: unknown {', '.join(sorted(unknown))}")
        with progress.bars() as bars:
            status = bars.add_task("starting", total=None)
            writes = bars.add_task("readings written", total=None, visible=False)

            def report(text: str) -> None:
                bars.update(status, description=text)

            def advance(done: int, total: int) -> None:
                bars.update(writes, completed=done, total=total, visible=True)

            result = bench_latency(
                flushes,
                deliveries,
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


def latency_table(result: dict[str, object]) -> Table:
    table = Table(title="end-to-end latency, seconds (InfluxDB write -> latest topic)")
    for column in ("flush", "delivery", "part", "p50", "p95", "p99", "max", "readings"):
        left = column in ("flush", "delivery", "part")
        table.add_column(column, justify="left" if left else "right")
    cases = result.get("cases")
    for case in cases if isinstance(cases, list) else []:
        for part in ("etl_ms", "flush_wait_ms", "kafka_ms", "total_ms"):
            figures = case[part]
            table.add_row(
                f"{case['flush_interval_ms'] / 1000:g}s",
                str(case.get("delivery", "")),
                part.removesuffix("_ms").replace("_", " "),
                *(f"{figures[q] / 1000:.2f}" for q in ("p50", "p95", "p99", "max")),
                str(case["readings_delivered"]),
            )
    return table


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`bench`."""
    bench = sub.add_parser("bench", help="benchmarks; each prints its figures as JSON last")
    bench.add_argument("which", choices=["etl", "merger", "latency"])
    bench.add_argument("--vins", type=int, default=100_000)
    bench.add_argument("--pods", type=int, default=10)
    bench.add_argument("--signals", type=int, default=20)
    bench.add_argument("--runs", type=int, default=3)
    bench.add_argument("--rounds", type=int, default=2, help="merger: update rounds per VIN")
    bench.add_argument("--parallelism", type=int, default=1, help="the job's parallelism")
    merger = bench.add_argument_group("merger")
    merger.add_argument(
        "--state-backend",
        choices=["hashmap", "rocksdb"],
        default="hashmap",
        help="flink.state_backend",
    )
    merger.add_argument(
        "--no-baselines",
        action="store_true",
        help="leave out the floor and the Flink SQL jobs (and the ratios to them)",
    )
    latency = bench.add_argument_group("latency")
    latency.add_argument("--flush-intervals", default="10s,2m", help="one case each")
    latency.add_argument(
        "--deliveries",
        default="exactly_once,at_least_once",
        help="latest_merger.delivery values: one case each per flush interval",
    )
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
