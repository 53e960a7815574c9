import threading

import pytest

from bethos.readings import FetchResult, Window
from bethos.source.poller import ReadOutcome
from bethos.source.reads import BackgroundReads

WINDOW = Window(0, 10_000)


def test_a_finished_read_is_taken_once_with_its_window() -> None:
    reads = BackgroundReads(lambda pod, window: ReadOutcome(FetchResult(readings=len(pod))))
    try:
        assert reads.take("p1") is None
        reads.submit("p1", WINDOW)
        assert reads.outstanding("p1") == WINDOW
        finished = reads.take("p1", wait=None)
        assert finished is not None
        assert finished.window == WINDOW
        assert finished.outcome.result is not None and finished.outcome.result.readings == 2
        assert finished.read_seconds >= 0
        assert reads.outstanding("p1") is None
        assert reads.take("p1", wait=None) is None
    finally:
        reads.close()


def test_a_running_read_is_not_taken_and_blocks_nobody() -> None:
    release = threading.Event()

    def slow(pod: str, window: Window) -> ReadOutcome:
        if pod == "slow":
            release.wait(5)
        return ReadOutcome(FetchResult())

    reads = BackgroundReads(slow)
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
    reads = BackgroundReads(lambda pod, window: ReadOutcome(FetchResult()))
    try:
        reads.submit("p", WINDOW)
        with pytest.raises(RuntimeError, match="already has a read"):
            reads.submit("p", Window(10_000, 20_000))
    finally:
        reads.close()


def test_an_unexpected_error_of_a_read_surfaces_on_the_taking_thread() -> None:
    def broken(pod: str, window: Window) -> ReadOutcome:
        raise ZeroDivisionError("bug")

    reads = BackgroundReads(broken)
    try:
        reads.submit("p", WINDOW)
        with pytest.raises(ZeroDivisionError):
            reads.take("p", wait=5)
    finally:
        reads.close()
