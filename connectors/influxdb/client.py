"""InfluxDB v1 `/query` over HTTP: InfluxQL, chunked JSON, every chunk checked for errors.

The v1 query API is served by InfluxDB 1.x, 2.x (DBRP mapping) and 3.x; auth is Basic with the
user and password, or a 2.x/3.x token sent as the password.

Two input layouts share one row loop (`parse_chunk`, pure, testable without a server): *wide*,
where each field is a signal, and *narrow*, where a resource tag, mapped by the resource map,
names the signal held in one value field.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import is_not
from typing import Any, NamedTuple, Protocol

import orjson
import requests

from bethos.config import InfluxSettings
from bethos.exceptions import ConfigError, RecordError, SourceError, TruncatedError
from bethos.fetch_result import FetchResult, Reject, Tally, Window
from bethos.record import (
    INT64_MAX,
    INT64_MIN,
    MAX_NAME_LENGTH,
    MAX_STRING_VALUE_LENGTH,
    RowSignals,
    Signal,
    check_signal_value,
)
from bethos.resource_map import ResourceMap
from connectors.influxdb.influxql import (
    NS_PER_MS,
    count_query,
    narrow_window_query,
    quote_identifier,
    wide_window_query,
    window_params,
)
from connectors.influxdb.session import open_session

log = logging.getLogger(__name__)

# Bytes asked of a streamed response at a time. requests' default (512) costs a pass through
# urllib3 and requests for every 512 compressed bytes, two thirds of the time the lines of a
# response take; InfluxDB sends a chunked response in pieces of 2 KiB or less, and each is
# handed on as it comes, whatever this size.
READ_SIZE = 1 << 16

# Signal(value, ts) without the NamedTuple's Python-level __new__: one call per signal read.
_new_signal = tuple.__new__

# (column index in a row, signal name): where a series' signal values are.
SignalColumns = list[tuple[int, str]]


class CheckedColumns(NamedTuple):
    """A series' signal columns: those with valid names, and those whose name is refused."""

    good: SignalColumns
    bad: list[tuple[int, str, RecordError]]


class SeriesLayout(Protocol):
    """How one InfluxDB series (tags + columns) holds signals; shared by the row loop."""

    @property
    def vin_tag(self) -> str: ...

    def checked_columns(self, tags: Mapping[str, str], columns: Sequence[str]) -> CheckedColumns:
        """The signal columns of a series; RecordError rejects every row of the series."""
        ...


@dataclass(frozen=True, slots=True)
class WideLayout:
    """Each field is a signal: every column after `time` is one, named by the column."""

    vin_tag: str

    def checked_columns(self, tags: Mapping[str, str], columns: Sequence[str]) -> CheckedColumns:
        # Every series of a response has the same columns: computed once, not once a series.
        return _wide_columns(tuple(columns))

    def plain_names(self, columns: object) -> tuple[str, ...] | None:
        """The signal names of `time` and signal columns with valid and distinct names, else
        None."""
        if (
            type(columns) is not list
            or not columns
            or columns[0] != "time"
            or not all(type(column) is str for column in columns)
        ):
            return None
        good, bad = _wide_columns(tuple(columns))
        if bad or len({name for _, name in good}) != len(good):
            return None
        return tuple(name for _, name in good)


@dataclass(frozen=True, slots=True)
class NarrowLayout:
    """One value field per point; the series' resource tag, mapped, names the signal."""

    vin_tag: str
    resource_tag: str
    value_field: str
    resource_map: ResourceMap
    keep_unmapped: bool

    def checked_columns(self, tags: Mapping[str, str], columns: Sequence[str]) -> CheckedColumns:
        return _checked_names(tuple(self._signal_columns(tags, columns)))

    def _signal_columns(self, tags: Mapping[str, str], columns: Sequence[str]) -> SignalColumns:
        resource = tags.get(self.resource_tag) or ""
        if not resource:
            raise RecordError("no_resource", f"series has no {self.resource_tag!r} tag")
        signal = self.resource_map.signal_for(resource)
        if signal is None:
            if not self.keep_unmapped:
                raise RecordError(
                    "unmapped_resource",
                    f"resource {resource!r} is not in the resource map {self.resource_map.source}",
                )
            signal = resource
        try:
            index = list(columns).index(self.value_field)
        except ValueError:
            raise SourceError(
                f"response broken: series has no {self.value_field!r} column: {list(columns)}"
            ) from None
        return [(index, signal)]


