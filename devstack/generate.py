"""Varied telemetry for demos and tests: every round newer values, some rounds only some signals.

The original design's test set is 10 VINs x 6 rounds; larger sets feed the benchmarks.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from bethos.record import SignalValue

# signal name -> kind; InfluxDB keeps one type per field, so each signal keeps its kind.
SIGNALS: dict[str, str] = {
    "speed_kmh": "float",
    "battery_pct": "float",
    "engine_temp_c": "float",
    "odometer_km": "int",
    "rpm": "int",
    "door_open": "bool",
    "charging": "bool",
    "gear": "str",
}
GEARS = ("P", "R", "N", "D", "S")


@dataclass(frozen=True, slots=True)
class GeneratedPoint:
    vin: str
    pod: str
    fields: dict[str, SignalValue]
    ts_ms: int


def vin_name(index: int) -> str:
    """A 17-character VIN-like identifier."""
    return f"1BETHOS{index:010d}"


def _value(kind: str, rng: random.Random, round_no: int) -> SignalValue:
    if kind == "float":
        return round(rng.uniform(0, 200), 2)
    if kind == "int":
        return 10_000 + round_no * 100 + rng.randrange(100)
    if kind == "bool":
        return rng.random() < 0.5
    return rng.choice(GEARS)


def varied_points(
    vins: int,
    rounds: int,
    pods: Sequence[str],
    start_ms: int,
    round_interval_ms: int,
    seed: int = 7,
    signals: dict[str, str] | None = None,
) -> Iterator[GeneratedPoint]:
    """Round 0 sets every signal; later rounds set a random, non-empty subset."""
    rng = random.Random(seed)
    table = signals or SIGNALS
    names = list(table)
    for round_no in range(rounds):
        for index in range(vins):
            chosen = names if round_no == 0 else rng.sample(names, rng.randint(1, len(names)))
            fields = {name: _value(table[name], rng, round_no) for name in chosen}
            ts = start_ms + round_no * round_interval_ms + index % 1000
            yield GeneratedPoint(vin_name(index), pods[index % len(pods)], fields, ts)
