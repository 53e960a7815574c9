"""What one tick of one pod does, free of Flink: settle its finished read, hand over the next.

The ETL's keyed function calls `PollDriver.tick` with the pod's saved state and stores the state
it returns; reads run on `BackgroundReads`' threads between ticks. The window of a read is
planned from the saved progress, and that progress is saved before the read is handed over, so
the read settles against exactly the progress it was planned from.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from bethos.config import EtlSettings
from bethos.readings import Window
from bethos.source.planning import plan_window
from bethos.source.poller import PodProgress, PollResult, settle
from bethos.source.reads import FinishedRead


class Reads(Protocol):
    """Where reads are handed over and taken back (`BackgroundReads`)."""

    def submit(self, pod: str, window: Window) -> None: ...

    def outstanding(self, pod: str) -> Window | None: ...

    def take(self, pod: str) -> FinishedRead | None: ...


class PodState(NamedTuple):
    """A pod's keyed state: the end of its last completed window, failed attempts of the
    current one, and when it is next due."""

    completed_until: int
    failed_attempts: int
    next_poll_at: int


@dataclass(frozen=True, slots=True)
class Tick:
    state: PodState
    # A read settled on this tick: what it gave (records or error) and how it ran.
    result: PollResult | None = None
    finished: FinishedRead | None = None
    # A finished read that did not start where the saved progress says (never expected):
    # dropped, and the window read again.
    stale: Window | None = None


class PollDriver:
    def __init__(
        self,
        settings: EtlSettings,
        reads: Reads,
        initial_progress: Callable[[str, int], int],
        rng: random.Random,
    ) -> None:
        self._settings = settings
        self._reads = reads
        self._initial_progress = initial_progress
        self._rng = rng

    def tick(self, pod: str, now: int, saved: PodState | None) -> Tick:
        state = saved or PodState(self._initial_progress(pod, now), 0, now)
        progress = PodProgress(state.completed_until, state.failed_attempts)
        result = stale = None
        finished = self._reads.take(pod)
        if finished is not None:
            if finished.window.start == state.completed_until - self._settings.lookback:
                result = settle(
                    pod, now, progress, finished.window, finished.outcome, self._settings, self._rng
                )
                progress = result.progress
                state = PodState(
                    progress.completed_until, progress.failed_attempts, result.next_poll_at
                )
            else:
                stale, finished = finished.window, None
        if now >= state.next_poll_at and self._reads.outstanding(pod) is None:
            window = plan_window(progress.completed_until, now, self._settings)
            if window is None:
                state = state._replace(next_poll_at=now + self._settings.poll_interval)
            else:
                self._reads.submit(pod, window)
        return Tick(state, result, finished, stale)
