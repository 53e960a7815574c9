"""What happens between two ticks of a pod, on a read thread: its window read through a
connector client, chunk by chunk.

The tick (`bethos.source.poller`) hands a read over to `BackgroundReads` (`submit`, or
`submit_reconcile` for a reconcile pass) and takes it back once it finished (`take`): a
`FinishedRead`, the readings or the error that stopped it. `BackgroundReads` runs the reads on
worker threads with one client per thread, so that InfluxDB serves one pod's query while the
job parses and emits another pod's records. On a read thread, top to bottom: `read_window`
splits the window into chunks (`split_chunks`), `read_chunks` reads them in order, and
`fetch_whole` reads one chunk, splitting a cut response in halves and reading them again;
`reconcile_window` counts a window's buckets and reads the grown ones the same way. Nothing
here touches progress: a read that is never taken (the job stopped, a checkpoint restored) is
simply planned and read again.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Protocol

from bethos.exceptions import SourceError, TruncatedError
from bethos.fetch_result import FetchResult, Tally, Window

Fetch = Callable[[str, Window], FetchResult]


class Client(Protocol):
    """A connector client the source reads with (`connectors.influxdb.client.InfluxClient`)."""

    def fetch_window(self, pod: str, window: Window, tally: Tally | None = None) -> FetchResult: ...

    def count_buckets(self, pod: str, window: Window, bucket_ms: int) -> dict[int, int]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What a reconcile pass found: InfluxDB's counts per bucket over the pass's window, the
    buckets that had grown past what was read (re-read whole), and by how many values."""

    counts: dict[int, int]
    grown: list[int]
    late: int


@dataclass(frozen=True, slots=True)
class FinishedRead:
    """A window read to its end: every chunk's readings (`result`), or None and the error that
    stopped the read. `truncated` lists the chunks whose response came back cut and were read
    again in halves. `reconcile`: the read of a reconcile pass (`reconcile_window`), which
    gives what it `reconciled` when it did not fail.

    Timings, for the poll event, are filled in by the thread that ran the read: when it was
    handed over (`time.monotonic()`), how long the read took once started, and how much of
    that the read thread worked (parsing; the rest is waiting for InfluxDB).
    """

    window: Window
    result: FetchResult | None
    error: str = ""
    truncated: list[Window] = field(default_factory=list)
    submitted_at: float = 0.0
    read_seconds: float = 0.0
    read_cpu_seconds: float = 0.0
    reconcile: bool = False
    reconciled: Reconciled | None = None


# -- handing reads over and taking them back (the tick's thread) -----------------------------------


