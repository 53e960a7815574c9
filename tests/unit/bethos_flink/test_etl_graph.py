"""The ETL's keyed function around the poller, with fakes for Flink's context and InfluxDB: what
it keeps in state, emits, counts and logs (no servers, no Flink job)."""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from bethos.config import EtlSettings, InfluxSettings
from bethos.exceptions import SourceError
from bethos.fetch_result import FetchResult, Reject, Tally, Window
from bethos.logevents import parse_event
from bethos.source import progress_file
from tests.data.log_fields import POLL_FIELDS

NOW = 10_000_000


class FakeState:
    """A ValueState that keeps what Flink would: pickled bytes."""

    def __init__(self) -> None:
        self.stored: bytes | None = None

    def value(self) -> Any:
        return None if self.stored is None else pickle.loads(self.stored)

    def update(self, value: Any) -> None:
        self.stored = pickle.dumps(value)


class FakeMetrics:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.gauges: dict[str, Callable[[], int]] = {}

    def add_group(self, key: str, value: str) -> FakeMetrics:
        return self

    def counter(self, name: str) -> Any:
        counts = self.counts
        counts[name] = 0

        class Counter:
            def inc(self, n: int = 1) -> None:
                counts[name] += n

            def dec(self, n: int = 1) -> None:
                counts[name] -= n

        return Counter()

    def gauge(self, name: str, read: Callable[[], int]) -> None:
        raise AssertionError(f"gauge {name!r}: a Python gauge can crash a TaskManager")


class FakeRuntime:
    def __init__(self) -> None:
        self.states: dict[str, FakeState] = {}
        self.metrics = FakeMetrics()

    @property
    def state(self) -> FakeState:
        """The pod's progress."""
        return self.states["pod_progress"]

    @property
    def state_names(self) -> list[str]:
        return list(self.states)

    def get_state(self, descriptor: Any) -> FakeState:
        return self.states.setdefault(descriptor.get_name(), FakeState())

    def get_metrics_group(self) -> FakeMetrics:
        return self.metrics


class FakeContext:
    """A keyed context of pod `p` at a settable time, recording the timers registered."""

    def __init__(self) -> None:
        self.now = NOW
        self.timers: list[int] = []

    def get_current_key(self) -> str:
        return "p"

    def timer_service(self) -> FakeContext:
        return self

    def current_processing_time(self) -> int:
        return self.now

    def register_processing_time_timer(self, at: int) -> None:
        self.timers.append(at)


class FakeClient:
    fetch: Callable[[str, Window], FetchResult]
    opened: list[FakeClient] = []  # noqa: RUF012 (shared on purpose: every client opened)

    def __init__(self, settings: InfluxSettings, **options: object) -> None:
        self.options = options
        self.closed = False
        FakeClient.opened.append(self)

    def fetch_window(self, pod: str, window: Window, tally: Tally | None = None) -> FetchResult:
        return type(self).fetch(pod, window)

    def count_buckets(self, pod: str, window: Window, bucket_ms: int) -> dict[int, int]:
        return {}

    def close(self) -> None:
        self.closed = True


def good(pod: str, window: Window) -> FetchResult:
    result = FetchResult(readings=2)
    result.offer("V1", "speed", 1.5, window.start)
    result.rejects.append(Reject("schema", "bad", f"row at {window.start}", window.start))
    return result


def failing(pod: str, window: Window) -> FetchResult:
    raise SourceError("HTTP 500")


