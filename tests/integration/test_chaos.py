"""A short `bethos chaos` run, part of `make test`: a JobManager SIGKILL while late and very late
telemetry is written, and the latest topic equals InfluxDB's ground truth afterwards, its whole
history without a value taken back."""

from __future__ import annotations

import random

import pytest

from devstack import chaos
from devstack.stack import Stack

# The JobManager killed is that of a Flink cluster of the test's own: the other tests go on.
pytestmark = [pytest.mark.integration, pytest.mark.own_flink("third")]

SEED, SECONDS = 9, 50


def test_a_short_chaos_run_loses_nothing(stack: Stack) -> None:
    planned = chaos.schedule(random.Random(SEED), SECONDS, chaos.FAULTS)
    assert [fault.kind for fault in planned] == ["jobmanager"]
    (run,) = chaos.chaos(runs=1, seconds=SECONDS, seed=SEED, stack=stack, say=print)
    assert run.faults == planned  # the seed's schedule, as planned
    assert run.readings_written > 100 and run.cells_checked > 50
    assert run.cells_wrong == 0, run.differences
    # Read from the beginning, the latest topic never took a VIN's value back.
    assert run.history_messages > 0
    assert run.history_regressions == 0, run.regressions