def layout_for(settings: InfluxSettings, resource_map: ResourceMap | None) -> SeriesLayout:
    if settings.layout == "wide":
        return WideLayout(settings.vin_tag)
    if resource_map is None:
        raise ConfigError(
            "influxdb.layout 'narrow' needs a resource map (load resource_map_path and pass it)"
        )
    return NarrowLayout(
        settings.vin_tag,
        settings.resource_tag,
        settings.value_field,
        resource_map,
        keep_unmapped=settings.unmapped == "keep",
    )


def _original(series: Mapping[str, Any], tags: Mapping[str, str], row: Mapping[str, Any]) -> str:
    """The dead-letter text of a rejected row: measurement, series tags and the row's values."""
    return orjson.dumps({"measurement": series.get("name"), "tags": tags, "row": row}).decode()


def _name_error(name: str) -> RecordError | None:
    if not name or len(name) > MAX_NAME_LENGTH:
        return RecordError("schema", f"signal names must have 1 to {MAX_NAME_LENGTH} characters")
    return None


@functools.lru_cache(maxsize=1024)
def _checked_names(targets: tuple[tuple[int, str], ...]) -> CheckedColumns:
    """Signal columns split into valid names and invalid ones; series share their columns."""
    good: SignalColumns = []
    bad: list[tuple[int, str, RecordError]] = []
    for index, name in targets:
        error = _name_error(name)
        if error is None:
            good.append((index, name))
        else:
            bad.append((index, name, error))
    return CheckedColumns(good, bad)


@functools.lru_cache(maxsize=64)
def _wide_columns(columns: tuple[str, ...]) -> CheckedColumns:
    return _checked_names(tuple((index, name) for index, name in enumerate(columns) if index > 0))


_NULL = type(None)
_PLAIN_TYPES = frozenset({float, int, bool, _NULL})


def _single_row(latest: dict[str, Signal], good: SignalColumns, row: Sequence[Any]) -> bool:
    """The common case, one point per VIN and window, without a check per value.

    Returns False (having changed nothing) when a value needs a closer look.
    """
    values = row[1:]
    kinds = set(map(type, values))
    if not _PLAIN_TYPES.issuperset(kinds):
        return False
    numbers = [v for v in values if v is not None] if _NULL in kinds else values
    try:
        if not math.isfinite(math.fsum(numbers)):
            return False  # a NaN or an infinity among them
    except OverflowError:
        return False
    if int in kinds:
        ints = [v for v in numbers if type(v) is int]
        if min(ints) < INT64_MIN or max(ints) > INT64_MAX:
            return False
    ts = row[0] // NS_PER_MS
    for index, name in good:
        value = row[index]
        if value is not None:
            latest[name] = _new_signal(Signal, (value, ts))
    return True


