"""`bethos generate`, `bethos verify` and `bethos show`: test data in, ground truth out."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence

from bethos.config import EtlSettings
from bethos.record import Signal, decode_latest_signals
from bethos.source.layout import resource_map_for
from connectors.influxdb.writer import InfluxWriter, Point
from connectors.kafka.reader import latest_by_key, read_topic
from devstack.generate import varied_points
from devstack.ground_truth import newest_values
from devstack.verify import Difference, compare

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


def ground_truth(settings: EtlSettings) -> dict[str, dict[str, Signal]]:
    """The newest value of every signal of every VIN, asked of InfluxDB itself with `last()`
    (`devstack/ground_truth.py`): independent of the ETL's reader, so verify can catch its bugs.
    """
    return newest_values(settings.influxdb, resource_map_for(settings))


def latest_records(settings: EtlSettings) -> dict[str, dict[str, Signal]]:
    messages = read_topic(settings.kafka, settings.topics.latest)
    return {vin: decode_latest_signals(value)[1] for vin, value in latest_by_key(messages).items()}


def verify(settings: EtlSettings) -> tuple[int, int, list[Difference]]:
    """(VINs in truth, signals in truth, differences)."""
    truth = ground_truth(settings)
    differences = compare(truth, latest_records(settings))
    return len(truth), sum(len(s) for s in truth.values()), differences


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
