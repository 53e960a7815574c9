"""`bethos chaos`: both jobs under random faults on the local stack (`devstack.chaos`)."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from bethos.strategy_registry import DEFAULT
from devstack import chaos as chaos_run
from devstack.cli import progress


def cmd_chaos(args: argparse.Namespace) -> int:
    with progress.steps() as tell:
        results = chaos_run.chaos(args.runs, args.seconds, args.seed, args.strategy, tell)
    table = Table(title=f"chaos: {args.runs} runs of {args.seconds:g} s, seed {args.seed}")
    columns = ("run", "seed", "faults", "readings", "cells checked", "cells wrong", "taken back")
    for column in columns:
        table.add_column(column, justify="left" if column == "faults" else "right")
    for r in results:
        faults = ", ".join(f"{f.kind} @{f.at_s:g}s for {f.down_s:g}s" for f in r.faults)
        table.add_row(
            str(r.run), str(r.seed), faults, str(r.readings_written), str(r.cells_checked),
            str(r.cells_wrong), str(r.history_regressions),
        )  # fmt: skip
    progress.console.print(table)
    for r in results:
        for line in r.differences:
            progress.console.print(f"run {r.run}: {line}")
        for line in r.regressions:
            progress.console.print(f"run {r.run}: latest topic history: {line}")
    result = chaos_run.summary(results, args.seed)
    print(json.dumps(result))
    return 1 if result["cells_wrong"] or result["history_regressions"] else 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`chaos`."""
    chaos = sub.add_parser(
        "chaos",
        help="both jobs under random faults (TaskManager, JobManager, broker, InfluxDB) while "
        "late telemetry is written; compares the latest topic with InfluxDB and checks its "
        "whole history never went back; exit 1 on any difference or regression",
    )
    chaos.add_argument("--runs", type=int, default=1)
    chaos.add_argument("--seconds", type=float, default=120, help="length of each run")
    chaos.add_argument("--seed", type=int, default=1, help="run i uses seed + i")
    chaos.add_argument("--strategy", choices=chaos_run.STRATEGIES, default=DEFAULT)
    chaos.set_defaults(func=cmd_chaos)
