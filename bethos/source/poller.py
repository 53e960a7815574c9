"""One tick of a pod, top to bottom: the ETL's per-pod poller, free of Flink, clocks and sleeps.

A caller (the ETL's keyed function) calls `PollDriver.tick(pod, now, saved progress)` on each
tick of a pod, and again soon after while the pod's read is out (`reading`). A tick never waits
for a read; it

1. takes the pod's state: its saved progress, or where a new pod starts (`starting_point`);
2. settles the pod's finished read, if one came back since the last tick (`settle`, or
   `settle_reconcile` for a reconcile pass): its records, and the progress after it or the
   retry of its window with backoff;
3. hands over the next read, when the pod is due: its next window (`plan_window`), else, when
   that is due, a reconcile pass (`reconcile_range`).

This module is read in that order: the state a pod keeps, the driver and its tick, then the
pure functions of steps 2 and 3. The reads themselves run on the driver's threads between ticks
(`bethos.source.window_reads`, the read thread's side, in its own order). This is bytewax's
SimplePollingSource shape: given `now` and the saved progress, a tick returns what to emit and
when the pod is next due.

Progress is the end of the pod's last completed window; it advances only when every chunk of a
window was read. A window is planned from the saved progress, and that progress is saved
before the read is handed over, so the read settles against exactly the progress it was
planned from. Windows are half-open and tile time: each starts `lookback` before the end of the
pod's last completed window (re-reading late points), ends `ingest_delay` before `now`, and
spans at most `max_window`; a window is read in `chunk_duration` chunks, one query each.

A point written to InfluxDB later than `lookback` after its own time falls behind the progress
unread. So each read also counts its values per `chunk_duration` bucket (those at or after the
progress it was planned from: the lookback's values were counted by the read before), and every
`reconcile_interval` a reconcile pass asks InfluxDB for its own counts over the last
`reconcile_window` and reads again only the buckets that grew. Counts are never more than what
was read, so a grown bucket is never missed; at worst one is read again for nothing.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

from bethos.config import EtlSettings
from bethos.fetch_result import FetchResult, Tally, Window
from bethos.os_threads import name_this_thread
from bethos.record import AggregatedRecord, aggregated_record
from bethos.retry import backoff_delay
from bethos.source import progress_file
from bethos.source.window_reads import BackgroundReads, Client, FinishedRead

FOLD_INTERVAL_MS = 60_000


# -- what a pod keeps, and what a tick gives -------------------------------------------------------


class PodProgress(NamedTuple):
    """A pod's state: the end of its last completed window, the failed attempts at the window
    after it, and when the pod is next due (epoch ms). Kept in Flink as a plain tuple."""

    completed_until: int
    failed_attempts: int
    next_poll_at: int


class ReconcileState(NamedTuple):
    """A pod's reconcile bookkeeping: when its next pass is due (epoch ms), the time before which
    it never looks (where the pod started, or was restored without this state), and per bucket
    start the values known read. Kept in Flink as a plain tuple."""

    next_at: int
    since: int
    known: dict[int, int]


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
    reconcile: ReconcileState | None = None


# -- the driver: one tick --------------------------------------------------------------------------


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
            # Named for the operating system too: their CPU shows apart from the task's.
            executor = ThreadPoolExecutor(
                settings.influxdb.concurrent_reads,
                thread_name_prefix="influxdb-read",
                initializer=name_this_thread,
            )
        self._reads = BackgroundReads(open_client, settings.chunk_duration, executor)
        self._next_fold_at = 0

    def tick(
        self,
        pod: str,
        now: int,
        saved: PodProgress | None,
        saved_reconcile: ReconcileState | None = None,
    ) -> TickResult:
        """Settle the pod's finished read, if any, then hand over its next window when due,
        else its reconcile pass when that is due."""
        progress, reconcile = self._state(pod, now, saved, saved_reconcile)
        result = self._settle_finished_read(pod, now, progress, reconcile)
        if self._reads.outstanding(pod) is not None:
            return result  # still reading: a later tick settles it
        return self._hand_over_next_read(pod, now, result, result.reconcile or reconcile)

    # 1. the pod's state

    def _state(
        self,
        pod: str,
        now: int,
        saved: PodProgress | None,
        saved_reconcile: ReconcileState | None,
    ) -> tuple[PodProgress, ReconcileState]:
        """The pod's saved progress and reconcile state, or those it starts with.

        A pod without saved progress gets its starting point here, and the caller saves it
        before the first read settles: a later tick must not compute it again from its own now.
        A pod without reconcile state (new, or restored from before reconcile passes) is
        reconciled from its progress on.
        """
        progress = saved or PodProgress(self.starting_point(pod, now), 0, now)
        reconcile = saved_reconcile or ReconcileState(
            now + self._settings.reconcile_interval, progress.completed_until, {}
        )
        return progress, reconcile

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

    # 2. the finished read, settled

    def _settle_finished_read(
        self, pod: str, now: int, progress: PodProgress, reconcile: ReconcileState
    ) -> TickResult:
        """The pod's finished read, if one came back, settled against the progress it was
        planned from; a read planned from other progress (never expected) is dropped."""
        read = self._reads.take(pod)
        if read is None:
            return TickResult(progress, reconcile=reconcile)
        if read.reconcile:
            return settle_reconcile(pod, now, progress, reconcile, read, self._settings)
        if read.window.start == progress.completed_until - self._settings.lookback:
            return settle(pod, now, progress, read, self._settings, self._rng, reconcile)
        return TickResult(progress, stale=read.window, reconcile=reconcile)

    # 3. the next read, handed over

    def _hand_over_next_read(
        self, pod: str, now: int, result: TickResult, reconcile: ReconcileState
    ) -> TickResult:
        """When the pod is due: its next window, handed over to the read threads (or, when
        nothing new is readable yet, the pod waits a poll interval); else, when one is due, a
        reconcile pass."""
        settings = self._settings
        progress = result.progress
        if now >= progress.next_poll_at:
            window = plan_window(progress.completed_until, now, settings)
            if window is not None:
                tally = None
                if settings.reconcile_interval:
                    tally = Tally(settings.chunk_duration, progress.completed_until)
                self._reads.submit(pod, window, tally)
                return result
            waiting = progress._replace(next_poll_at=now + settings.poll_interval)
            result = dataclasses.replace(result, progress=waiting)
        if settings.reconcile_interval and now >= reconcile.next_at:
            checked = reconcile_range(reconcile, progress.completed_until, now, settings)
            if checked is None:
                later = reconcile._replace(next_at=now + settings.reconcile_interval)
                return dataclasses.replace(result, reconcile=later)
            self._reads.submit_reconcile(pod, checked, settings.chunk_duration, reconcile.known)
        return result

    # around the ticks

    def reading(self, pod: str) -> bool:
        """Whether a read of the pod is out: a tick soon after may settle it."""
        return self._reads.outstanding(pod) is not None

    def journal_entry(self, pod: str, result: TickResult) -> str | None:
        """With a progress file (`checkpoint_path`): the journal line that records a settled
        window, to be handed on after its records (see `progress_file`); else None."""
        read = result.read
        if not self._settings.checkpoint_path or read is None or read.reconcile:
            return None
        if read.result is None:
            return None
        return progress_file.journal_entry(pod, result.progress.completed_until)

    def fold_progress(self, now: int) -> None:
        """With a progress file: fold the journal's acknowledged entries into it, at most once
        per FOLD_INTERVAL_MS (the FileSink adds a part per checkpoint; folding keeps them few).
        Raises ProgressFileError when the file or the journal cannot be used."""
        path = self._settings.checkpoint_path
        if not path or now < self._next_fold_at:
            return
        self._next_fold_at = now + FOLD_INTERVAL_MS
        progress_file.fold(path)

    def close(self) -> None:
        """Drop the reads not started yet and close the read threads' clients."""
        self._reads.close()


