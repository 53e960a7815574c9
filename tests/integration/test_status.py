"""`bethos status --json` against the ETL and the merger running on the real cluster."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bethos.config import EtlSettings, MergerSettings, load_settings
from bethos.record import AggregatedRecord, Signal, encode_aggregated
from devstack.cli import data
from devstack.cli.main import main as bethos_main
from devstack.stack import Stack
from tests.integration.helpers import events
from tests.integration.test_merger import produce

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


def test_vins_that_stop_reporting_are_counted_named_and_logged(
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    unique: str,
    submit: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ten vehicles report, then five stop: the census (every 5 flush intervals: 5 s here)
    counts them past the 4 s threshold, `bethos status --json` shows the counts and names the
    five as the longest silent (from the latest topic), and the census line in the
    TaskManager's log names them too."""
    base = yaml.safe_load(pipeline_configs[1].read_text())
    base["latest_merger"].update(flush_interval="1s", silence_thresholds=["4s", "1h"])
    config = pipeline_configs[1].with_name("silent.yaml")
    config.write_text(yaml.safe_dump(base))
    vins = [f"SIL{i:02d}-{unique}" for i in range(10)]
    reporting, silent = vins[:5], vins[5:]

    def report(who: list[str]) -> None:
        now = int(time.time() * 1000)
        records = [AggregatedRecord(v, {"speed": Signal(1.0, now)}, "p", now, now) for v in who]
        produce(etl_settings, [(r.vin.encode(), encode_aggregated(r)) for r in records])

    report(vins)
    merger_id = submit("latest_merger", config)

    def counted(doc: dict[str, Any]) -> bool:
        merger = {job["job_id"]: job for job in doc["jobs"]}.get(merger_id)
        named = {entry["vin"] for entry in doc["most_silent"]}
        return (
            merger is not None
            and merger["vins_held"] == 10
            and merger["vins_silent"] == {"4s": 5, "1h": 0}
            and named == set(silent)
        )

    deadline = time.monotonic() + 120
    doc = status_json(capsys, config)
    while not counted(doc) and time.monotonic() < deadline:
        report(reporting)  # the five that still report, every second or so
        time.sleep(1)
        doc = status_json(capsys, config)
    assert counted(doc), json.dumps(doc, indent=1)
    assert all(entry["silent_ms"] >= 4_000 for entry in doc["most_silent"])

    def census_lines() -> list[dict[str, str]]:
        """This merger's census lines that count five silent VINs."""
        lines = [f for f in events(stack, "census") if f.get("silent_4s") == "5"]
        return [f for f in lines if any(v in f["most_silent"] for v in silent)]

    def names_the_silent(line: dict[str, str]) -> bool:
        named = {pair.rsplit(":", 1)[0] for pair in line["most_silent"].split(",")}
        return named == set(silent) and line["vins_held"] == "10"

    # The five keep reporting until a census (every 5 s) has seen it, as the status did.
    deadline = time.monotonic() + 60
    while not any(names_the_silent(line) for line in census_lines()):
        assert time.monotonic() < deadline, census_lines()
        report(reporting)
        time.sleep(1)
