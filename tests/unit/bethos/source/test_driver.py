from __future__ import annotations

import random

from bethos.exceptions import SourceError
from bethos.readings import FetchResult, Window
from bethos.source.driver import PodState, PollDriver
from bethos.source.poller import ReadOutcome, read_window
from bethos.source.reads import FinishedRead
from tests.unit.bethos.source.test_planning import SETTINGS

BACKFILL = 3_600_000


class InlineReads:
    """Reads done at once when handed over, and finished when taken: no threads."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.pending: dict[str, FinishedRead] = {}
        self.submitted: list[tuple[str, Window]] = []

    def _fetch(self, pod: str, window: Window) -> FetchResult:
        if self.fail:
            raise SourceError("HTTP 500")
        result = FetchResult(readings=1)
        result.offer("V1", "speed", float(window.start), window.start)
        return result

    def submit(self, pod: str, window: Window) -> None:
        assert pod not in self.pending
        self.submitted.append((pod, window))
        outcome: ReadOutcome = read_window(self._fetch, pod, window, SETTINGS.chunk_duration)
        self.pending[pod] = FinishedRead(window, outcome, 0.0, 0.0, 0.0)

    def outstanding(self, pod: str) -> Window | None:
        read = self.pending.get(pod)
        return None if read is None else read.window

    def take(self, pod: str) -> FinishedRead | None:
        return self.pending.pop(pod, None)


def driver(reads: InlineReads) -> PollDriver:
    return PollDriver(SETTINGS, reads, lambda pod, now: now - BACKFILL, random.Random(1))


def test_a_new_pod_saves_its_starting_point_before_the_first_read() -> None:
    reads = InlineReads()
    poller = driver(reads)
    first = poller.tick("p", 10_000_000, None)
    # The backfill start is saved now: a later tick must not compute it again from its own now.
    assert first.state == PodState(10_000_000 - BACKFILL, 0, 10_000_000)
    assert first.result is None
    assert reads.submitted == [
        ("p", Window(10_000_000 - BACKFILL - 30_000, 10_000_000 - 3_000_000))
    ]
    second = poller.tick("p", 10_000_500, first.state)
    assert second.stale is None
    assert second.result is not None and second.result.error is None
    assert second.state.completed_until == 10_000_000 - 3_000_000
    assert [r.vin for r in second.result.records] == ["V1"]
    # Still behind: the next window is handed over on the same tick.
    assert reads.submitted[-1][1].start == 10_000_000 - 3_000_000 - 30_000


def test_a_caught_up_pod_waits_for_its_interval() -> None:
    reads = InlineReads()
    poller = driver(reads)
    state = PodState(100_000, 0, 100_000)
    step = poller.tick("p", 105_000, state)
    assert reads.submitted == [("p", Window(70_000, 103_000))]
    step = poller.tick("p", 105_100, step.state)
    # Due one interval after the read was planned (at 105 s), however long it took.
    assert step.state == PodState(103_000, 0, 115_000)
    assert reads.outstanding("p") is None
    assert poller.tick("p", 110_000, step.state).state == step.state
    assert len(reads.submitted) == 1
    poller.tick("p", 115_000, step.state)
    assert reads.submitted[-1] == ("p", Window(73_000, 113_000))


def test_nothing_new_to_read_moves_the_next_poll_on() -> None:
    reads = InlineReads()
    step = driver(reads).tick("p", 101_000, PodState(100_000, 0, 100_000))
    assert reads.submitted == []
    assert step.state == PodState(100_000, 0, 111_000)


def test_a_failed_read_keeps_the_progress_and_backs_off() -> None:
    reads = InlineReads(fail=True)
    poller = driver(reads)
    step = poller.tick("p", 105_000, PodState(100_000, 0, 100_000))
    step = poller.tick("p", 105_100, step.state)
    assert step.result is not None and step.result.error == "HTTP 500"
    assert step.state.completed_until == 100_000
    assert step.state.failed_attempts == 1
    assert 105_100 < step.state.next_poll_at <= 105_600
    assert reads.outstanding("p") is None


def test_a_read_that_does_not_match_the_saved_progress_is_dropped_and_read_again() -> None:
    reads = InlineReads()
    poller = driver(reads)
    poller.tick("p", 105_000, PodState(100_000, 0, 100_000))
    # The saved progress moved (another writer, a restore) while the read was out.
    step = poller.tick("p", 105_100, PodState(90_000, 0, 100_000))
    assert step.stale == Window(70_000, 103_000)
    assert step.result is None and step.finished is None
    assert reads.submitted[-1] == ("p", Window(60_000, 103_100))
