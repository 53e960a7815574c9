"""`bethos status --json` against the ETL and the merger running on the real cluster."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bethos.config import EtlSettings, MergerSettings, load_settings
from devstack.cli import data
from devstack.cli.main import main as bethos_main

pytestmark = pytest.mark.integration


def status_json(capsys: pytest.CaptureFixture[str], merger_config: Path) -> dict[str, Any]:
    capsys.readouterr()
    bethos_main(["status", "--json", "--config", str(merger_config)])
    doc: dict[str, Any] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return doc


def test_status_json_shows_both_jobs_with_their_figures(
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    etl_config, merger_config = pipeline_configs
    data.generate(etl_settings, vins=10, rounds=3, round_interval_ms=10_000)
    etl_id = submit("etl", etl_config)
    merger_id = submit("latest_merger", merger_config)
    group = load_settings(MergerSettings, merger_config).consumer_group

    def ready(doc: dict[str, Any]) -> bool:
        jobs = {job["job_id"]: job for job in doc["jobs"]}
        etl, merger = jobs.get(etl_id), jobs.get(merger_id)
        lag = [c for c in doc["consumer_lag"] if c["group"] == group]
        return (
            etl is not None
            and merger is not None
            and etl["state"] == merger["state"] == "RUNNING"
            and len(etl["pods"]) == len(etl_settings.influxdb.pods)
            and all(p["last_poll_age_ms"] is not None for p in etl["pods"])
            and merger["checkpoint_age_ms"] is not None
            and merger["vins_held"] == 10
            and bool(lag)
            and lag[0]["uncommitted_partitions"] == 0
        )

    deadline = time.monotonic() + 180
    doc = status_json(capsys, merger_config)
    while not ready(doc) and time.monotonic() < deadline:
        time.sleep(3)
        doc = status_json(capsys, merger_config)
    assert ready(doc), json.dumps(doc, indent=1)
    jobs = {job["job_id"]: job for job in doc["jobs"]}
    etl, merger = jobs[etl_id], jobs[merger_id]
    for pod in etl["pods"]:
        assert 0 <= pod["lag_ms"] < 120_000
        assert 0 <= pod["last_poll_age_ms"] < 60_000
    assert etl["checkpoint_age_ms"] is not None and etl["restarts"] == 0
    assert merger["uptime_ms"] > 0 and merger["restarts"] == 0
    (lag,) = [c for c in doc["consumer_lag"] if c["group"] == group]
    assert lag["topic"] == etl_settings.topics.aggregated
    assert lag["partitions"] == 2
    assert lag["records_behind"] is not None and lag["records_behind"] >= 0
