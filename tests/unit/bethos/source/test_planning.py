from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from bethos.config import EtlSettings, InfluxSettings
from bethos.fetch_result import Window
from bethos.source.planning import next_poll_after, plan_window, split_chunks

# The ETL settings the source's tests share.
SETTINGS = EtlSettings(
    influxdb=InfluxSettings(pods=["p"]),
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
