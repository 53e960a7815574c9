"""Planning a pod's reads from the ETL settings, free of clocks: the next window, its chunks,
and when the poll after it is due.

Windows are half-open and tile time: each starts `lookback` before the end of the pod's last
completed window (re-reading late points), ends `ingest_delay` before `now`, and spans at most
`max_window`; a window is read in `chunk_duration` chunks, one query each.
"""

from __future__ import annotations

from bethos.config import EtlSettings
from bethos.fetch_result import Window


def plan_window(completed_until: int, now: int, settings: EtlSettings) -> Window | None:
    """The next window: from the progress minus the lookback, up to `now - ingest_delay`;
    None when nothing new is readable yet.

    A catch-up is bounded by `max_window` so that no single poll issues a huge query.
    """
    end_limit = now - settings.ingest_delay
    if end_limit <= completed_until:
        return None
    return Window(
        completed_until - settings.lookback, min(end_limit, completed_until + settings.max_window)
    )


def split_chunks(window: Window, chunk_duration: int) -> list[Window]:
    """Chunks that tile the window with no gap and no overlap."""
    if chunk_duration <= 0:
        raise ValueError("chunk_duration must be positive")
    starts = range(window.start, window.end, chunk_duration)
    return [Window(s, min(s + chunk_duration, window.end)) for s in starts]


def next_poll_after(completed_until: int, window: Window, now: int, settings: EtlSettings) -> int:
    """When to poll after a window was read, judged by how it was planned, not by how long the
    read took: a window cut short by `max_window` is a catch-up, so the next one is due at once;
    any other ended `ingest_delay` before the time it was planned at, and the next poll is one
    `poll_interval` after that time (at once if the read took longer than that).

    `completed_until` is the progress the window was planned from.
    """
    if window.end >= completed_until + settings.max_window:
        return now
    planned_at = window.end + settings.ingest_delay
    return max(now, planned_at + settings.poll_interval)