class BackgroundReads:
    """Window reads run in the order handed over, on the executor's worker threads, at most one
    per pod at a time; each thread opens a client of its own on its first read (a requests
    session is not made for threads), and `close()` closes them all.

    Parsing holds the GIL, so more threads do not parse faster; they keep InfluxDB serving
    one query while another response is parsed and the caller emits a third. On 2 cores a plain
    client read the ETL benchmark's pods 1.5x as fast two at a time as one at a time.
    """

    def __init__(
        self, open_client: Callable[[], Client], chunk_duration: int, executor: Executor
    ) -> None:
        self._open_client = open_client
        self._chunk_duration = chunk_duration
        self._executor = executor
        self._pending: dict[str, tuple[Window, Future[FinishedRead]]] = {}
        self._thread = threading.local()
        self._clients: list[Client] = []
        self._clients_lock = threading.Lock()

    def submit(self, pod: str, window: Window, tally: Tally | None = None) -> None:
        """Read the pod's window, counting its values per bucket when a `tally` is given."""

        def job(client: Client) -> FinishedRead:
            fetch: Fetch = client.fetch_window
            if tally is not None:
                fetch = functools.partial(client.fetch_window, tally=tally)
            return read_window(fetch, pod, window, self._chunk_duration)

        self._submit(pod, window, job)

    def submit_reconcile(
        self, pod: str, window: Window, bucket_ms: int, known: dict[int, int]
    ) -> None:
        """Run a reconcile pass of the pod's window (`reconcile_window`); `known` is copied."""
        known = dict(known)

        def job(client: Client) -> FinishedRead:
            return reconcile_window(client, pod, window, bucket_ms, known)

        self._submit(pod, window, job)

    def _submit(self, pod: str, window: Window, job: Callable[[Client], FinishedRead]) -> None:
        if pod in self._pending:
            raise RuntimeError(f"pod {pod!r} already has a read outstanding")
        future = self._executor.submit(self._read, pod, window, time.monotonic(), job)
        self._pending[pod] = (window, future)

    def _read(
        self, pod: str, window: Window, submitted_at: float, job: Callable[[Client], FinishedRead]
    ) -> FinishedRead:
        """Runs on a read thread."""
        started, cpu_started = time.monotonic(), time.thread_time()
        read = job(self._client())
        return dataclasses.replace(
            read,
            submitted_at=submitted_at,
            read_seconds=time.monotonic() - started,
            read_cpu_seconds=time.thread_time() - cpu_started,
        )

    def _client(self) -> Client:
        client: Client | None = getattr(self._thread, "client", None)
        if client is None:
            client = self._thread.client = self._open_client()
            with self._clients_lock:
                self._clients.append(client)
        return client

    def outstanding(self, pod: str) -> Window | None:
        """The window of the pod's read handed over and not taken yet, if any."""
        pending = self._pending.get(pod)
        return None if pending is None else pending[0]

    def take(self, pod: str, wait: float | None = 0.0) -> FinishedRead | None:
        """The pod's finished read, removed; None while it runs (after waiting up to `wait`
        seconds, None waits for it) or when none was handed over. An unexpected exception
        of the read is raised here, on the caller's thread."""
        pending = self._pending.get(pod)
        if pending is None:
            return None
        future = pending[1]
        if not future.done():
            if wait is not None and wait <= 0:
                return None
            try:
                future.result(timeout=wait)
            except TimeoutError:
                return None
        del self._pending[pod]
        return future.result()

    def close(self) -> None:
        """Drop the reads not started yet and close every thread's client; a read that is
        running finishes on its own and is not taken."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._pending.clear()
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()


# -- a read, on a read thread ----------------------------------------------------------------------


def read_window(fetch: Fetch, pod: str, window: Window, chunk_duration: int) -> FinishedRead:
    """Read every chunk of the window; the first chunk that fails fails the whole window."""
    return read_chunks(fetch, pod, window, split_chunks(window, chunk_duration))


def split_chunks(window: Window, chunk_duration: int) -> list[Window]:
    """Chunks that tile the window with no gap and no overlap."""
    if chunk_duration <= 0:
        raise ValueError("chunk_duration must be positive")
    starts = range(window.start, window.end, chunk_duration)
    return [Window(s, min(s + chunk_duration, window.end)) for s in starts]


def read_chunks(fetch: Fetch, pod: str, window: Window, chunks: list[Window]) -> FinishedRead:
    """Read the chunks of `window`, in order; the first chunk that fails fails them all."""
    combined = FetchResult()
    truncated: list[Window] = []
    try:
        for chunk in chunks:
            combined.merge(fetch_whole(fetch, pod, chunk, truncated))
    except SourceError as exc:
        return FinishedRead(window, None, str(exc), truncated)
    return FinishedRead(window, combined, truncated=truncated)


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


def reconcile_window(
    client: Client, pod: str, window: Window, bucket_ms: int, known: dict[int, int]
) -> FinishedRead:
    """A reconcile pass: InfluxDB's count per bucket of the window, compared with the values
    already read (`known`); each bucket that grew is read again whole, so points written after
    their window was read (later than the lookback) are found. Fails whole, like a read."""
    try:
        counts = client.count_buckets(pod, window, bucket_ms)
    except SourceError as exc:
        return FinishedRead(window, None, str(exc), reconcile=True)
    grown = sorted(bucket for bucket, count in counts.items() if count > known.get(bucket, 0))
    late = sum(counts[bucket] - known.get(bucket, 0) for bucket in grown)
    chunks = [Window(max(b, window.start), min(b + bucket_ms, window.end)) for b in grown]
    read = read_chunks(client.fetch_window, pod, window, chunks)
    found = None if read.result is None else Reconciled(counts, grown, late)
    return dataclasses.replace(read, reconcile=True, reconciled=found)
