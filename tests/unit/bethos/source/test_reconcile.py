"""Reconcile passes: points written later than the lookback after their own time are found by
comparing InfluxDB's counts per bucket with the values the reads counted."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bethos.config import EtlSettings
from bethos.exceptions import SourceError
from bethos.fetch_result import FetchResult, Tally, Window
from bethos.source.poller import (
    PodProgress,
    PollDriver,
    ReconcileState,
    TickResult,
    add_counts,
    reconcile_range,
)
from tests.unit.bethos.source.etl_settings import SETTINGS
from tests.unit.bethos.source.test_poller import InlineExecutor

RECONCILING = SETTINGS.model_copy(
    update={"reconcile_interval": 60_000, "reconcile_window": 600_000}
)


class PointStore:
    """InfluxDB as a list of (vin, ts) points with one value each, read and counted like the
    real server: reads with a tally count what they read per bucket."""

    def __init__(self) -> None:
        self.points: list[tuple[str, int]] = []
        self.fail_counts = False
        self.reads: list[Window] = []

    def open_client(self) -> PointStore:
        return self

    def close(self) -> None:
        pass

    def fetch_window(self, pod: str, window: Window, tally: Tally | None = None) -> FetchResult:
        self.reads.append(window)
        result = FetchResult()
        for vin, ts in self.points:
            if window.start <= ts < window.end:
                result.offer(vin, "speed", float(ts), ts)
                result.readings += 1
                if tally is not None and ts >= tally.since_ms:
                    bucket = ts // tally.bucket_ms * tally.bucket_ms
                    result.counts[bucket] = result.counts.get(bucket, 0) + 1
        return result

    def count_buckets(self, pod: str, window: Window, bucket_ms: int) -> dict[int, int]:
        if self.fail_counts:
            raise SourceError("HTTP 500")
        counts: dict[int, int] = {}
        for _, ts in self.points:
            if window.start <= ts < window.end:
                bucket = ts // bucket_ms * bucket_ms
                counts[bucket] = counts.get(bucket, 0) + 1
        return counts


class Pod:
    """One pod driven tick by tick, its state saved between ticks as the ETL saves it."""

    def __init__(self, store: PointStore, start: int, settings: EtlSettings = RECONCILING):
        self.driver = PollDriver(settings, store.open_client, random.Random(1), InlineExecutor())
        self.progress: PodProgress | None = PodProgress(start, 0, start)
        self.reconcile: ReconcileState | None = None
        self.results: list[TickResult] = []

    def tick(self, now: int) -> TickResult:
        result = self.driver.tick("p", now, self.progress, self.reconcile)
        self.progress, self.reconcile = result.progress, result.reconcile
        self.results.append(result)
        return result

    def run(self, start: int, end: int, step: int = 1_000) -> None:
        for now in range(start, end, step):
            self.tick(now)

    def latest(self) -> dict[str, int]:
        """Per VIN, the newest ts emitted."""
        newest: dict[str, int] = {}
        for result in self.results:
            for record in result.records:
                ts = record.signals["speed"].ts
                newest[record.vin] = max(newest.get(record.vin, ts), ts)
        return newest


def test_a_read_counts_only_the_values_past_the_progress_it_was_planned_from() -> None:
    store = PointStore()
    store.points = [("V1", 95_000), ("V2", 101_000), ("V3", 112_000)]
    pod = Pod(store, start=100_000)
    pod.run(125_000, 127_000)
    assert pod.progress is not None and pod.progress.completed_until == 123_000
    assert pod.reconcile is not None
    # 95 s is in the lookback before the start: read, not counted.
    assert pod.reconcile.known == {100_000: 1, 110_000: 1}
    assert pod.reconcile.since == 100_000


def test_a_point_written_later_than_the_lookback_is_found_by_the_next_pass() -> None:
    store = PointStore()
    store.points = [("V1", 101_000)]
    pod = Pod(store, start=100_000)
    pod.run(103_000, 200_000)
    assert pod.latest() == {"V1": 101_000}
    # Written at 200 s with a time of 105 s: 95 s late, the lookback is 30 s. Passes run every
    # 60 s from the first tick (103 s) on, once no poll is due: the next is at 223 s or so.
    store.points.append(("V2", 105_000))
    pod.run(200_000, 220_000)
    assert "V2" not in pod.latest()
    reads_before = len(store.reads)
    pod.run(220_000, 300_000)
    assert pod.latest() == {"V1": 101_000, "V2": 105_000}
    (found,) = [r for r in pod.results if r.read is not None and r.read.reconciled and r.records]
    assert found.read is not None and found.read.reconciled is not None
    assert found.read.reconciled.grown == [100_000]
    assert found.read.reconciled.late == 1
    # Only the grown bucket was read again, next to the regular polls.
    reread = [w for w in store.reads[reads_before:] if w.end <= 150_000]
    assert reread == [Window(100_000, 110_000)]
    # The next pass finds nothing new and reads nothing again.
    pod.run(300_000, 400_000)
    passes = [r.read.reconciled for r in pod.results if r.read is not None and r.read.reconciled]
    assert len(passes) >= 3 and passes[-1] is not None and passes[-1].grown == []


def test_a_failed_pass_keeps_what_is_known_and_waits_for_the_next() -> None:
    store = PointStore()
    pod = Pod(store, start=100_000)
    pod.run(103_000, 150_000)
    store.points.append(("V2", 105_000))
    store.fail_counts = True
    pod.run(150_000, 170_000)
    failed = [r for r in pod.results if r.read is not None and r.read.reconcile]
    assert len(failed) == 1 and failed[0].read is not None
    assert failed[0].read.error == "HTTP 500" and failed[0].records == []
    assert pod.reconcile is not None and pod.reconcile.known.get(100_000, 0) == 0
    assert 163_000 + RECONCILING.reconcile_interval <= pod.reconcile.next_at <= 230_000
    store.fail_counts = False
    pod.run(170_000, 240_000)
    assert pod.latest()["V2"] == 105_000


def test_a_pass_looks_at_whole_buckets_of_the_window_and_never_before_since() -> None:
    state = ReconcileState(0, since=0, known={})
    assert reconcile_range(state, 1_000_000, 1_005_000, RECONCILING) == Window(400_000, 1_000_000)
    late_start = state._replace(since=733_000)
    assert reconcile_range(late_start, 1_000_000, 1_005_000, RECONCILING) == Window(
        733_000, 1_000_000
    )
    assert (
        reconcile_range(state._replace(since=1_000_000), 1_000_000, 1_005_000, RECONCILING) is None
    )


def test_counts_older_than_the_window_are_dropped() -> None:
    assert add_counts({10: 1, 20: 2}, {20: 1, 30: 4}, keep_from=20) == {20: 3, 30: 4}


def test_a_pod_restored_without_reconcile_state_starts_counting_at_its_progress() -> None:
    store = PointStore()
    store.points = [("V1", 50_000)]  # already read by the job before its upgrade
    pod = Pod(store, start=100_000)
    pod.run(103_000, 200_000)
    assert pod.reconcile is not None and pod.reconcile.since == 100_000
    assert "V1" not in pod.latest()


def test_reconcile_interval_zero_never_counts() -> None:
    store = PointStore()
    store.points = [("V1", 101_000)]
    quiet = RECONCILING.model_copy(update={"reconcile_interval": 0})
    pod = Pod(store, start=100_000, settings=quiet)
    store.points.append(("V2", 102_000))
    pod.run(103_000, 400_000)
    assert not any(r.read is not None and r.read.reconcile for r in pod.results)
    assert pod.reconcile is not None and pod.reconcile.known == {}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(100_000, 400_000), st.integers(0, 300_000)), min_size=1, max_size=40
    )
)
def test_every_point_within_the_window_is_emitted_however_late_it_is_written(
    points: list[tuple[int, int]],
) -> None:
    """Points (ts, delay): each is written `delay` after its time. Whatever the delays, every
    point is emitted by the end: by a poll, its lookback or a reconcile pass."""
    store = PointStore()
    pod = Pod(store, start=100_000)
    pending = sorted(((ts + delay, f"V{i}", ts) for i, (ts, delay) in enumerate(points)))
    for now in range(101_000, 900_000, 1_000):
        while pending and pending[0][0] <= now:
            _, vin, ts = pending.pop(0)
            store.points.append((vin, ts))
        pod.tick(now)
    assert pod.latest() == {f"V{i}": ts for i, (ts, _) in enumerate(points)}
