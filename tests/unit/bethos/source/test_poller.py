from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bethos.config import EtlSettings
from bethos.exceptions import SourceError, TruncatedError
from bethos.readings import FetchResult, Reject, Window
from bethos.record import SignalValue
from bethos.retry import backoff_delay
from bethos.source.planning import plan_window, split_chunks
from bethos.source.poller import (
    Fetch,
    PodProgress,
    PollResult,
    aggregate,
    read_window,
    settle,
)
from tests.unit.bethos.source.test_planning import SETTINGS


def poll(
    pod: str,
    now: int,
    progress: PodProgress,
    fetch: Fetch,
    settings: EtlSettings,
    rng: random.Random,
) -> PollResult:
    """Plan, read and settle one poll in one go, as the ETL does across two ticks."""
    window = plan_window(progress.completed_until, now, settings)
    if window is None:
        return PollResult(progress, now + settings.poll_interval)
    outcome = read_window(fetch, pod, window, settings.chunk_duration)
    return settle(pod, now, progress, window, outcome, settings, rng)


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
    result = poll(
        "p", 150_000, PodProgress(100_000), fetch_from(points), SETTINGS, random.Random(1)
    )
    assert result.progress == PodProgress(148_000)
    # Every value read counts, also those superseded by a newer one in a later chunk.
    assert result.rows == len(points)
    assert [r.signals for r in result.records] == [{"speed": (147_000.0, 147_000)}]
    assert result.next_poll_at == 160_000


def test_a_read_settled_later_advances_to_the_window_it_read() -> None:
    points: list[Point] = [("V1", "speed", float(t), t) for t in range(70_000, 148_000, 7_000)]
    window = plan_window(100_000, 150_000, SETTINGS)
    assert window is not None
    outcome = read_window(fetch_from(points), "p", window, SETTINGS.chunk_duration)
    # Settled 5 s after the read: progress is the read window's end, not the later `now`.
    result = settle("p", 155_000, PodProgress(100_000), window, outcome, SETTINGS, random.Random(1))
    same = poll("p", 150_000, PodProgress(100_000), fetch_from(points), SETTINGS, random.Random(1))
    assert result.progress == same.progress == PodProgress(148_000)
    assert [r.signals for r in result.records] == [r.signals for r in same.records]
    assert result.rows == same.rows
    # The next poll is due one interval after the read was planned, not after it settled.
    assert result.next_poll_at == 160_000
    late = settle("p", 171_000, PodProgress(100_000), window, outcome, SETTINGS, random.Random(1))
    assert late.next_poll_at == 171_000


def test_a_failed_read_names_its_error_and_keeps_the_chunks_it_split() -> None:
    def failing(pod: str, window: Window) -> FetchResult:
        raise SourceError("HTTP 500: boom")

    outcome = read_window(failing, "p", Window(70_000, 148_000), SETTINGS.chunk_duration)
    assert outcome.result is None and outcome.error == "HTTP 500: boom"
    result = settle(
        "p",
        150_000,
        PodProgress(100_000),
        Window(70_000, 148_000),
        outcome,
        SETTINGS,
        random.Random(1),
    )
    assert result.progress == PodProgress(100_000, 1) and result.records == []


def test_poll_passes_on_the_rejects_of_every_chunk() -> None:
    def fetch(pod: str, window: Window) -> FetchResult:
        result = FetchResult(readings=1)
        result.offer("V", "s", window.start, window.start)
        result.rejects.append(Reject("schema", "bad", str(window.start)))
        return result

    result = poll("p", 150_000, PodProgress(100_000), fetch, SETTINGS, random.Random(1))
    chunks = split_chunks(Window(70_000, 148_000), SETTINGS.chunk_duration)
    assert [r.row for r in result.rejects] == [str(c.start) for c in chunks]
    assert result.rows == len(chunks)
    assert [r.signals for r in result.records] == [{"s": (chunks[-1].start, chunks[-1].start)}]


def test_a_failed_chunk_keeps_the_window_and_backs_off() -> None:
    calls = []

    def flaky(pod: str, window: Window) -> FetchResult:
        calls.append(window)
        if len(calls) >= 3:
            raise SourceError("boom")
        return FetchResult()

    rng = random.Random(1)
    result = poll("p", 150_000, PodProgress(100_000), flaky, SETTINGS, rng)
    assert result.progress == PodProgress(100_000, 1)
    assert result.records == []
    assert 150_000 < result.next_poll_at <= 150_500
    # After the last attempt the window is still not lost: progress stays, attempts reset.
    result = poll("p", 160_000, PodProgress(100_000, 2), flaky, SETTINGS, rng)
    assert result.gave_up and result.progress == PodProgress(100_000, 0)


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


