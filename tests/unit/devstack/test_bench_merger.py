"""The merger benchmark's checkpoint and memory figures."""

from __future__ import annotations

import os
from typing import Any

import pytest

from devstack.bench import merger_bench


def answer(completed: int, failed: int, history: list[dict[str, Any]]) -> dict[str, Any]:
    latest = next((c for c in history if c["status"] == "COMPLETED"), None)
    return {
        "counts": {"completed": completed, "failed": failed},
        "history": history,
        "latest": {"completed": latest},
    }


def test_checkpoint_figures_count_only_the_checkpoints_since_the_first_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = answer(3, 1, [])
    history = [  # newest first, as Flink lists them
        {"id": 7, "status": "COMPLETED", "end_to_end_duration": 1_500, "checkpointed_size": 8e6},
        {"id": 6, "status": "FAILED", "end_to_end_duration": 60_000},
        {"id": 5, "status": "COMPLETED", "end_to_end_duration": 4_250, "checkpointed_size": 9e6},
        {"id": 4, "status": "COMPLETED", "end_to_end_duration": 99_000},
    ]
    monkeypatch.setattr(merger_bench, "checkpoints", lambda job_id: answer(5, 2, history))

    figures = merger_bench.checkpoint_figures("job", before)

    assert figures == {
        "checkpoints_completed": 2,
        "checkpoints_failed": 1,
        "checkpoint_max_s": 4.25,
        "checkpoint_mb": 8.0,
    }


def test_peak_rss_is_the_largest_high_water_mark() -> None:
    assert merger_bench.peak_rss_mb([os.getpid()]) > 10


@pytest.mark.parametrize(
    ("vins", "minutes"), [(1_000, 1), (100_000, 1), (300_000, 1), (300_001, 2), (1_000_000, 4)]
)
def test_one_update_round_of_every_vin_is_read_within_a_flush_interval(
    vins: int, minutes: int
) -> None:
    interval_ms = merger_bench.flush_interval_ms(vins)
    assert interval_ms == minutes * 60_000
    assert vins / merger_bench.SLOWEST_RECORDS_PER_S <= interval_ms / 1000
