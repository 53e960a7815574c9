from __future__ import annotations

import itertools
import random

from hypothesis import given
from hypothesis import strategies as st

from bethos.exceptions import SourceError
from bethos.poller import (
    FetchResult,
    PodProgress,
    PollPlan,
    Reading,
    Window,
    aggregate,
    backoff_delay,
    plan_window,
    poll,
    split_chunks,
)

PLAN = PollPlan(
    poll_interval=10_000,
    chunk_duration=10_000,
    lookback=30_000,
    ingest_delay=2_000,
    max_window=600_000,
    retry_max_attempts=3,
    retry_initial_interval=500,
    retry_max_interval=10_000,
)


@given(st.integers(-(10**12), 10**12), st.integers(0, 10**7), st.integers(1_000, 10**6))
def test_chunks_tile_the_window_without_gap_or_overlap(start: int, length: int, chunk: int) -> None:
    window = Window(start, start + length)
    chunks = split_chunks(window, chunk)
    if length == 0:
        assert chunks == []
        return
    assert chunks[0].start == window.start
    assert chunks[-1].end == window.end
    for before, after in itertools.pairwise(chunks):
        assert before.end == after.start
    assert all(0 < c.end - c.start <= chunk for c in chunks)


def test_window_rereads_the_lookback_and_stops_before_the_ingest_delay() -> None:
    assert plan_window(100_000, 150_000, PLAN) == Window(70_000, 148_000)
    assert plan_window(100_000, 101_000, PLAN) is None


def test_a_catch_up_is_bounded() -> None:
    window = plan_window(0, 10_000_000, PLAN)
    assert window == Window(-30_000, 600_000)


def fetch_from(readings: list[Reading]):  # type: ignore[no-untyped-def]
    def fetch(pod: str, window: Window) -> FetchResult:
        return FetchResult([r for r in readings if window.start <= r.ts < window.end])

    return fetch


def test_poll_reads_every_chunk_and_advances_progress() -> None:
    readings = [Reading("V1", "speed", float(t), t) for t in range(70_000, 148_000, 7_000)]
    result = poll("p", 150_000, PodProgress(100_000), fetch_from(readings), PLAN, random.Random(1))
    assert result.progress == PodProgress(148_000)
    assert result.rows == len(readings)
    assert [r.signals["speed"].ts for r in result.records] == [147_000]
    assert result.next_poll_at == 160_000


def test_a_failed_chunk_keeps_the_window_and_backs_off() -> None:
    calls = []

    def flaky(pod: str, window: Window) -> FetchResult:
        calls.append(window)
        if len(calls) >= 3:
            raise SourceError("boom")
        return FetchResult()

    rng = random.Random(1)
    result = poll("p", 150_000, PodProgress(100_000), flaky, PLAN, rng)
    assert result.progress == PodProgress(100_000, 1)
    assert result.records == []
    assert 150_000 < result.next_poll_at <= 150_500
    # After the last attempt the window is still not lost: progress stays, attempts reset.
    result = poll("p", 160_000, PodProgress(100_000, 2), flaky, PLAN, rng)
    assert result.gave_up and result.progress == PodProgress(100_000, 0)


def test_backoff_grows_and_stays_within_bounds() -> None:
    rng = random.Random(3)
    for attempt in range(1, 12):
        delay = backoff_delay(attempt, 500, 10_000, rng)
        assert 250 <= delay <= min(10_000, 500 * 2 ** (attempt - 1))


def test_aggregate_keeps_the_newest_reading_per_signal() -> None:
    records = aggregate(
        [
            Reading("V", "s", 1.0, 5),
            Reading("V", "s", 2.0, 9),
            Reading("V", "s", 3.0, 7),
            Reading("W", "g", "D", 1),
        ],
        "pod",
        10,
        11,
    )
    by_vin = {r.vin: r for r in records}
    assert by_vin["V"].signals["s"].value == 2.0
    assert by_vin["W"].signals["g"].value == "D"
