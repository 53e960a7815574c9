"""The ground truth of `bethos verify`: each VIN's newest value of every signal, from InfluxDB.

Independent of the ETL on purpose, so that verify can catch a bug in it: neither the ETL's
reader and parser (`connectors/influxdb/client.py`) nor its `FetchResult` take part. InfluxDB
itself finds each newest point with InfluxQL `last()`, one field per query (with several
selectors `last()` answers the window start, not the point's time), grouped by VIN and pod:

- wide layout: every field of the measurement (`SHOW FIELD KEYS`) is a signal;
- narrow layout: `last(value_field)` grouped by VIN, resource and pod, each resource named by
  the resource map (an unmapped resource counts under its own name with `unmapped: keep`).

Only the configured pods count. Across pods the newest point wins by its time in milliseconds,
the time a record carries; on equal times the larger value in the merge rule's value order
(`bethos.merge_rule.value_order_key`). Series without a VIN or resource, and signal names the record
model refuses, have no place in a record and are left out. Names are quoted, pods are bound.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import requests

from bethos.config import InfluxSettings
from bethos.exceptions import ConfigError
from bethos.merge_rule import value_order_key
from bethos.record import MAX_NAME_LENGTH, Signal
from bethos.resource_map import ResourceMap
from connectors.influxdb.influxql import NS_PER_MS, quote_identifier
from connectors.influxdb.session import open_session
from devstack.exceptions import GroundTruthError

# VIN -> signal name -> its newest reading
Truth = dict[str, dict[str, Signal]]

CHUNK_SIZE = 10_000


def field_keys_query(measurement: str) -> str:
    return f"SHOW FIELD KEYS FROM {quote_identifier(measurement)}"


def pods_condition(pod_tag: str, pods: Sequence[str]) -> tuple[str, dict[str, object]]:
    """`("pod" = $pod0 OR ...)` and its parameters: the pods are bound, never pasted."""
    names = [f"pod{index}" for index in range(len(pods))]
    text = " OR ".join(f"{quote_identifier(pod_tag)} = ${name}" for name in names)
    return f"({text})", dict(zip(names, pods, strict=True))


def last_query(measurement: str, field: str, where: str, group_by: Sequence[str]) -> str:
    """The newest value of one field per series group; `::field` never picks a same-named tag."""
    return (
        f"SELECT last({quote_identifier(field)}::field) FROM {quote_identifier(measurement)} "
        f"WHERE {where} GROUP BY {', '.join(quote_identifier(tag) for tag in group_by)}"
    )


def offer(truth: Truth, vin: str, name: str, reading: Signal) -> None:
    """Keep the reading if it is the VIN's newest of its signal (ties: the larger value)."""
    signals = truth.setdefault(vin, {})
    current = signals.get(name)
    if current is None or (reading.ts, value_order_key(reading.value)) > (
        current.ts,
        value_order_key(current.value),
    ):
        signals[name] = reading


def _valid_name(name: str) -> bool:
    return 0 < len(name) <= MAX_NAME_LENGTH


class InfluxQL:
    """`/query` over plain HTTP: one statement, chunked JSON, every chunk checked for errors."""

    def __init__(self, settings: InfluxSettings) -> None:
        self._settings = settings
        self._session = open_session(settings)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> InfluxQL:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def series(self, query: str, params: Mapping[str, object]) -> list[dict[str, Any]]:
        """Every series the statement answers, times in integer nanoseconds."""
        settings = self._settings
        try:
            response = self._session.post(
                f"{settings.url.rstrip('/')}/query",
                data={
                    "db": settings.database,
                    "q": query,
                    "params": json.dumps(params),
                    "epoch": "ns",
                    "chunked": "true",
                    "chunk_size": str(CHUNK_SIZE),
                },
                stream=True,
                timeout=settings.timeout / 1000,
            )
        except requests.RequestException as exc:
            raise GroundTruthError(f"{query}: request failed: {exc}") from None
        with response:
            if response.status_code != 200:
                raise GroundTruthError(
                    f"{query}: HTTP {response.status_code}: {response.text[:200]}"
                )
            try:
                return list(_series_of(response.iter_lines(), query))
            except (requests.RequestException, ValueError, TypeError, AttributeError) as exc:
                raise GroundTruthError(f"{query}: response broken: {exc}") from None


