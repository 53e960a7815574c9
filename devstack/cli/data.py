"""`bethos generate`, `bethos verify` and `bethos show`: test data in, ground truth out."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence

from bethos.config import EtlSettings
from bethos.record import Signal
from connectors.influxdb.writer import InfluxWriter, Point
from devstack.generate import varied_points
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
