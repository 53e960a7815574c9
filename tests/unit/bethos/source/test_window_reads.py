from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bethos.exceptions import SourceError
from bethos.fetch_result import FetchResult, Window
from bethos.source.window_reads import BackgroundReads, Fetch, read_window, split_chunks

WINDOW = Window(0, 10_000)


class FakeClient:
    """A client that reads through `fetch` and remembers the threads that used it."""

    def __init__(self, fetch: Fetch) -> None:
        self.fetch = fetch
        self.threads: set[int] = set()
        self.closed = False

    def fetch_window(self, pod: str, window: Window) -> FetchResult:
        self.threads.add(threading.get_ident())
        return self.fetch(pod, window)

    def close(self) -> None:
        self.closed = True


def background(fetch: Fetch, opened: list[FakeClient] | None = None) -> BackgroundReads:
    """Reads on two threads, one window chunk a read (WINDOW is one chunk long)."""
    clients = [] if opened is None else opened

    def open_client() -> FakeClient:
        clients.append(FakeClient(fetch))
        return clients[-1]

    return BackgroundReads(open_client, 10_000, ThreadPoolExecutor(2))


def test_a_finished_read_is_taken_once_with_its_window() -> None:
    reads = background(lambda pod, window: FetchResult(readings=len(pod)))
    try:
        assert reads.take("p1") is None
        reads.submit("p1", WINDOW)
        assert reads.outstanding("p1") == WINDOW
        finished = reads.take("p1", wait=None)
        assert finished is not None
        assert finished.window == WINDOW
        assert finished.result is not None and finished.result.readings == 2
        assert finished.read_seconds >= 0 and finished.read_cpu_seconds >= 0
        assert finished.submitted_at > 0
        assert reads.outstanding("p1") is None
        assert reads.take("p1", wait=None) is None
    finally:
        reads.close()


def test_a_running_read_is_not_taken_and_blocks_nobody() -> None:
    release = threading.Event()

    def slow(pod: str, window: Window) -> FetchResult:
        if pod == "slow":
            release.wait(5)
        return FetchResult()

    reads = background(slow)
    try:
        reads.submit("slow", WINDOW)
        reads.submit("fast", WINDOW)
        # Two reads run at once: the fast pod's read finishes while the slow one waits.
        assert reads.take("fast", wait=5) is not None
        assert reads.take("slow") is None
        assert reads.take("slow", wait=0.05) is None
        assert reads.outstanding("slow") == WINDOW
        release.set()
        assert reads.take("slow", wait=5) is not None
    finally:
        release.set()
        reads.close()


def test_one_read_per_pod() -> None:
    reads = background(lambda pod, window: FetchResult())
    try:
        reads.submit("p", WINDOW)
        with pytest.raises(RuntimeError, match="already has a read"):
            reads.submit("p", Window(10_000, 20_000))
    finally:
        reads.close()


def test_an_unexpected_error_of_a_read_surfaces_on_the_taking_thread() -> None:
    def broken(pod: str, window: Window) -> FetchResult:
        raise ZeroDivisionError("bug")

    reads = background(broken)
    try:
        reads.submit("p", WINDOW)
        with pytest.raises(ZeroDivisionError):
            reads.take("p", wait=5)
    finally:
        reads.close()


def test_a_failed_read_is_a_finished_read_with_its_error() -> None:
    def failing(pod: str, window: Window) -> FetchResult:
        raise SourceError("HTTP 500: boom")

    reads = background(failing)
    try:
        reads.submit("p", WINDOW)
        finished = reads.take("p", wait=5)
        assert finished is not None
        assert finished.result is None and finished.error == "HTTP 500: boom"
    finally:
        reads.close()


def test_each_read_thread_has_a_client_of_its_own_and_close_closes_them() -> None:
    both_reading = threading.Barrier(2, timeout=5)

    def fetch(pod: str, window: Window) -> FetchResult:
        both_reading.wait()  # two reads at once: one on each thread
        return FetchResult()

    opened: list[FakeClient] = []
    reads = background(fetch, opened)
    try:
        for pod in ("a", "b"):
            reads.submit(pod, WINDOW)
        assert reads.take("a", wait=5) is not None and reads.take("b", wait=5) is not None
        for pod in ("c", "d"):
            reads.submit(pod, WINDOW)
        assert reads.take("c", wait=5) is not None and reads.take("d", wait=5) is not None
    finally:
        reads.close()
    # Four reads, two threads: two clients, each used by one thread only.
    assert len(opened) == 2
    assert all(len(client.threads) == 1 for client in opened)
    assert opened[0].threads != opened[1].threads
    assert all(client.closed for client in opened)


def test_read_window_merges_every_chunk_in_order() -> None:
    seen: list[Window] = []

    def fetch(pod: str, window: Window) -> FetchResult:
        seen.append(window)
        result = FetchResult(readings=1)
        result.offer("V", "s", float(window.start), window.start)
        return result

    read = read_window(fetch, "p", Window(0, 25_000), 10_000)
    assert seen == [Window(0, 10_000), Window(10_000, 20_000), Window(20_000, 25_000)]
    assert read.window == Window(0, 25_000)
    assert read.result is not None and read.result.readings == 3
    assert read.result.latest == {"V": {"s": (20_000.0, 20_000)}}
    assert read.error == "" and read.truncated == []


def test_the_first_failed_chunk_fails_the_window() -> None:
    seen: list[Window] = []

    def fetch(pod: str, window: Window) -> FetchResult:
        seen.append(window)
        if window.start >= 10_000:
            raise SourceError("boom")
        return FetchResult()

    read = read_window(fetch, "p", Window(0, 30_000), 10_000)
    assert read.result is None and read.error == "boom"
    assert seen == [Window(0, 10_000), Window(10_000, 20_000)]


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
