from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bethos.config import EtlSettings
from bethos.exceptions import SourceError, TruncatedError
from bethos.fetch_result import FetchResult, Reject, Tally, Window
from bethos.record import SignalValue
from bethos.retry import backoff_delay
from bethos.source import progress_file
from bethos.source.poller import (
    FOLD_INTERVAL_MS,
    PodProgress,
    PollDriver,
    TickResult,
    aggregate,
    next_poll_after,
    plan_window,
    settle,
)
from bethos.source.window_reads import Fetch, read_window, split_chunks
from tests.unit.bethos.source.etl_settings import SETTINGS

P = ParamSpec("P")
T = TypeVar("T")


def poll(
    pod: str,
    now: int,
    progress: PodProgress,
    fetch: Fetch,
    settings: EtlSettings,
    rng: random.Random,
) -> TickResult:
    """Plan, read and settle one poll in one go, as the ETL does across two ticks."""
    window = plan_window(progress.completed_until, now, settings)
    if window is None:
        return TickResult(progress._replace(next_poll_at=now + settings.poll_interval))
    read = read_window(fetch, pod, window, settings.chunk_duration)
    return settle(pod, now, progress, read, settings, rng)


def at(completed_until: int, failed_attempts: int = 0) -> PodProgress:
    """Progress as saved before a poll (the poll was due)."""
    return PodProgress(completed_until, failed_attempts, 0)


def rows(result: TickResult) -> int:
    assert result.read is not None and result.read.result is not None
    return result.read.result.readings


# (vin, signal, value, ts): one value as a source would read it.
Point = tuple[str, str, SignalValue, int]


def fetch_from(points: list[Point]) -> Fetch:
    """A fetch that reads, per chunk, the points in the chunk: each is offered and counted."""

    def fetch(pod: str, window: Window) -> FetchResult:
        result = FetchResult()
        for vin, name, value, ts in points:
            if window.start <= ts < window.end:
                result.offer(vin, name, value, ts)
                result.readings += 1
        return result

    return fetch


def test_poll_reads_every_chunk_and_advances_progress() -> None:
    points: list[Point] = [("V1", "speed", float(t), t) for t in range(70_000, 148_000, 7_000)]
    result = poll("p", 150_000, at(100_000), fetch_from(points), SETTINGS, random.Random(1))
    assert result.progress == PodProgress(148_000, 0, 160_000)
    # Every value read counts, also those superseded by a newer one in a later chunk.
    assert rows(result) == len(points)
    assert [r.signals for r in result.records] == [{"speed": (147_000.0, 147_000)}]


def test_a_read_settled_later_advances_to_the_window_it_read() -> None:
    points: list[Point] = [("V1", "speed", float(t), t) for t in range(70_000, 148_000, 7_000)]
    window = plan_window(100_000, 150_000, SETTINGS)
    assert window is not None
    read = read_window(fetch_from(points), "p", window, SETTINGS.chunk_duration)
    # Settled 5 s after the read: progress is the read window's end, not the later `now`.
    result = settle("p", 155_000, at(100_000), read, SETTINGS, random.Random(1))
    same = poll("p", 150_000, at(100_000), fetch_from(points), SETTINGS, random.Random(1))
    assert result.progress.completed_until == same.progress.completed_until == 148_000
    assert [r.signals for r in result.records] == [r.signals for r in same.records]
    assert rows(result) == rows(same)
    # The next poll is due one interval after the read was planned, not after it settled.
    assert result.progress.next_poll_at == 160_000
    late = settle("p", 171_000, at(100_000), read, SETTINGS, random.Random(1))
    assert late.progress.next_poll_at == 171_000


def test_a_failed_read_names_its_error_and_keeps_the_chunks_it_split() -> None:
    def failing(pod: str, window: Window) -> FetchResult:
        raise SourceError("HTTP 500: boom")

    read = read_window(failing, "p", Window(70_000, 148_000), SETTINGS.chunk_duration)
    assert read.result is None and read.error == "HTTP 500: boom"
    result = settle("p", 150_000, at(100_000), read, SETTINGS, random.Random(1))
    assert result.progress[:2] == (100_000, 1) and result.records == []
    assert result.read is read and not result.gave_up


