"""The fields of the log lines, in order, as the unit and the integration tests expect them."""

POLL_FIELDS = [
    "pod",
    "window_start",
    "window_end",
    "rows",
    "records",
    "rejected",
    "lag_ms",
    "duration_ms",
    "read_ms",
    "read_cpu_ms",
    "emit_ms",
]

LATE_FIELDS = ["vin", "window_end", "watermark", "topic", "partition", "offset"]

PUBLISH_FIELDS = ["shard", "published", "tombstones", "cursor", "duration_ms"]

RETRY_FIELDS = ["pod", "attempt", "err", "retry_in_ms"]

GIVEN_UP_FIELDS = ["pod", "err", "window_start", "lag_ms"]

RECONCILE_ERROR_FIELDS = ["pod", "err", "window_start", "window_end"]

PROGRESS_FILE_ERROR_FIELDS = ["pod", "err"]

TRUNCATED_FIELDS = ["pod", "window_start", "window_end", "action"]
