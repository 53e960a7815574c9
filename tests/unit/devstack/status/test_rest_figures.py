"""The jobs' figures from recorded Flink REST answers (a real ETL and merger on the local
cluster, `recorded/flink_rest.json`), and their arithmetic."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from devstack.status.rest_figures import (
    checkpoint_figures,
    gather_jobs,
    merger_figures,
    pod_statuses,
    wanted_metric_ids,
)

RECORDED = json.loads((Path(__file__).parent / "recorded" / "flink_rest.json").read_text())
NOW = RECORDED["now_ms"]
ETL, MERGER = "721172ef012eeafd3c0be99538f9d735", "bb130a7eb426480e01745fbc29659cbe"
MERGE_VERTEX = f"/jobs/{MERGER}/vertices/09bc48d424719148a6b6eefb59bacc0a/subtasks/metrics"


class FakeRest:
    """Answers from a recording; `?get=` on a vertex's metrics picks from its recorded values."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, path: str) -> Any:
        self.asked.append(path)
        if path.endswith("/subtasks/metrics") or "/subtasks/metrics?get=" not in path:
            if path not in self.answers:
                raise OSError(f"404 {path}")
            return self.answers[path]
        base, _, query = path.partition("?get=")
        wanted = set(unquote(query).split(","))
        return [v for v in self.answers.get(base + "#values", []) if v["id"] in wanted]


def test_running_jobs_from_recorded_answers() -> None:
    jobs = gather_jobs(FakeRest(RECORDED), NOW)
    assert [(j.name, j.state) for j in jobs] == [
        ("bethos etl", "RUNNING"),
        ("bethos latest merger", "RUNNING"),
    ]
    etl, merger = jobs
    assert etl.uptime_ms == 24_429  # the `uptime` metric, not start-time
    assert etl.restarts == 0
    assert etl.checkpoint_age_ms == NOW - 1796192609551
    assert etl.checkpoints_completed == 2
    # Flink writes the space of "pod 'c' ..." as an underscore in metric names.
    assert [(p.pod, p.lag_ms) for p in etl.pods] == [
        ("pod-a-efb7e57b1c", 2107),
        ("pod-b-efb7e57b1c", 2105),
        ("pod_'c'_efb7e57b1c", 3009),
    ]
    assert all(p.last_poll_age_ms is None for p in etl.pods)  # no gauge in this recording
    assert etl.vins_held is None
    assert merger.restarts == 3
    assert merger.checkpoint_age_ms == NOW - 1796192659774
    assert (merger.checkpoints_completed, merger.checkpoints_failed) == (8, 12)
    assert merger.vins_held == 20
    assert merger.last_flush_age_ms is None  # the gauge is not there: shown as "-"
    assert merger.pods == []


def test_the_flush_gauge_and_the_poll_gauge_when_present() -> None:
    answers = copy.deepcopy(RECORDED)
    answers[MERGE_VERTEX].append({"id": "merge_per_VIN.last_flush_at_ms"})
    answers[MERGE_VERTEX + "#values"].append(
        {"id": "merge_per_VIN.last_flush_at_ms", "min": 1.0, "max": NOW - 4_000, "sum": 0}
    )
    poller = f"/jobs/{ETL}/vertices/49ce410dc58a57d20962b48278b6101c/subtasks/metrics"
    answers[poller].append({"id": "poll_InfluxDB_per_pod.pod.pod-a-efb7e57b1c.last_poll_at_ms"})
    answers[poller + "#values"].append(
        {"id": "poll_InfluxDB_per_pod.pod.pod-a-efb7e57b1c.last_poll_at_ms", "max": NOW - 1_500}
    )
    etl, merger = gather_jobs(FakeRest(answers), NOW)
    assert merger.last_flush_age_ms == 4_000
    assert etl.pods[0].last_poll_age_ms == 1_500


def test_jobs_that_are_over_are_left_out_unless_asked_and_fetch_nothing() -> None:
    rest = FakeRest(RECORDED)
    jobs = gather_jobs(rest, NOW, all_jobs=True)
    over = [j for j in jobs if j.state == "CANCELED"]
    assert len(over) == 1 and over[0].uptime_ms == 16_454 and over[0].restarts is None
    assert not any(over[0].job_id in path for path in rest.asked)


def test_a_job_gone_between_overview_and_details_keeps_its_line() -> None:
    answers = {k: v for k, v in RECORDED.items() if not k.startswith(f"/jobs/{MERGER}")}
    jobs = gather_jobs(FakeRest(answers), NOW)
    merger = next(j for j in jobs if j.job_id == MERGER)
    assert merger.state == "RUNNING" and merger.restarts is None


def test_no_cluster_no_jobs() -> None:
    assert gather_jobs(FakeRest({}), NOW) == []


def test_checkpoint_figures_without_a_checkpoint() -> None:
    answer = {"counts": {"completed": 0, "failed": 0}, "latest": {"completed": None}}
    assert checkpoint_figures(answer, NOW) == (None, 0, 0)


def test_only_the_wanted_metrics_are_asked_for() -> None:
    listing = [
        {"id": "poll_InfluxDB_per_pod.pod.a.lag_ms"},
        {"id": "poll_InfluxDB_per_pod.pod.a.rows_read"},
        {"id": "poll_InfluxDB_per_pod.pod.x.y.last_poll_at_ms"},
        {"id": "merge_per_VIN.vins_held"},
        {"id": "merge_per_VIN.numRecordsIn"},
    ]
    assert wanted_metric_ids(listing) == [
        "poll_InfluxDB_per_pod.pod.a.lag_ms",
        "poll_InfluxDB_per_pod.pod.x.y.last_poll_at_ms",
        "merge_per_VIN.vins_held",
    ]


def test_pods_and_merger_figures_over_subtasks() -> None:
    values = {
        "op.pod.p1.lag_ms": {"max": 1200.0},
        "op.pod.p1.last_poll_at_ms": {"max": 0.0},  # before the first poll
        "merge_per_VIN.vins_held": {"sum": 70.0, "max": 40.0},
        "merge_per_VIN.last_flush_at_ms": {"max": float(NOW - 30_000)},
    }
    assert [(p.pod, p.lag_ms, p.last_poll_age_ms) for p in pod_statuses(values, NOW)] == [
        ("p1", 1200, None)
    ]
    assert merger_figures(values, NOW) == (70, 30_000)
