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
