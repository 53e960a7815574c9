"""Compare the latest topic with the ground truth (every VIN, every signal, newest value wins),
and check its whole history: no VIN's signal ever went back in time or vanished."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bethos.config import EtlSettings
from bethos.record import Signal, SignalValue, decode_latest_signals
from bethos.source.layout import resource_map_for
from connectors.kafka.reader import keyed, latest_by_key, read_topic
from devstack.ground_truth import newest_values


@dataclass(frozen=True, slots=True)
class Difference:
    vin: str
    signal: str
    expected: str
    actual: str


def same_value(a: SignalValue, b: SignalValue) -> bool:
    """Equal as InfluxDB values: numbers by value (JSON may print 42.0 as 42), others exactly."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def _show(signal: Signal | None) -> str:
    return "(missing)" if signal is None else f"{signal.value!r} @ {signal.ts}"


def compare(
    truth: Mapping[str, Mapping[str, Signal]], latest: Mapping[str, Mapping[str, Signal]]
) -> list[Difference]:
    differences: list[Difference] = []
    for vin in sorted(truth):
        if vin not in latest:
            differences.append(Difference(vin, "*", "record", "(missing VIN)"))
            continue
        expected_signals, actual_signals = truth[vin], latest[vin]
        for name in sorted(set(expected_signals) | set(actual_signals)):
            expected, actual = expected_signals.get(name), actual_signals.get(name)
            if (
                expected is None
                or actual is None
                or expected.ts != actual.ts
                or not same_value(expected.value, actual.value)
            ):
                differences.append(Difference(vin, name, _show(expected), _show(actual)))
    for vin in sorted(set(latest) - set(truth)):
        differences.append(Difference(vin, "*", "(no such VIN in InfluxDB)", "record"))
    return differences


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


@dataclass(frozen=True, slots=True)
class Regression:
    """A message of the latest topic that took something back from a VIN's earlier ones."""

    vin: str
    signal: str
    kind: str
    """`older`: the signal's ts is older than one already published; `vanished`: a signal
    published before is missing (no tombstone in between)."""
    published: int
    """The newest ts published for the signal before this message."""
    now: int | None
    """This message's ts for it (None when it vanished)."""


def regressions(messages: list[tuple[bytes | None, bytes | None]]) -> list[Regression]:
    """Everything the latest topic took back, message by message: its history read from the
    beginning (one VIN's messages are in one partition, in order). A tombstone forgets a VIN
    (`vin_ttl`): what follows it starts afresh."""
    newest: dict[str, dict[str, int]] = {}
    found: list[Regression] = []
    for vin, value in keyed(messages):
        if value is None:
            newest.pop(vin, None)
            continue
        _, signals = decode_latest_signals(value)
        seen = newest.setdefault(vin, {})
        for name, published in seen.items():
            signal = signals.get(name)
            if signal is None:
                found.append(Regression(vin, name, "vanished", published, None))
            elif signal.ts < published:
                found.append(Regression(vin, name, "older", published, signal.ts))
        for name, signal in signals.items():
            if signal.ts > seen.get(name, -1):
                seen[name] = signal.ts
    return found


def history_regressions(settings: EtlSettings) -> tuple[int, list[Regression]]:
    """(messages read, regressions) of the latest topic's whole history, as a `read_committed`
    reader sees it."""
    messages = read_topic(settings.kafka, settings.topics.latest)
    return len(messages), regressions(messages)