@pytest.fixture
def etl(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    from bethos_flink import etl_graph

    FakeClient.opened = []
    monkeypatch.setattr(etl_graph, "InfluxClient", FakeClient)
    monkeypatch.setattr(etl_graph, "freeze_loaded_objects", lambda: None)
    yield etl_graph


def settings(**overrides: Any) -> EtlSettings:
    # One window a poll, read in one chunk (the catch-up bound is a chunk long).
    return EtlSettings(
        influxdb=InfluxSettings(pods=["p"]),
        chunk_duration=600_000,
        backfill=60_000,
        batch_size=123,
        **overrides,
    )


def run_until_settled(function: Any, ctx: FakeContext) -> list[Any]:
    """Ticks of the pod until its read has settled (reads run on the driver's threads)."""
    out = list(function.process_element(None, ctx))
    deadline = time.monotonic() + 5
    while function.driver.reading("p"):
        assert time.monotonic() < deadline, "the read did not finish"
        time.sleep(0.01)
        ctx.now += 10
        out += list(function.on_timer(ctx.now, ctx))
    return out


def events(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [e for r in caplog.records if (e := parse_event(r.getMessage())) is not None]


def test_a_settled_read_is_emitted_counted_logged_and_saved_as_a_plain_tuple(
    etl: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    FakeClient.fetch = staticmethod(good)  # type: ignore[assignment]
    runtime, ctx = FakeRuntime(), FakeContext()
    function = etl.PodPollFunction(settings())
    function.open(runtime)
    caplog.set_level(logging.INFO)
    try:
        first = list(function.process_element(None, ctx))
        assert first == []
        # A new pod's starting point is saved before its first read, as a plain tuple.
        assert type(runtime.state.value()) is tuple
        assert runtime.state.value() == (NOW - 60_000, 0, NOW)
        # A read is out: a timer looks again within SETTLE_CHECK_MS, on an aligned slot.
        assert ctx.timers == [NOW + etl.SETTLE_CHECK_MS]
        out = first + run_until_settled(function, ctx)
    finally:
        function.close()
    assert runtime.state_names == ["pod_progress", "pod_reconcile", "pod_rejects_sent"]
    # The reconcile state, a plain tuple too: its next pass, its start, the values counted.
    reconcile = runtime.states["pod_reconcile"].value()
    assert type(reconcile) is tuple
    assert reconcile[:2] == (NOW + 300_000, NOW - 60_000)
    assert type(runtime.state.value()) is tuple
    assert runtime.state.value()[:2] == (NOW - 2_000, 0)
    records = [row for row in out if not isinstance(row, tuple)]
    dead = [row for row in out if isinstance(row, tuple)]
    assert [row[0] for row in records] == ["V1"]
    assert len(dead) == 1 and dead[0][0] is etl.DEAD_LETTERS
    counts = runtime.metrics.counts
    assert counts == {
        "rows_read": 2,
        "retries": 0,
        "failures": 0,
        "truncated": 0,
        "records_out": 1,
        "dead_lettered": 1,
        "rejects_repeated": 0,
        "reconcile_passes": 0,
        "late_recovered": 0,
        "lag_ms": ctx.now - (NOW - 2_000),
        "last_poll_at_ms": ctx.now,
        "reconcile_ms": 0,
    }
    (poll,) = [e for e in events(caplog) if e.event == "poll"]
    assert poll.component == "influxdb_source"
    assert list(poll.fields) == POLL_FIELDS
    assert poll.fields["window_start"] == str(NOW - 60_000 - 30_000)
    assert (poll.fields["rows"], poll.fields["records"], poll.fields["rejected"]) == ("2", "1", "1")
    # The driver opened a client to check the settings, then one per read thread; all closed.
    assert len(FakeClient.opened) >= 2 and all(c.closed for c in FakeClient.opened)
    assert all(c.options["rows_per_response_chunk"] == 123 for c in FakeClient.opened)


def test_a_failed_read_is_retried_then_given_up(
    etl: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    FakeClient.fetch = staticmethod(failing)  # type: ignore[assignment]
    runtime, ctx = FakeRuntime(), FakeContext()
    function = etl.PodPollFunction(settings(retry_max_attempts=2))
    function.open(runtime)
    caplog.set_level(logging.INFO)
    try:
        assert run_until_settled(function, ctx) == []
        assert runtime.state.value()[:2] == (NOW - 60_000, 1)
        ctx.now = runtime.state.value()[2]
        assert run_until_settled(function, ctx) == []
    finally:
        function.close()
    # Given up: the window is kept for the next regular poll.
    assert runtime.state.value()[:2] == (NOW - 60_000, 0)
    assert runtime.metrics.counts["retries"] == 1
    assert runtime.metrics.counts["failures"] == 1
    retry, error = [e for e in events(caplog) if e.event in ("retry", "error")]
    assert retry.event == "retry"
    assert list(retry.fields) == ["pod", "attempt", "err", "retry_in_ms"]
    assert (retry.fields["attempt"], retry.fields["err"]) == ("1", "HTTP 500")
    assert error.event == "error"
    assert list(error.fields) == ["pod", "err", "window_start", "lag_ms"]


def test_with_a_progress_file_a_settled_window_hands_its_journal_entry_after_its_records(
    etl: ModuleType, tmp_path: Path
) -> None:
    FakeClient.fetch = staticmethod(good)  # type: ignore[assignment]
    runtime, ctx = FakeRuntime(), FakeContext()
    path = tmp_path / "progress.json"
    function = etl.PodPollFunction(settings(checkpoint_path=str(path)))
    function.open(runtime)
    try:
        out = run_until_settled(function, ctx)
    finally:
        function.close()
    tags = [row[0] if isinstance(row, tuple) else "record" for row in out]
    assert tags == ["record", etl.DEAD_LETTERS, etl.PROGRESS]
    assert out[-1][1] == progress_file.journal_entry("p", NOW - 2_000)
    # Written by the FileSink once Kafka acknowledged, never by the function itself.
    assert not path.exists() and not progress_file.journal_dir(path).exists()


def test_a_damaged_progress_file_is_logged_and_the_polls_go_on(
    etl: ModuleType, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    FakeClient.fetch = staticmethod(good)  # type: ignore[assignment]
    runtime, ctx = FakeRuntime(), FakeContext()
    path = tmp_path / "progress.json"
    function = etl.PodPollFunction(settings(checkpoint_path=str(path)))
    function.open(runtime)
    runtime.state.update((NOW - 60_000, 0, NOW))  # restored state: the file is not needed
    path.write_text("damaged")
    caplog.set_level(logging.INFO)
    try:
        out = run_until_settled(function, ctx)
    finally:
        function.close()
    assert [row[0] for row in out if not isinstance(row, tuple)] == ["V1"]
    (error,) = [e for e in events(caplog) if e.event == "error"]
    assert str(path) in error.fields["err"]


def test_a_bad_row_that_the_lookback_reads_again_is_dead_lettered_once(
    etl: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    bad_row = Reject("no_vin", "series has no 'vin' tag", "telemetry,pod=p speed=1", NOW - 5_000)

    def same_bad_row_then_another(pod: str, window: Window) -> FetchResult:
        result = FetchResult(readings=1)
        result.rejects.append(bad_row)
        if window.start > NOW - 60_000 - 30_000:  # every read after the first
            result.rejects.append(Reject("no_vin", "", f"new at {window.end}", window.end - 1))
        return result

    FakeClient.fetch = staticmethod(same_bad_row_then_another)  # type: ignore[assignment]
    runtime, ctx = FakeRuntime(), FakeContext()
    function = etl.PodPollFunction(settings())
    function.open(runtime)
    caplog.set_level(logging.INFO)
    letters: list[str] = []
    try:
        for _ in range(3):
            out = run_until_settled(function, ctx)
            letters += [row[1][1] for row in out if isinstance(row, tuple)]
            ctx.now = runtime.state.value()[2]  # the next poll is due
    finally:
        function.close()
    originals = [orjson.loads(letter)["original"] for letter in letters]
    assert originals[0] == bad_row.row and originals.count(bad_row.row) == 1
    assert len(originals) == 3 and len(set(originals)) == 3
    assert runtime.metrics.counts["dead_lettered"] == 3
    assert runtime.metrics.counts["rejects_repeated"] == 2
    polls = [e for e in events(caplog) if e.event == "poll"]
    assert [p.fields["rejected"] for p in polls] == ["1", "1", "1"]