# -- 2. settling a finished read (pure) ------------------------------------------------------------


def settle(
    pod: str,
    now: int,
    progress: PodProgress,
    read: FinishedRead,
    settings: EtlSettings,
    rng: random.Random,
    reconcile: ReconcileState | None = None,
) -> TickResult:
    """A read of the window planned from `progress`, settled: its records, the progress after
    it and its counts, or the retry of the window with backoff."""
    found = read.result
    if found is None:
        attempts = progress.failed_attempts + 1
        if attempts >= settings.retry_max_attempts:
            # The window is kept (progress unchanged) and tried again at the next regular poll.
            given_up = PodProgress(progress.completed_until, 0, now + settings.poll_interval)
            return TickResult(given_up, read, gave_up=True, reconcile=reconcile)
        delay = backoff_delay(
            attempts, settings.retry_initial_interval, settings.retry_max_interval, rng
        )
        retry = PodProgress(progress.completed_until, attempts, now + delay)
        return TickResult(retry, read, reconcile=reconcile)
    next_poll_at = next_poll_after(progress.completed_until, read.window, now, settings)
    records = aggregate(found, pod, received_at=now, produced_at=now)
    if found.counts and reconcile is not None:
        keep_from = now - settings.reconcile_window - settings.chunk_duration
        known = add_counts(reconcile.known, found.counts, keep_from)
        reconcile = reconcile._replace(known=known)
    advanced = PodProgress(read.window.end, 0, next_poll_at)
    return TickResult(advanced, read, records, reconcile=reconcile)


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