def test_poll_passes_on_the_rejects_of_every_chunk() -> None:
    def fetch(pod: str, window: Window) -> FetchResult:
        result = FetchResult(readings=1)
        result.offer("V", "s", window.start, window.start)
        result.rejects.append(Reject("schema", "bad", str(window.start), window.start))
        return result

    result = poll("p", 150_000, at(100_000), fetch, SETTINGS, random.Random(1))
    chunks = split_chunks(Window(70_000, 148_000), SETTINGS.chunk_duration)
    assert result.read is not None and result.read.result is not None
    assert [r.row for r in result.read.result.rejects] == [str(c.start) for c in chunks]
    assert rows(result) == len(chunks)
    assert [r.signals for r in result.records] == [{"s": (chunks[-1].start, chunks[-1].start)}]


def test_a_failed_chunk_keeps_the_window_and_backs_off() -> None:
    calls = []

    def flaky(pod: str, window: Window) -> FetchResult:
        calls.append(window)
        if len(calls) >= 3:
            raise SourceError("boom")
        return FetchResult()

    rng = random.Random(1)
    result = poll("p", 150_000, at(100_000), flaky, SETTINGS, rng)
    assert result.progress[:2] == (100_000, 1)
    assert result.records == []
    assert 150_000 < result.progress.next_poll_at <= 150_500
    assert not result.gave_up
    # After the last attempt the window is still not lost: progress stays, attempts reset, and
    # it is read again at the next regular poll.
    result = poll("p", 160_000, at(100_000, 2), flaky, SETTINGS, rng)
    assert result.gave_up and result.progress == PodProgress(100_000, 0, 170_000)


def test_backoff_grows_and_stays_within_bounds() -> None:
    rng = random.Random(3)
    for attempt in range(1, 12):
        delay = backoff_delay(attempt, 500, 10_000, rng)
        assert 250 <= delay <= min(10_000, 500 * 2 ** (attempt - 1))


def test_aggregate_keeps_the_newest_reading_per_signal() -> None:
    result = FetchResult()
    for vin, name, value, ts in [("V", "s", 1.0, 5), ("V", "s", 2.0, 9), ("V", "s", 3.0, 7)]:
        result.offer(vin, name, value, ts)
    result.offer("W", "g", "D", 1)
    result.latest["X"] = {}  # a VIN without any signal makes no record
    records = aggregate(result, "pod", 10, 11)
    by_vin = {r.vin: r for r in records}
    assert by_vin.keys() == {"V", "W"}
    assert by_vin["V"].signals == {"s": (2.0, 9)}
    assert by_vin["W"].signals == {"g": ("D", 1)}
    assert all((r.pod, r.received_at, r.produced_at) == ("pod", 10, 11) for r in records)


def row_limited(points: list[Point], max_rows: int) -> Fetch:
    """A server with a row limit: a window holding more rows than that comes back cut."""
    read = fetch_from(points)

    def fetch(pod: str, window: Window) -> FetchResult:
        if sum(1 for p in points if window.start <= p[3] < window.end) > max_rows:
            raise TruncatedError("cut")
        return read(pod, window)

    return fetch


@given(
    st.lists(st.integers(70_000, 147_999), min_size=1, max_size=60),
    st.integers(1, 5),
)
def test_a_cut_response_is_split_and_nothing_is_lost(times: list[int], max_rows: int) -> None:
    points: list[Point] = [(f"V{i % 3}", f"s{i % 4}", float(i), t) for i, t in enumerate(times)]
    limited = row_limited(points, max_rows)
    # More points on one millisecond than the limit can never be read whole: that is an error.
    if max(times.count(t) for t in times) > max_rows:
        result = poll("p", 150_000, at(100_000), limited, SETTINGS, random.Random(1))
        assert result.read is not None and result.read.error != ""
        assert result.read.result is None and result.progress[:2] == (100_000, 1)
        return
    result = poll("p", 150_000, at(100_000), limited, SETTINGS, random.Random(1))
    expected = poll("p", 150_000, at(100_000), fetch_from(points), SETTINGS, random.Random(1))
    assert result.read is not None and result.read.error == ""
    assert rows(result) == rows(expected) == len(points)
    assert {r.vin: r.signals for r in result.records} == {
        r.vin: r.signals for r in expected.records
    }
    assert (result.read.truncated == []) == (
        len(points) <= max_rows
        or all(
            sum(1 for t in times if c.start <= t < c.end) <= max_rows
            for c in split_chunks(Window(70_000, 148_000), SETTINGS.chunk_duration)
        )
    )