def _series_of(lines: Iterator[bytes], query: str) -> Iterator[dict[str, Any]]:
    """The series of a chunked response, one JSON document a line; an `error` anywhere (InfluxDB
    reports errors with HTTP 200, even after some chunks) or a cut result raises."""
    partial = False
    for line in lines:
        if not line:
            continue
        body = json.loads(line)
        if not isinstance(body, dict):
            raise GroundTruthError(f"{query}: unexpected answer {line[:200]!r}")
        if body.get("error"):
            raise GroundTruthError(f"{query}: {body['error']}")
        for result in body.get("results") or []:
            if result.get("error"):
                raise GroundTruthError(f"{query}: {result['error']}")
            partial = bool(result.get("partial"))
            for series in result.get("series") or []:
                partial = partial or bool(series.get("partial"))
                if not isinstance(series.get("columns"), list):
                    raise GroundTruthError(f"{query}: a series without columns: {series!r:.200}")
                yield series
    if partial:
        raise GroundTruthError(f"{query}: the answer ended inside a partial result")


def _reading(row: object, query: str) -> Signal:
    """A `[time, value]` row of `last()` as a reading at millisecond precision."""
    if not isinstance(row, list) or len(row) != 2:
        raise GroundTruthError(f"{query}: unexpected row {row!r:.200}")
    time_ns, value = row
    if type(time_ns) is not int:
        raise GroundTruthError(f"{query}: time {time_ns!r} is not integer nanoseconds")
    if not isinstance(value, bool | int | float | str):
        raise GroundTruthError(f"{query}: value {value!r:.200} is no InfluxDB field value")
    return Signal(value, time_ns // NS_PER_MS)


def _newest_per_group(
    influx: InfluxQL, settings: InfluxSettings, field: str, group_by: Sequence[str]
) -> Iterator[tuple[Mapping[str, str], Signal]]:
    """(series tags, newest reading) of one field per group of a configured pod."""
    where, params = pods_condition(settings.pod_tag, settings.pods)
    query = last_query(settings.measurement, field, where, [*group_by, settings.pod_tag])
    pods = set(settings.pods)
    for series in influx.series(query, params):
        tags = series.get("tags") or {}
        if tags.get(settings.pod_tag) not in pods or not tags.get(settings.vin_tag):
            continue
        for row in series.get("values") or []:
            yield tags, _reading(row, query)


def _wide(influx: InfluxQL, settings: InfluxSettings) -> Truth:
    keys = influx.series(field_keys_query(settings.measurement), {})
    fields = sorted({str(row[0]) for series in keys for row in series.get("values") or []})
    truth: Truth = {}
    for field in filter(_valid_name, fields):
        for tags, reading in _newest_per_group(influx, settings, field, [settings.vin_tag]):
            offer(truth, tags[settings.vin_tag], field, reading)
    return truth


def _narrow(influx: InfluxQL, settings: InfluxSettings, resource_map: ResourceMap) -> Truth:
    truth: Truth = {}
    group_by = [settings.vin_tag, settings.resource_tag]
    for tags, reading in _newest_per_group(influx, settings, settings.value_field, group_by):
        resource = tags.get(settings.resource_tag) or ""
        name = resource_map.signal_for(resource)
        if name is None and settings.unmapped == "keep":
            name = resource
        if name is not None and _valid_name(name):
            offer(truth, tags[settings.vin_tag], name, reading)
    return truth


def newest_values(settings: InfluxSettings, resource_map: ResourceMap | None = None) -> Truth:
    """Per VIN, the newest reading of every signal in InfluxDB (`resource_map`: narrow layout)."""
    with InfluxQL(settings) as influx:
        if settings.layout == "wide":
            return _wide(influx, settings)
        if resource_map is None:
            raise ConfigError("influxdb.layout 'narrow' needs the resource map")
        return _narrow(influx, settings, resource_map)
