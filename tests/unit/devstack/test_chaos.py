from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bethos.strategy_registry import names
from devstack.chaos import (
    FAULTS,
    LOOKBACK_S,
    STRATEGIES,
    VERY_LATE_S,
    RunResult,
    readings,
    schedule,
    summary,
)
from devstack.cli.main import parser


@given(st.integers(0, 10_000), st.floats(40, 3_600))
def test_a_schedule_is_one_fault_at_a_time_inside_the_run(seed: int, seconds: float) -> None:
    faults = schedule(random.Random(seed), seconds, FAULTS)
    assert len(faults) == max(1, int(seconds // 40))
    assert all(f.kind in FAULTS and f.down_s >= 2 for f in faults)
    assert faults[0].at_s >= 8
    assert faults[-1].at_s + faults[-1].down_s <= seconds - 10 + 1e-6
    for before, after in itertools.pairwise(faults):
        assert before.at_s + before.down_s <= after.at_s


def test_the_same_seed_gives_the_same_schedule_and_writes() -> None:
    def draw(seed: int) -> object:
        rng = random.Random(seed)
        return schedule(rng, 300, FAULTS), [
            readings(rng, s, 1_000_000, ["a", "b"]) for s in range(20)
        ]

    assert draw(5) == draw(5)
    assert draw(5) != draw(6)


def test_readings_are_on_time_late_and_very_late() -> None:
    rng = random.Random(3)
    now = 10_000_000
    delays = [now - r.ts_ms for s in range(2_000) for r in readings(rng, s, now, ["a", "b"])]
    on_time = [d for d in delays if d <= 2_000]
    late = [d for d in delays if 3_000 <= d < LOOKBACK_S * 1_000]
    very_late = [d for d in delays if 60_000 <= d <= VERY_LATE_S * 1_000]
    assert len(on_time) + len(late) + len(very_late) == len(delays)
    assert 0.7 < len(on_time) / len(delays) < 0.9
    assert late and very_late and max(very_late) > 300_000


def test_the_summary_adds_up_the_runs() -> None:
    results = [
        RunResult(0, 1, schedule(random.Random(1), 100, FAULTS), 500, 80, 0),
        RunResult(1, 2, schedule(random.Random(2), 100, FAULTS), 700, 90, 2),
    ]
    total = summary(results, 1)
    assert (total["readings_written"], total["cells_checked"], total["cells_wrong"]) == (
        1200,
        170,
        2,
    )
    assert total["faults_injected"] == 4


def test_the_strategies_a_run_sets_up_are_registered_ones() -> None:
    assert STRATEGIES == ("log_compacted", "state_store")
    assert set(STRATEGIES) <= set(names())
    for name in names():
        if name in STRATEGIES:
            assert parser().parse_args(["chaos", "--strategy", name]).strategy == name
        else:
            with pytest.raises(SystemExit):
                parser().parse_args(["chaos", "--strategy", name])