# The driver, with reads run at once on the test's thread.

BACKFILL = SETTINGS.backfill


class InlineExecutor(Executor):
    """Runs each read at once when it is handed over: no threads."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


class FakeInflux:
    """Stands in for InfluxDB and every client opened on it; each chunk read gives V1's speed
    at the chunk's start, or fails."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.fetched: list[tuple[str, Window]] = []
        self.counted: list[tuple[str, Window]] = []
        self.server_counts: dict[int, int] = {}
        self.opened = 0
        self.closed = 0

    def open_client(self) -> FakeInflux:
        self.opened += 1
        return self

    def close(self) -> None:
        self.closed += 1

    def fetch_window(self, pod: str, window: Window, tally: Tally | None = None) -> FetchResult:
        self.fetched.append((pod, window))
        if self.fail:
            raise SourceError("HTTP 500")
        result = FetchResult(readings=1)
        result.offer("V1", "speed", float(window.start), window.start)
        if tally is not None and window.start >= tally.since_ms:
            result.counts[window.start // tally.bucket_ms * tally.bucket_ms] = 1
        return result

    def count_buckets(self, pod: str, window: Window, bucket_ms: int) -> dict[int, int]:
        self.counted.append((pod, window))
        if self.fail:
            raise SourceError("HTTP 500")
        return dict(self.server_counts)

    @property
    def submitted(self) -> list[tuple[str, Window]]:
        """The windows read, from their chunks (a window's chunks follow each other)."""
        windows: list[tuple[str, Window]] = []
        for pod, chunk in self.fetched:
            if windows and windows[-1][0] == pod and windows[-1][1].end == chunk.start:
                windows[-1] = (pod, Window(windows[-1][1].start, chunk.end))
            else:
                windows.append((pod, chunk))
        return windows


def driver(influx: FakeInflux, settings: EtlSettings = SETTINGS) -> PollDriver:
    return PollDriver(settings, influx.open_client, random.Random(1), InlineExecutor())


def test_a_new_pod_saves_its_starting_point_before_the_first_read() -> None:
    influx = FakeInflux()
    poller = driver(influx)
    first = poller.tick("p", 10_000_000, None)
    # The backfill start is saved now: a later tick must not compute it again from its own now.
    assert first.progress == PodProgress(10_000_000 - BACKFILL, 0, 10_000_000)
    assert first.read is None
    assert influx.submitted == [
        ("p", Window(10_000_000 - BACKFILL - 30_000, 10_000_000 - 3_000_000))
    ]
    second = poller.tick("p", 10_000_500, first.progress)
    assert second.stale is None
    assert second.read is not None and second.read.error == ""
    assert second.progress.completed_until == 10_000_000 - 3_000_000
    assert [r.vin for r in second.records] == ["V1"]
    # Still behind: the next window is handed over on the same tick.
    assert influx.submitted[-1][1].start == 10_000_000 - 3_000_000 - 30_000
    assert poller.reading("p")


def test_a_caught_up_pod_waits_for_its_interval() -> None:
    influx = FakeInflux()
    poller = driver(influx)
    progress = PodProgress(100_000, 0, 100_000)
    step = poller.tick("p", 105_000, progress)
    assert influx.submitted == [("p", Window(70_000, 103_000))]
    assert poller.reading("p")
    step = poller.tick("p", 105_100, step.progress)
    # Due one interval after the read was planned (at 105 s), however long it took.
    assert step.progress == PodProgress(103_000, 0, 115_000)
    assert not poller.reading("p")
    assert poller.tick("p", 110_000, step.progress).progress == step.progress
    assert len(influx.submitted) == 1
    poller.tick("p", 115_000, step.progress)
    assert influx.submitted[-1] == ("p", Window(73_000, 113_000))


def test_nothing_new_to_read_moves_the_next_poll_on() -> None:
    influx = FakeInflux()
    step = driver(influx).tick("p", 101_000, PodProgress(100_000, 0, 100_000))
    assert influx.submitted == []
    assert step.progress == PodProgress(100_000, 0, 111_000)


def test_a_failed_read_keeps_the_progress_and_backs_off() -> None:
    influx = FakeInflux(fail=True)
    poller = driver(influx)
    step = poller.tick("p", 105_000, PodProgress(100_000, 0, 100_000))
    step = poller.tick("p", 105_100, step.progress)
    assert step.read is not None and step.read.error == "HTTP 500"
    assert step.progress.completed_until == 100_000
    assert step.progress.failed_attempts == 1
    assert 105_100 < step.progress.next_poll_at <= 105_600
    assert not poller.reading("p")


def test_a_read_that_does_not_match_the_saved_progress_is_dropped_and_read_again() -> None:
    influx = FakeInflux()
    poller = driver(influx)
    poller.tick("p", 105_000, PodProgress(100_000, 0, 100_000))
    # The saved progress moved (another writer, a restore) while the read was out.
    step = poller.tick("p", 105_100, PodProgress(90_000, 0, 100_000))
    assert step.stale == Window(70_000, 103_000)
    assert step.read is None and step.records == []
    assert influx.submitted[-1] == ("p", Window(60_000, 103_100))


class DeferredExecutor(Executor):
    """Holds each read until `finish()` runs them: a read still out on later ticks."""

    def __init__(self) -> None:
        self.held: list[Callable[[], None]] = []

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        self.held.append(lambda: future.set_result(fn(*args, **kwargs)))
        return future

    def finish(self) -> None:
        for run in self.held:
            run()
        self.held.clear()


def test_a_pod_reads_one_window_at_a_time() -> None:
    influx, executor = FakeInflux(), DeferredExecutor()
    poller = PollDriver(SETTINGS, influx.open_client, random.Random(1), executor)
    saved = PodProgress(100_000, 0, 100_000)
    first = poller.tick("p", 105_000, saved)
    assert first.progress == saved and len(executor.held) == 1
    # Still due by its saved progress, but its read is out: nothing more is handed over.
    later = poller.tick("p", 106_000, first.progress)
    assert later.progress == saved and later.read is None
    assert len(executor.held) == 1 and poller.reading("p")
    executor.finish()
    settled = poller.tick("p", 106_100, later.progress)
    assert settled.read is not None and settled.read.window == Window(70_000, 103_000)
    assert settled.progress == PodProgress(103_000, 0, 115_000)
    assert executor.held == [] and not poller.reading("p")


def test_a_pod_without_progress_starts_from_the_progress_file_then_start_at(
    tmp_path: Path,
) -> None:
    path = tmp_path / "progress.json"
    progress_file.save(path, {"p": 50_000})
    settings = SETTINGS.model_copy(update={"checkpoint_path": str(path), "start_at": 7_000})
    poller = driver(FakeInflux(), settings)
    assert poller.tick("p", 100_000, None).progress.completed_until == 50_000
    assert poller.tick("q", 100_000, None).progress.completed_until == 7_000
    plain = driver(FakeInflux())
    assert plain.tick("q", 100_000, None).progress.completed_until == 100_000 - BACKFILL


def commit(path: Path, name: str, *entries: str) -> None:
    """What the FileSink does once a checkpoint completes: a visible part in the journal."""
    journal = progress_file.journal_dir(path)
    journal.mkdir(exist_ok=True)
    (journal / name).write_text("".join(entry + "\n" for entry in entries))


def test_a_settled_window_gives_a_journal_entry_and_writes_nothing_itself(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    settings = SETTINGS.model_copy(update={"checkpoint_path": str(path)})
    poller = driver(FakeInflux(), settings)
    first = poller.tick("p", 105_000, PodProgress(100_000, 0, 100_000))
    assert poller.journal_entry("p", first) is None  # nothing settled yet: nothing to record
    settled = poller.tick("p", 105_100, first.progress)
    entry = poller.journal_entry("p", settled)
    assert entry == progress_file.journal_entry("p", 103_000)
    # The driver writes nothing: only the FileSink's commit, after Kafka's acknowledgement, does.
    assert progress_file.load(path) == {} and not path.exists()
    assert entry is not None
    commit(path, "progress-0-0.jsonl", entry)
    assert progress_file.load(path) == {"p": 103_000}
    assert (
        driver(FakeInflux(), settings).tick("p", 200_000, None).progress.completed_until == 103_000
    )


def test_no_journal_entry_without_a_progress_file_or_for_a_failed_read(tmp_path: Path) -> None:
    plain = driver(FakeInflux())
    first = plain.tick("p", 105_000, PodProgress(100_000, 0, 100_000))
    assert plain.journal_entry("p", plain.tick("p", 105_100, first.progress)) is None
    settings = SETTINGS.model_copy(update={"checkpoint_path": str(tmp_path / "progress.json")})
    poller = driver(FakeInflux(fail=True), settings)
    first = poller.tick("p", 105_000, PodProgress(100_000, 0, 100_000))
    failed = poller.tick("p", 105_100, first.progress)
    assert failed.read is not None and failed.read.result is None
    assert poller.journal_entry("p", failed) is None


def test_the_driver_folds_the_journal_into_the_file_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    settings = SETTINGS.model_copy(update={"checkpoint_path": str(path)})
    poller = driver(FakeInflux(), settings)
    commit(path, "progress-a-0", progress_file.journal_entry("p", 10_000))
    poller.fold_progress(1_000)
    assert progress_file.load(path) == {"p": 10_000}
    assert list(progress_file.journal_dir(path).iterdir()) == []
    commit(path, "progress-a-1", progress_file.journal_entry("p", 20_000))
    poller.fold_progress(1_000 + FOLD_INTERVAL_MS - 1)  # not yet due: the part stays
    assert len(list(progress_file.journal_dir(path).iterdir())) == 1
    poller.fold_progress(1_000 + FOLD_INTERVAL_MS)
    assert list(progress_file.journal_dir(path).iterdir()) == []
    assert progress_file.load(path) == {"p": 20_000}


def test_the_driver_opens_a_client_at_the_start_and_closes_every_client() -> None:
    influx = FakeInflux()
    poller = driver(influx)
    # One client opened and closed at once: settings that cannot build one fail there.
    assert (influx.opened, influx.closed) == (1, 1)
    poller.tick("p", 105_000, PodProgress(100_000, 0, 100_000))
    assert influx.opened == 2  # the read thread's own client
    poller.close()
    assert influx.closed == 2


def test_settings_that_cannot_build_a_client_fail_at_the_start() -> None:
    def broken() -> Any:
        raise SourceError("no client")

    with pytest.raises(SourceError, match="no client"):
        PollDriver(SETTINGS, broken, random.Random(1), InlineExecutor())


# -- planning the next read ---------------------------------------------------------------------


def test_window_rereads_the_lookback_and_stops_before_the_ingest_delay() -> None:
    assert plan_window(100_000, 150_000, SETTINGS) == Window(70_000, 148_000)
    assert plan_window(100_000, 101_000, SETTINGS) is None


def test_a_catch_up_is_bounded() -> None:
    window = plan_window(0, 10_000_000, SETTINGS)
    assert window == Window(-30_000, 600_000)


def test_the_next_poll_is_timed_from_when_the_window_was_planned() -> None:
    window = plan_window(100_000, 150_000, SETTINGS)
    assert window is not None
    # Planned at 150 s: due at 160 s, whenever the read came back before that.
    assert next_poll_after(100_000, window, 150_500, SETTINGS) == 160_000
    assert next_poll_after(100_000, window, 159_999, SETTINGS) == 160_000
    # A read that took longer than the interval: due at once.
    assert next_poll_after(100_000, window, 171_000, SETTINGS) == 171_000


def test_after_a_catch_up_window_the_next_poll_is_due_at_once() -> None:
    window = plan_window(0, 10_000_000, SETTINGS)
    assert window is not None
    assert next_poll_after(0, window, 10_000_100, SETTINGS) == 10_000_100
