"""What `bethos status` prints, and its JSON: every figure of a recorded status."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from devstack.status.consumer_lag import TopicLag
from devstack.status.rest_figures import gather_jobs
from devstack.status.rich_tables import duration_text, render
from devstack.status.snapshot import ServiceLine, Status
from tests.unit.devstack.status.test_rest_figures import NOW, RECORDED, FakeRest


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, "-"),
        (850, "850ms"),
        (12_340, "12.3s"),
        (245_000, "4m05s"),
        (7_380_000, "2h03m"),
        (273_600_000, "3d04h"),
    ],
)
def test_durations_read_well(ms: int | None, text: str) -> None:
    assert duration_text(ms) == text


def test_render_and_json_carry_every_figure() -> None:
    jobs = gather_jobs(FakeRest(RECORDED), NOW)
    status = Status(
        NOW,
        [ServiceLine("kafka-1", True, "pid 1"), ServiceLine("flink", False, "stopped")],
        jobs,
        [TopicLag("bethos-latest-merger", "agg", 3, 42, 0)],
    )
    console = Console(width=200, record=True)
    console.print(render(status))
    text = console.export_text()
    for expected in ("pod_'c'_efb7e57b1c", "3.0s", "RUNNING", "bethos-latest-merger", "42"):
        assert expected in text
    doc = json.loads(json.dumps(status.to_json()))
    assert doc["jobs"][0]["pods"][0] == {
        "pod": "pod-a-efb7e57b1c",
        "lag_ms": 2107,
        "last_poll_age_ms": None,
    }
    assert doc["consumer_lag"][0]["records_behind"] == 42