def test_offer_keeps_the_newest_value_whatever_the_order() -> None:
    offers: list[tuple[SignalValue, int]] = [(9.0, 3), ("zzz", 1), (1.0, 5), (True, 4)]
    for order in itertools.permutations(offers):
        result = FetchResult()
        for value, ts in order:
            result.offer("V", "s", value, ts)
        assert result.latest == {"V": {"s": (1.0, 5)}}
        assert result.readings == 0  # offering does not count: the reader counts what it reads


# Values in ascending value order: booleans < numbers (an int before an equal float) < strings.
ASCENDING: list[SignalValue] = [False, True, -1.5, 0, 1, 1.0, 2, "", "a", "b"]


@pytest.mark.parametrize(("low", "high"), list(itertools.combinations(ASCENDING, 2)))
def test_offer_breaks_a_tie_in_ts_by_the_value_order(low: SignalValue, high: SignalValue) -> None:
    for order in ((low, high), (high, low)):
        result = FetchResult()
        for value in order:
            result.offer("V", "s", value, 7)
        kept = result.latest["V"]["s"]
        assert kept == (high, 7) and type(kept.value) is type(high)


def test_offer_keeps_signals_and_vins_apart() -> None:
    result = FetchResult()
    result.offer("V", "a", 1, 10)
    result.offer("V", "b", 2, 5)
    result.offer("W", "a", 3, 1)
    assert result.latest == {"V": {"a": (1, 10), "b": (2, 5)}, "W": {"a": (3, 1)}}


def test_merge_adds_counts_and_rejects_and_keeps_the_newest() -> None:
    first = FetchResult(readings=3, rejects=[Reject("schema", "one", "r1")])
    first.offer("V", "s", 1.0, 10)
    first.offer("V", "t", "old", 10)
    second = FetchResult(readings=4, rejects=[Reject("no_vin", "two", "r2")])
    second.offer("V", "s", 0.5, 9)  # older: superseded by the first
    second.offer("V", "t", "new", 11)
    second.offer("W", "s", False, 1)
    first.merge(second)
    assert first.readings == 7
    assert first.rejects == [Reject("schema", "one", "r1"), Reject("no_vin", "two", "r2")]
    assert first.latest == {"V": {"s": (1.0, 10), "t": ("new", 11)}, "W": {"s": (False, 1)}}
    # The merged-in result is left as it was.
    assert second.readings == 4 and len(second.rejects) == 1


def test_merge_breaks_ties_by_the_value_order_in_either_direction() -> None:
    for left, right in ((1, 1.0), (1.0, 1)):
        merged = FetchResult()
        merged.offer("V", "s", left, 5)
        other = FetchResult()
        other.offer("V", "s", right, 5)
        merged.merge(other)
        assert type(merged.latest["V"]["s"].value) is float


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
    # More points on one millisecond than the limit can never be read whole: that is an error.
    if max(times.count(t) for t in times) > max_rows:
        result = poll(
            "p",
            150_000,
            PodProgress(100_000),
            row_limited(points, max_rows),
            SETTINGS,
            random.Random(1),
        )
        assert result.error is not None and result.progress == PodProgress(100_000, 1)
        return
    result = poll(
        "p",
        150_000,
        PodProgress(100_000),
        row_limited(points, max_rows),
        SETTINGS,
        random.Random(1),
    )
    expected = poll(
        "p", 150_000, PodProgress(100_000), fetch_from(points), SETTINGS, random.Random(1)
    )
    assert result.error is None
    assert result.rows == expected.rows == len(points)
    assert {r.vin: r.signals for r in result.records} == {
        r.vin: r.signals for r in expected.records
    }
    assert (result.truncated == []) == (
        len(points) <= max_rows
        or all(
            sum(1 for t in times if c.start <= t < c.end) <= max_rows
            for c in split_chunks(Window(70_000, 148_000), SETTINGS.chunk_duration)
        )
    )


def test_a_truncated_stream_is_recognised() -> None:
    from connectors.influxdb.client import ends_partial

    assert ends_partial({"statement_id": 0, "series": [{"name": "m"}], "partial": True})
    assert ends_partial({"statement_id": 0, "series": [{"name": "m", "partial": True}]})
    assert not ends_partial({"statement_id": 0, "series": [{"name": "m"}]})
    assert not ends_partial({"statement_id": 0})
