"""The per-pod polling logic of the ETL job, free of Flink, clocks and sleeps.

A poll plans a window from `now` and the pod's saved progress (`plan_window`), reads it through
a fetch function (`read_window`), and settles what was read into what to emit, the new progress
and when to poll next (`settle`; bytewax's SimplePollingSource shape). Progress is the end of
the pod's last completed window; it advances only when every chunk of a window was read.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from bethos.exceptions import SourceError, TruncatedError
from bethos.readings import FetchResult, Reject, Window
from bethos.record import AggregatedRecord
from bethos.retry import backoff_delay

Fetch = Callable[[str, Window], FetchResult]


@dataclass(frozen=True, slots=True)
class PollPlan:
    poll_interval: int
    chunk_duration: int
    lookback: int
    ingest_delay: int
    max_window: int
    retry_max_attempts: int
    retry_initial_interval: int
    retry_max_interval: int


@dataclass(frozen=True, slots=True)
class PodProgress:
    completed_until: int
    failed_attempts: int = 0


@dataclass(slots=True)
class PollResult:
    progress: PodProgress
    next_poll_at: int
    window: Window | None = None
    records: list[AggregatedRecord] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    rows: int = 0
    error: str | None = None
    gave_up: bool = False
    # Chunks whose response was cut (`partial`) and were read again in halves.
    truncated: list[Window] = field(default_factory=list)


def plan_window(progress: int, now: int, plan: PollPlan) -> Window | None:
    """The next window: from the progress minus the lookback, up to `now - ingest_delay`.

    A catch-up is bounded by `max_window` so that no single poll issues a huge query.
    """
    end_limit = now - plan.ingest_delay
    if end_limit <= progress:
        return None
    return Window(progress - plan.lookback, min(end_limit, progress + plan.max_window))


def split_chunks(window: Window, chunk_duration: int) -> list[Window]:
    """Chunks that tile the window with no gap and no overlap."""
    if chunk_duration <= 0:
        raise ValueError("chunk_duration must be positive")
    starts = range(window.start, window.end, chunk_duration)
    return [Window(s, min(s + chunk_duration, window.end)) for s in starts]


def aggregate(
    result: FetchResult, pod: str, received_at: int, produced_at: int
) -> list[AggregatedRecord]:
    """One record per VIN of a whole window, with each signal's newest reading."""
    return [
        AggregatedRecord(vin, signals, pod, received_at, produced_at)
        for vin, signals in result.latest.items()
        if signals
    ]


def fetch_whole(fetch: Fetch, pod: str, chunk: Window, truncated: list[Window]) -> FetchResult:
    """Read a chunk; a cut response is never passed on: the chunk is split in halves, each read
    the same way (appended to `truncated`), down to a single millisecond."""
    try:
        return fetch(pod, chunk)
    except TruncatedError:
        if chunk.end - chunk.start <= 1:
            raise
        truncated.append(chunk)
    middle = chunk.start + (chunk.end - chunk.start) // 2
    result = fetch_whole(fetch, pod, Window(chunk.start, middle), truncated)
    result.merge(fetch_whole(fetch, pod, Window(middle, chunk.end), truncated))
    return result


@dataclass(slots=True)
class ReadOutcome:
    """What reading a whole window gave: every chunk's readings, or the error that stopped it.

    `truncated` lists the chunks that came back cut and were read again in halves.
    """

    result: FetchResult | None
    error: str | None = None
    truncated: list[Window] = field(default_factory=list)


def read_window(fetch: Fetch, pod: str, window: Window, chunk_duration: int) -> ReadOutcome:
    """Read every chunk of the window; the first chunk that fails fails the whole window."""
    combined = FetchResult()
    truncated: list[Window] = []
    try:
        for chunk in split_chunks(window, chunk_duration):
            combined.merge(fetch_whole(fetch, pod, chunk, truncated))
    except SourceError as exc:
        return ReadOutcome(None, str(exc), truncated)
    return ReadOutcome(combined, truncated=truncated)


def next_poll_after(completed_until: int, window: Window, now: int, plan: PollPlan) -> int:
    """When to poll after a window was read, judged by how it was planned, not by how long the
    read took: a window cut short by `max_window` is a catch-up, so the next one is due at once;
    any other ended `ingest_delay` before the time it was planned at, and the next poll is one
    `poll_interval` after that time (at once if the read took longer than that)."""
    if window.end >= completed_until + plan.max_window:
        return now
    planned_at = window.end + plan.ingest_delay
    return max(now, planned_at + plan.poll_interval)


def settle(
    pod: str,
    now: int,
    progress: PodProgress,
    window: Window,
    outcome: ReadOutcome,
    plan: PollPlan,
    rng: random.Random,
) -> PollResult:
    """The poll's result once its window was read: records and new progress, or the retry."""
    combined = outcome.result
    if combined is None:
        attempts = progress.failed_attempts + 1
        if attempts >= plan.retry_max_attempts:
            # The window is kept (progress unchanged) and tried again at the next regular poll.
            return PollResult(
                PodProgress(progress.completed_until, 0),
                now + plan.poll_interval,
                window,
                error=outcome.error,
                gave_up=True,
                truncated=outcome.truncated,
            )
        delay = backoff_delay(attempts, plan.retry_initial_interval, plan.retry_max_interval, rng)
        return PollResult(
            PodProgress(progress.completed_until, attempts),
            now + delay,
            window,
            error=outcome.error,
            truncated=outcome.truncated,
        )
    records = aggregate(combined, pod, received_at=now, produced_at=now)
    return PollResult(
        PodProgress(window.end, 0),
        next_poll_after(progress.completed_until, window, now, plan),
        window,
        records,
        combined.rejects,
        rows=combined.readings,
        truncated=outcome.truncated,
    )
