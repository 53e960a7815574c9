"""Flush scheduling shared by the strategies (SPEC section 4)."""

from __future__ import annotations


def flush_due(now_ms: int, interval_ms: int) -> int:
    """The next flush time after `now`, aligned to multiples of the interval."""
    return (now_ms // interval_ms + 1) * interval_ms
