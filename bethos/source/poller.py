"""The ETL's per-pod poller, free of Flink, clocks and sleeps.

A caller (the ETL's keyed function) calls `PollDriver.tick(pod, now, saved progress)` on each
tick of a pod, and again soon after while the pod's read is out (`reading`). A tick settles
the pod's finished read into records and new progress, and hands over the next window when one
is due; it never waits for a read. Reads run on the driver's threads between ticks (bytewax's
SimplePollingSource shape: given `now` and the saved progress, it returns what to emit and
when the pod is next due).

Progress is the end of the pod's last completed window; it advances only when every chunk of a
window was read. A window is planned from the saved progress, and that progress is saved
before the read is handed over, so the read settles against exactly the progress it was
planned from.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

from bethos.config import EtlSettings
from bethos.readings import FetchResult, Window
from bethos.record import AggregatedRecord
from bethos.retry import backoff_delay
from bethos.source import progress_file
from bethos.source.planning import next_poll_after, plan_window
from bethos.source.reads import BackgroundReads, Client, FinishedRead


class PodProgress(NamedTuple):
    """A pod's state: the end of its last completed window, the failed attempts at the window
    after it, and when the pod is next due (epoch ms). Kept in Flink as a plain tuple."""

    completed_until: int
    failed_attempts: int
    next_poll_at: int


@dataclass(frozen=True, slots=True)
class TickResult:
    """What one tick of a pod gives: the progress to save and, when a read was settled on
    this tick, that read with its records (`gave_up`: it failed `retry_max_attempts` times and
    the window waits for the next regular poll). `stale`: a finished read that did not start
    where the saved progress says (never expected), dropped and read again."""

    progress: PodProgress
    read: FinishedRead | None = None
    records: list[AggregatedRecord] = field(default_factory=list)
    gave_up: bool = False
    stale: Window | None = None


def aggregate(
    result: FetchResult, pod: str, received_at: int, produced_at: int
) -> list[AggregatedRecord]:
    """One record per VIN of a whole window, with each signal's newest reading."""
    return [
        AggregatedRecord(vin, signals, pod, received_at, produced_at)
        for vin, signals in result.latest.items()
        if signals
    ]


def settle(
    pod: str,
    now: int,
    progress: PodProgress,
    read: FinishedRead,
    settings: EtlSettings,
    rng: random.Random,
) -> TickResult:
    """A read of the window planned from `progress`, settled: its records and the progress
    after it, or the retry of the window with backoff."""
    found = read.result
    if found is None:
        attempts = progress.failed_attempts + 1
        if attempts >= settings.retry_max_attempts:
            # The window is kept (progress unchanged) and tried again at the next regular poll.
            given_up = PodProgress(progress.completed_until, 0, now + settings.poll_interval)
            return TickResult(given_up, read, gave_up=True)
        delay = backoff_delay(
            attempts, settings.retry_initial_interval, settings.retry_max_interval, rng
        )
        return TickResult(PodProgress(progress.completed_until, attempts, now + delay), read)
    next_poll_at = next_poll_after(progress.completed_until, read.window, now, settings)
    records = aggregate(found, pod, received_at=now, produced_at=now)
    return TickResult(PodProgress(read.window.end, 0, next_poll_at), read, records)


class PollDriver:
    """Polls the pods of one ETL subtask: plans their windows, reads them in the background,
    settles them. Owns the read threads and their clients: `close()` releases them.

    `open_client` opens a connector client (one per read thread); it is called once here too,
    so that settings it cannot build a client from fail at the start, not on a read thread.
    `executor` runs the reads: by default `influxdb.concurrent_reads` threads.
    """

    def __init__(
        self,
        settings: EtlSettings,
        open_client: Callable[[], Client],
        rng: random.Random,
        executor: Executor | None = None,
    ) -> None:
        open_client().close()
        self._settings = settings
        self._rng = rng
        if executor is None:
            executor = ThreadPoolExecutor(
                settings.influxdb.concurrent_reads, thread_name_prefix="influxdb-read"
            )
        self._reads = BackgroundReads(open_client, settings.chunk_duration, executor)

    def starting_point(self, pod: str, now: int) -> int:
        """Where a pod without progress starts: its entry in the progress file if any, else
        `start_at`, else `backfill` before now."""
        settings = self._settings
        if settings.checkpoint_path:
            saved = progress_file.load(settings.checkpoint_path).get(pod)
            if saved is not None:
                return saved
        if settings.start_at is not None:
            return settings.start_at
        return now - settings.backfill

    def tick(self, pod: str, now: int, saved: PodProgress | None) -> TickResult:
        """Settle the pod's finished read, if any, then hand over its next window when due.

        A pod without saved progress gets its starting point here, and the caller saves it
        before the first read settles: a later tick must not compute it again from its own now.
        """
        progress = saved or PodProgress(self.starting_point(pod, now), 0, now)
        result = TickResult(progress)
        read = self._reads.take(pod)
        if read is not None:
            if read.window.start == progress.completed_until - self._settings.lookback:
                result = settle(pod, now, progress, read, self._settings, self._rng)
                progress = result.progress
            else:
                result = TickResult(progress, stale=read.window)
        if now >= progress.next_poll_at and self._reads.outstanding(pod) is None:
            window = plan_window(progress.completed_until, now, self._settings)
            if window is None:
                waiting = progress._replace(next_poll_at=now + self._settings.poll_interval)
                result = dataclasses.replace(result, progress=waiting)
            else:
                self._reads.submit(pod, window)
        return result

    def reading(self, pod: str) -> bool:
        """Whether a read of the pod is out: a tick soon after may settle it."""
        return self._reads.outstanding(pod) is not None

    def emitted(self, pod: str, result: TickResult) -> None:
        """Call once a settled read's records are handed on: the progress file
        (`checkpoint_path`), if any, then records the window as done."""
        path = self._settings.checkpoint_path
        if path and result.read is not None and result.read.result is not None:
            progress_file.save(path, {pod: result.progress.completed_until})

    def close(self) -> None:
        """Drop the reads not started yet and close the read threads' clients."""
        self._reads.close()
