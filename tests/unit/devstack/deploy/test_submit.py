"""The one-shot service's steps, with the cluster's answers and `flink run` replaced."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from devstack.deploy import submit


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    state: dict[str, Any] = {"taskmanagers": 2, "active": [], "topics": 0, "ran": []}
    monkeypatch.setattr(submit, "_taskmanagers", lambda rest: state["taskmanagers"])
    monkeypatch.setattr(submit, "_active_jobs", lambda rest: state["active"])

    def create_topics() -> None:
        state["topics"] += 1

    def run(command: list[str], check: bool) -> None:
        state["ran"].append(command)

    monkeypatch.setattr(submit, "_create_topics", create_topics)
    monkeypatch.setattr(subprocess, "run", run)
    return state


def test_creates_the_topics_then_submits_each_job(cluster: dict[str, Any]) -> None:
    assert submit.main(["--taskmanagers", "2", "etl", "latest_merger"]) == 0
    assert cluster["topics"] == 1
    assert cluster["ran"] == submit.run_commands(["etl", "latest_merger"])


def test_submits_nothing_to_a_cluster_that_runs_jobs(cluster: dict[str, Any]) -> None:
    cluster["active"] = ["bethos etl"]
    assert submit.main(["etl"]) == 0
    assert cluster["topics"] == 1
    assert cluster["ran"] == []


def test_gives_up_when_the_taskmanagers_do_not_come(cluster: dict[str, Any]) -> None:
    cluster["taskmanagers"] = 1
    assert submit.main(["--taskmanagers", "2", "--timeout", "0.1", "etl"]) == 2
    assert cluster["topics"] == 0 and cluster["ran"] == []
