"""Durations written as `500ms`, `10s`, `2m`, `1h`, `1d` (or bare milliseconds)."""

from __future__ import annotations

import re

from bethos.exceptions import ConfigError

_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PATTERN = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")
# Longer is a typo, and would overflow the Java longs of Flink's timers once added to a time.
MAX_DURATION_MS = 3650 * _UNIT_MS["d"]


def parse_duration_ms(text: str | int) -> int:
    """Return the duration in milliseconds; a bare number is milliseconds."""
    if isinstance(text, bool):
        raise ConfigError(f"not a duration: {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise ConfigError(f"negative duration: {text}")
        ms = text
    else:
        match = _PATTERN.match(str(text))
        if match is None:
            raise ConfigError(f"not a duration: {text!r} (use e.g. 500ms, 10s, 2m, 1h)")
        amount, unit = match.groups()
        ms = int(amount) * _UNIT_MS[unit or "ms"]
    if ms > MAX_DURATION_MS:
        raise ConfigError(f"duration too long: {text!r} (at most 3650d)")
    return ms


def format_duration_ms(ms: int) -> str:
    """The shortest exact text for a duration that `parse_duration_ms` reads back: 120000 -> 2m."""
    for unit in ("d", "h", "m", "s"):
        if ms and ms % _UNIT_MS[unit] == 0:
            return f"{ms // _UNIT_MS[unit]}{unit}"
    return f"{ms}ms"