def _plain_row_reader(
    layout: WideLayout, result: FetchResult, tally: Tally | None
) -> Callable[[object], bool]:
    """What reads the common series of a response into `result`, with C-level calls: a new VIN,
    one row of valid names and plain values (numbers, booleans, nulls). It returns False,
    having changed nothing, for any other series: `_parse_series` reads those, and reads these
    to the same effect (tests/unit/connectors/influxdb/test_plain_rows.py holds the two to
    each other). Every series of a response has the same columns: the last ones are kept."""
    latest, counts, vin_tag = result.latest, result.counts, layout.vin_tag
    since_ns, bucket_ns, bucket_ms = _tally_bounds(tally)
    last_columns: list[Any] | None = None
    last_names: tuple[str, ...] | None = None

    def read(series: object) -> bool:
        nonlocal last_columns, last_names
        if type(series) is not dict:
            return False
        rows = series.get("values")
        if type(rows) is not list or len(rows) != 1:
            return False
        row = rows[0]
        columns = series.get("columns")
        if columns != last_columns:
            last_names = layout.plain_names(columns)
            last_columns = None if last_names is None else list(columns or ())
        names = last_names
        if names is None or type(row) is not list or len(row) != len(names) + 1:
            return False
        tags = series.get("tags")
        vin = tags.get(vin_tag) if type(tags) is dict else None
        at = row[0]
        if type(vin) is not str or not vin or vin in latest or type(at) is not int:
            return False
        values = row[1:]
        kinds = set(map(type, values))
        if not _PLAIN_TYPES.issuperset(kinds):
            return False
        if _NULL in kinds:
            present = list(map(is_not, values, repeat(None)))
            values = list(compress(values, present))
            names = tuple(compress(names, present))
        if int in kinds and (min(values) < INT64_MIN or max(values) > INT64_MAX):
            return False
        if float in kinds and not math.isfinite(sum(values)):
            return False  # a NaN or an infinity among them, or a sum beyond a float
        readings = len(values)
        if tally is not None and at >= since_ns:
            bucket = at // bucket_ns * bucket_ms
            counts[bucket] = counts.get(bucket, 0) + readings
        latest[vin] = RowSignals(names, values, at // NS_PER_MS)
        result.readings += readings
        return True

    return read


def _narrow_row_reader(
    layout: NarrowLayout, result: FetchResult, tally: Tally | None
) -> Callable[[object], bool] | None:
    """What reads the common series of a narrow response into `result`: one row with a valid
    value, of a resource whose signal is known, for a VIN without that signal yet. It returns
    False, having changed nothing, for any other series, which `_parse_series` reads; it reads
    these to the same effect (tests/unit/connectors/influxdb/test_plain_rows.py)."""
    if layout.value_field == "time":
        return None  # `time` would be the value's column: left to the general path
    latest, counts = result.latest, result.counts
    vin_tag, resource_tag = layout.vin_tag, layout.resource_tag
    columns = ["time", layout.value_field]
    since_ns, bucket_ns, bucket_ms = _tally_bounds(tally)
    # Per resource: its signal's name, or None when the general path decides (unmapped,
    # refused name): the series of a response name few resources, each many times.
    signal_names: dict[str, str | None] = {}

    def signal_name(resource: str) -> str | None:
        try:
            (_, name), *_ = layout.checked_columns({resource_tag: resource}, columns).good
        except (RecordError, ValueError):
            return None
        return name

    def read(series: object) -> bool:
        if type(series) is not dict:
            return False
        rows = series.get("values")
        if type(rows) is not list or len(rows) != 1 or series.get("columns") != columns:
            return False
        row = rows[0]
        tags = series.get("tags")
        if type(row) is not list or len(row) != 2 or type(tags) is not dict:
            return False
        vin, resource = tags.get(vin_tag), tags.get(resource_tag)
        if type(vin) is not str or not vin or type(resource) is not str:
            return False
        try:
            name = signal_names[resource]
        except KeyError:
            name = signal_names[resource] = signal_name(resource)
        at, value = row
        kind = type(value)
        if name is None or type(at) is not int:
            return False
        if not (
            (kind is float and value - value == 0)
            or (kind is int and INT64_MIN <= value <= INT64_MAX)
            or kind is bool
            or (kind is str and len(value) <= MAX_STRING_VALUE_LENGTH)
        ):
            return False
        signals = latest.get(vin)
        if signals is None:
            latest[vin] = {name: _new_signal(Signal, (value, at // NS_PER_MS))}
        elif type(signals) is dict and name not in signals:
            signals[name] = _new_signal(Signal, (value, at // NS_PER_MS))
        else:
            return False
        if tally is not None and at >= since_ns:
            bucket = at // bucket_ns * bucket_ms
            counts[bucket] = counts.get(bucket, 0) + 1
        result.readings += 1
        return True

    return read


def parse_chunk(
    chunk: Mapping[str, Any],
    layout: SeriesLayout,
    into: FetchResult | None = None,
    tally: Tally | None = None,
) -> FetchResult:
    """Readings and rejects of one decoded result object of a chunked `/query` response.

    `chunk` is one element of `results` (`{"statement_id": 0, "series": [...]}`), queried with
    `epoch=ns` so that `time` (always the first column) is integer nanoseconds. Null values are
    absent fields and skipped. Every row that cannot become readings is a Reject: all rows of a
    series without a VIN (`no_vin`) or whose layout refuses it (`no_resource`,
    `unmapped_resource`), and each value that is not a valid signal value or whose signal name
    is invalid (RecordError's reason). A response of an unexpected shape raises SourceError,
    which discards the window. Appends to `into` when given, and returns it. With a `tally`,
    the values of every row (rejected or not, as InfluxDB counts them) are counted per bucket.
    """
    return parse_chunks((chunk,), layout, into, tally)


def parse_chunks(
    chunks: Iterable[Mapping[str, Any]],
    layout: SeriesLayout,
    into: FetchResult | None = None,
    tally: Tally | None = None,
) -> FetchResult:
    """`parse_chunk` of each result object of a response, in order, into one result."""
    result = FetchResult() if into is None else into
    read_plain: Callable[[object], bool] | None = None
    if type(layout) is WideLayout:
        read_plain = _plain_row_reader(layout, result, tally)
    elif type(layout) is NarrowLayout:
        read_plain = _narrow_row_reader(layout, result, tally)
    for chunk in chunks:
        try:
            for series in chunk.get("series") or ():
                if read_plain is not None and read_plain(series):
                    continue
                if tally is not None:
                    _tally_rows(series.get("values") or (), tally, result.counts)
                _parse_series(series, layout, result)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            raise SourceError(f"response broken: {type(exc).__name__}: {exc}") from None
    return result


def _tally_bounds(tally: Tally | None) -> tuple[int, int, int]:
    """(since, bucket width) in ns and the bucket width in ms; placeholders without a tally
    (the readers ask for one before they count)."""
    if tally is None:
        return -1, 0, 0
    return tally.since_ms * NS_PER_MS, tally.bucket_ms * NS_PER_MS, tally.bucket_ms


def _tally_rows(rows: Sequence[Sequence[Any]], tally: Tally, counts: dict[int, int]) -> None:
    since_ns, bucket_ns, bucket_ms = _tally_bounds(tally)
    for row in rows:
        at = row[0]
        if at >= since_ns:
            bucket = at // bucket_ns * bucket_ms
            counts[bucket] = counts.get(bucket, 0) + len(row) - 1 - row.count(None)


def _parse_series(series: Mapping[str, Any], layout: SeriesLayout, result: FetchResult) -> None:
    tags: Mapping[str, str] = series.get("tags") or {}
    columns: Sequence[str] = series["columns"]
    rows: Sequence[Sequence[Any]] = series.get("values") or ()
    if not columns or columns[0] != "time":
        raise SourceError(f"response broken: first column is not time: {list(columns)[:3]}")
    vin = tags.get(layout.vin_tag) or ""
    try:
        if not vin:
            raise RecordError("no_vin", f"series has no {layout.vin_tag!r} tag")
        good, bad = layout.checked_columns(tags, columns)
    except RecordError as exc:
        for row in rows:
            # Without its null fields: another series' new field adds a null column to every
            # series, and the same row must give the same dead letter (bethos.source.rejects).
            values = {c: v for c, v in zip(columns, row, strict=True) if v is not None}
            original = _original(series, tags, values)
            result.rejects.append(Reject(exc.reason, exc.detail, original, row[0] // NS_PER_MS))
        return
    rejects = result.rejects
    latest = result.latest.get(vin)
    if latest is None:
        latest = result.latest[vin] = {}
        if len(rows) == 1 and not bad and _single_row(latest, good, rows[0]):
            result.readings += len(rows[0]) - 1 - rows[0].count(None)
            return
    elif not isinstance(latest, dict):
        latest = result.signals_to_change(vin)  # read from a row of an earlier chunk
    # Rows come in time order, so a signal's newest reading is its last non-null value; older
    # values are superseded by it and need no further look. A value that is not a valid signal
    # value is dead-lettered and the next older one is taken instead. This loop runs once per
    # signal read, so the common value types are checked inline.
    for index, name in good:
        for row in reversed(rows):
            value = row[index]
            if value is None:
                continue
            kind = type(value)
            if not (
                (kind is float and value - value == 0)
                or (kind is int and INT64_MIN <= value <= INT64_MAX)
                or kind is bool
            ):
                try:
                    value = check_signal_value(name, value)
                except RecordError as exc:
                    original = _original(series, tags, {"time": row[0], name: value})
                    rejects.append(Reject(exc.reason, exc.detail, original, row[0] // NS_PER_MS))
                    continue
            ts = row[0] // NS_PER_MS
            current = latest.get(name)
            if current is None:
                latest[name] = _new_signal(Signal, (value, ts))
            else:
                result.offer(vin, name, value, ts)
            break
    for index, name, error in bad:
        for row in rows:
            if row[index] is not None:
                original = _original(series, tags, {"time": row[0], name: row[index]})
                rejects.append(Reject(error.reason, error.detail, original, row[0] // NS_PER_MS))
    result.readings += sum(len(row) - 1 - row.count(None) for row in rows)


def response_lines(response: requests.Response) -> Iterator[bytes]:
    """The lines of a streamed response, READ_SIZE bytes asked at a time."""
    return response.iter_lines(chunk_size=READ_SIZE)


def ends_partial(result: Mapping[str, Any]) -> bool:
    """True when the last result of a response says more was to come: chunked responses mark
    every chunk but the last `partial`, and a server's `max-row-limit` marks a cut series so."""
    if result.get("partial"):
        return True
    return any(series.get("partial") for series in result.get("series") or [])


class InfluxClient:
    """Construct cheaply; the HTTP session is opened on first use and closed by `close()`."""

    def __init__(
        self,
        settings: InfluxSettings,
        rows_per_response_chunk: int = 10_000,
        *,
        resource_map: ResourceMap | None = None,
    ) -> None:
        """`rows_per_response_chunk`: how many rows InfluxDB puts in each piece of a chunked
        response (the `chunk_size` query parameter; the ETL's `batch_size` setting). It is
        not a time chunk: windows are split into time chunks before they reach the client.
        `resource_map` is required for the narrow layout (ConfigError without it)."""
        self._settings = settings
        self._rows_per_response_chunk = rows_per_response_chunk
        self._session: requests.Session | None = None
        self._layout = layout_for(settings, resource_map)
        if settings.layout == "wide":
            self._counted = "*"
            self._query = wide_window_query(
                settings.measurement, settings.pod_tag, settings.vin_tag
            )
        else:
            self._counted = f"{quote_identifier(settings.value_field)}::field"
            self._query = narrow_window_query(
                settings.measurement,
                settings.pod_tag,
                settings.vin_tag,
                settings.resource_tag,
                settings.value_field,
            )

    def _http(self) -> requests.Session:
        if self._session is None:
            session = open_session(self._settings)
            self._session = session
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def query_chunks(self, query: str, params: dict[str, object]) -> Iterator[dict[str, Any]]:
        """Yield each result object of a chunked response; raise SourceError on any error."""
        try:
            response = self._http().post(
                f"{self._settings.url.rstrip('/')}/query",
                data={
                    "db": self._settings.database,
                    "q": query,
                    "params": orjson.dumps(params).decode(),
                    "epoch": "ns",
                    "chunked": "true",
                    "chunk_size": str(self._rows_per_response_chunk),
                },
                stream=True,
                timeout=self._settings.timeout / 1000,
            )
        except requests.RequestException as exc:
            raise SourceError(f"request failed: {type(exc).__name__}: {exc}") from None
        with response:
            if response.status_code != 200:
                raise SourceError(f"HTTP {response.status_code}: {response.text[:200]}")
            last: dict[str, Any] | None = None
            try:
                for line in response_lines(response):
                    if not line:
                        continue
                    body = orjson.loads(line)
                    if body.get("error"):
                        raise SourceError(f"query error: {body['error']}")
                    for result in body.get("results", []):
                        if result.get("error"):
                            raise SourceError(f"query error: {result['error']}")
                        last = result
                        yield result
            except (requests.RequestException, orjson.JSONDecodeError) as exc:
                raise SourceError(f"response broken: {type(exc).__name__}: {exc}") from None
            if last is not None and ends_partial(last):
                raise TruncatedError("response ended inside a partial result")

    def fetch_window(self, pod: str, window: Window, tally: Tally | None = None) -> FetchResult:
        """Every reading of one pod in the window, in the configured layout (`parse_chunk`),
        with the values counted per bucket when a `tally` is asked for."""
        params = window_params(pod, window.start, window.end)
        return parse_chunks(self.query_chunks(self._query, params), self._layout, None, tally)

    def count_buckets(self, pod: str, window: Window, bucket_ms: int) -> dict[int, int]:
        """InfluxDB's count of the pod's values in the window per epoch-aligned bucket (bucket
        start in epoch ms -> values); buckets without any are absent. It counts every field
        value, as a read with a `Tally` does."""
        query = count_query(
            self._settings.measurement, self._settings.pod_tag, self._counted, bucket_ms
        )
        counts: dict[int, int] = {}
        try:
            for chunk in self.query_chunks(query, window_params(pod, window.start, window.end)):
                for series in chunk.get("series") or ():
                    for row in series.get("values") or ():
                        values = sum(value for value in row[1:] if value)
                        if values:
                            bucket = row[0] // NS_PER_MS
                            counts[bucket] = counts.get(bucket, 0) + values
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            raise SourceError(f"response broken: {type(exc).__name__}: {exc}") from None
        return counts
