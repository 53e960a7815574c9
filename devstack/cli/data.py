"""`bethos generate`, `bethos verify` and `bethos show`: test data in, ground truth out; the
functions, and the commands on them."""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable, Mapping, Sequence

from bethos.config import EtlSettings, load_settings
from bethos.durations import parse_duration_ms
from bethos.record import Signal
from connectors.influxdb.writer import InfluxWriter, Point
from devstack.cli import progress
from devstack.generate import varied_points
from devstack.stack import jobs
from devstack.verify import Difference as Difference
from devstack.verify import ground_truth as ground_truth
from devstack.verify import latest_records as latest_records
from devstack.verify import verify as verify

BATCH = 10_000  # points per write request


def generate(
    settings: EtlSettings,
    vins: int,
    rounds: int,
    round_interval_ms: int,
    seed: int = 7,
    advance: Callable[[int, int], None] | None = None,
) -> int:
    """Write the varied set, its last round `round_interval_ms` before now; returns points.
    `advance(written, total)` is called after each batch."""
    influx = settings.influxdb
    now = int(time.time() * 1000)
    start = now - rounds * round_interval_ms
    writer = InfluxWriter(influx)
    try:
        writer.create_database()
        points = (
            Point(
                influx.measurement,
                {influx.pod_tag: p.pod, influx.vin_tag: p.vin},
                p.fields,
                p.ts_ms,
            )
            for p in varied_points(vins, rounds, influx.pods, start, round_interval_ms, seed)
        )
        total = vins * rounds
        written = 0
        while batch := list(itertools.islice(points, BATCH)):
            written += writer.write(batch, batch=BATCH)
            if advance is not None:
                advance(written, total)
        return written
    finally:
        writer.close()


def format_differences(differences: list[Difference], limit: int = 50) -> str:
    rows = [("VIN", "SIGNAL", "EXPECTED (InfluxDB)", "ACTUAL (latest topic)")]
    rows += [(d.vin, d.signal, d.expected, d.actual) for d in differences[:limit]]
    text = _table(rows)
    if len(differences) > limit:
        text += f"\n... and {len(differences) - limit} more"
    return text


def format_latest(latest: Mapping[str, Mapping[str, Signal]]) -> str:
    names = sorted({name for signals in latest.values() for name in signals})
    rows = [("VIN", *names)]
    for vin in sorted(latest):
        signals = latest[vin]
        rows.append((vin, *(str(signals[n].value) if n in signals else "-" for n in names)))
    return _table(rows)


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _etl_settings(args: argparse.Namespace) -> EtlSettings:
    return load_settings(EtlSettings, args.config or jobs.DEFAULT_CONFIGS["etl"])


def cmd_generate(args: argparse.Namespace) -> int:
    settings = _etl_settings(args)
    with progress.bar("points written to InfluxDB") as advance:
        count = generate(
            settings, args.vins, args.rounds, parse_duration_ms(args.interval), args.seed, advance
        )
    print(
        f"wrote {count} points ({args.vins} VINs x {args.rounds} rounds) to "
        f"{settings.influxdb.url} database {settings.influxdb.database}"
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    settings = _etl_settings(args)
    vins, signals, differences = verify(settings)
    if differences:
        print(format_differences(differences))
        print(f"verify: FAILED, {len(differences)} difference(s) over {vins} VINs")
        return 1
    print(f"verify: OK, {vins} VINs and {signals} signals equal the newest values in InfluxDB")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    print(format_latest(latest_records(_etl_settings(args))))
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`generate`, `verify`, `show`."""
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
