"""The per-pod polling logic of the ETL job, free of Flink, clocks and sleeps.

A poll plans a window from `now` and the pod's saved progress (`planning.plan_window`), reads
it through a fetch function (`read_window`), and settles what was read into what to emit, the
new progress and when to poll next (`settle`; bytewax's SimplePollingSource shape). Progress is
the end of the pod's last completed window; it advances only when every chunk of a window was
read.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from bethos.config import EtlSettings
from bethos.exceptions import SourceError, TruncatedError
from bethos.readings import FetchResult, Reject, Window
from bethos.record import AggregatedRecord
from bethos.retry import backoff_delay
from bethos.source.planning import next_poll_after, split_chunks

Fetch = Callable[[str, Window], FetchResult]


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


def settle(
    pod: str,
    now: int,
    progress: PodProgress,
    window: Window,
    outcome: ReadOutcome,
    settings: EtlSettings,
    rng: random.Random,
) -> PollResult:
    """The poll's result once its window was read: records and new progress, or the retry."""
    combined = outcome.result
    if combined is None:
        attempts = progress.failed_attempts + 1
        if attempts >= settings.retry_max_attempts:
            # The window is kept (progress unchanged) and tried again at the next regular poll.
            return PollResult(
                PodProgress(progress.completed_until, 0),
                now + settings.poll_interval,
                window,
                error=outcome.error,
                gave_up=True,
                truncated=outcome.truncated,
            )
        delay = backoff_delay(
            attempts, settings.retry_initial_interval, settings.retry_max_interval, rng
        )
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
        next_poll_after(progress.completed_until, window, now, settings),
        window,
        records,
        combined.rejects,
        rows=combined.readings,
        truncated=outcome.truncated,
    )
