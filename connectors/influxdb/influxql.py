"""InfluxQL text from user-supplied names: identifiers quoted and escaped, values bound."""

from __future__ import annotations

NS_PER_MS = 1_000_000


def quote_identifier(name: str) -> str:
    """A double-quoted InfluxQL identifier; backslashes and quotes are escaped."""
    if not name:
        raise ValueError("identifier must not be empty")
    if "\n" in name or "\x00" in name:
        raise ValueError(f"identifier contains a forbidden character: {name!r}")
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wide_window_query(measurement: str, pod_tag: str, vin_tag: str) -> str:
    """Every field of one pod's points in [$start, $end), one series per VIN.

    The pod is bound as `$pod`; times are integer nanoseconds bound as `$start` and `$end`.
    """
    return (
        f"SELECT *::field FROM {quote_identifier(measurement)} "
        f"WHERE {quote_identifier(pod_tag)} = $pod AND time >= $start AND time < $end "
        f"GROUP BY {quote_identifier(vin_tag)}"
    )


def narrow_window_query(
    measurement: str, pod_tag: str, vin_tag: str, resource_tag: str, value_field: str
) -> str:
    """The value field of one pod's points in [$start, $end), one series per VIN and resource.

    `::field` makes sure a tag of the same name is never selected instead of the field. The pod
    is bound as `$pod`; times are integer nanoseconds bound as `$start` and `$end`.
    """
    return (
        f"SELECT {quote_identifier(value_field)}::field FROM {quote_identifier(measurement)} "
        f"WHERE {quote_identifier(pod_tag)} = $pod AND time >= $start AND time < $end "
        f"GROUP BY {quote_identifier(vin_tag)}, {quote_identifier(resource_tag)}"
    )


def window_params(pod: str, start_ms: int, end_ms: int) -> dict[str, object]:
    return {"pod": pod, "start": start_ms * NS_PER_MS, "end": end_ms * NS_PER_MS}


def count_query(measurement: str, pod_tag: str, counted: str, bucket_ms: int) -> str:
    """InfluxDB's own count of one pod's values in [$start, $end), per `bucket_ms` bucket
    aligned to the epoch; empty buckets are left out. `counted` is `*` (every field: the wide
    layout) or a field's quoted name (the narrow layout's value field)."""
    if bucket_ms <= 0:
        raise ValueError("bucket_ms must be positive")
    return (
        f"SELECT count({counted}) FROM {quote_identifier(measurement)} "
        f"WHERE {quote_identifier(pod_tag)} = $pod AND time >= $start AND time < $end "
        f"GROUP BY time({int(bucket_ms)}ms) fill(none)"
    )