def aggregate(
    result: FetchResult, pod: str, received_at: int, produced_at: int
) -> list[AggregatedRecord]:
    """One record per VIN of a whole window, with each signal's newest reading."""
    return [
        aggregated_record(vin, signals, pod, received_at, produced_at)
        for vin, signals in result.latest.items()
        if signals
    ]


def add_counts(known: dict[int, int], counts: dict[int, int], keep_from: int) -> dict[int, int]:
    """`known` plus a read's counts, without the buckets that start before `keep_from`."""
    merged = {bucket: count for bucket, count in known.items() if bucket >= keep_from}
    for bucket, count in counts.items():
        if bucket >= keep_from:
            merged[bucket] = merged.get(bucket, 0) + count
    return merged


def settle_reconcile(
    pod: str,
    now: int,
    progress: PodProgress,
    reconcile: ReconcileState,
    read: FinishedRead,
    settings: EtlSettings,
) -> TickResult:
    """A reconcile pass settled: the records of the buckets read again, and InfluxDB's counts
    as what is now known read. A failed pass changes nothing and waits for the next one."""
    next_at = now + settings.reconcile_interval
    found, reconciled = read.result, read.reconciled
    if found is None or reconciled is None:
        return TickResult(progress, read, reconcile=reconcile._replace(next_at=next_at))
    window = read.window
    known = {b: c for b, c in reconcile.known.items() if not window.start <= b < window.end}
    known.update(reconciled.counts)
    records = aggregate(found, pod, received_at=now, produced_at=now)
    done = ReconcileState(next_at, reconcile.since, known)
    return TickResult(progress, read, records, reconcile=done)


# -- 3. planning the next read (pure) --------------------------------------------------------------


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


def reconcile_range(
    state: ReconcileState, completed_until: int, now: int, settings: EtlSettings
) -> Window | None:
    """What a pass counts: whole buckets from `reconcile_window` before now (never before
    `since`) up to the pod's progress, where what the reads counted ends."""
    bucket = settings.chunk_duration
    start = max(state.since, (now - settings.reconcile_window) // bucket * bucket)
    if completed_until <= start:
        return None
    return Window(start, completed_until)
