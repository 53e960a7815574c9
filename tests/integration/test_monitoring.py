"""Prometheus on the real stack: the alerts fire and clear for real, and every panel of the
Grafana dashboard finds series."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from bethos.config import EtlSettings, load_settings
from devstack.cli import data
from devstack.stack import PROMETHEUS_PORT, Stack, http_json, jobs, port_open
from devstack.stack.influxdb import InfluxDB
from devstack.stack.prometheus import MONITORING_DIR
from tests import stack_lock
from tests.integration.own_services import OwnService, own_service
from tests.unit.test_monitoring_doc import OPERATOR_PREFIX, ROOT, registrations

pytestmark = pytest.mark.integration
PROMETHEUS = f"http://127.0.0.1:{PROMETHEUS_PORT}"
DASHBOARD = MONITORING_DIR / "grafana" / "bethos.json"


@pytest.fixture
def prometheus(stack: Stack) -> Iterator[str]:
    """Prometheus on the stack for this test; stopped after unless it ran before."""
    with stack_lock.resource("prometheus"):
        yield from _prometheus(stack)


def _prometheus(stack: Stack) -> Iterator[str]:
    already = stack.processes.pid("prometheus") is not None
    stack.start_service("prometheus")
    yield PROMETHEUS
    if not already:
        stack.stop_service("prometheus")
        assert not port_open(PROMETHEUS_PORT), "prometheus still listens after its stop"


def label_value(text: str) -> str:
    """A label value as Flink's Prometheus reporter writes it: `pod-a 'c'` -> `pod_a__c_`."""
    return re.sub(r"[^a-zA-Z0-9:_]", "_", text)


def query(expr: str) -> list[dict[str, object]]:
    url = f"{PROMETHEUS}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    answer = http_json(url, timeout=10)
    assert isinstance(answer, dict) and answer.get("status") == "success", (expr, answer)
    result = answer["data"]["result"]
    assert isinstance(result, list)
    return result


def firing(alertname: str) -> list[dict[str, str]]:
    """The labels of every firing instance of the alert."""
    answer = http_json(f"{PROMETHEUS}/api/v1/alerts", timeout=10)
    assert isinstance(answer, dict)
    return [
        alert["labels"]
        for alert in answer["data"]["alerts"]
        if alert["labels"]["alertname"] == alertname and alert["state"] == "firing"
    ]


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Poll until `check` holds; returns the seconds it took, fails with `what` on timeout."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            pytest.fail(f"not within {timeout:.0f}s: {what}")
        time.sleep(1)
    return time.monotonic() - started


def job_name(stack: Stack, job_id: str) -> str:
    return label_value(next(str(job["name"]) for job in stack.jobs() if job.get("jid") == job_id))


def start_pipeline(
    etl_settings: EtlSettings, configs: tuple[Path, Path], submit: Callable[..., str]
) -> tuple[str, str]:
    """Test data, the ETL and the merger; returns their job ids once Prometheus has seen the
    merger flush."""
    data.generate(etl_settings, vins=10, rounds=3, round_interval_ms=10_000)
    etl_id, merger_id = submit("etl", configs[0]), submit("latest_merger", configs[1])
    flushed = f'flink_taskmanager_job_task_operator_last_flush_at_ms{{job_id="{merger_id}"}} > 0'
    wait_for("the merger's first flush, scraped", lambda: bool(query(flushed)), timeout=120)
    return etl_id, merger_id


# The alert test's own InfluxDB (its RPC port is this + 2), beside the stack's (8086).
ALERT_INFLUXDB_PORT = 18096


@pytest.fixture
def own_influxdb_configs(
    pipeline_configs: tuple[Path, Path], tmp_path: Path
) -> Iterator[tuple[OwnService, tuple[Path, Path]]]:
    """An InfluxDB of the test's own and the pipeline's configs with the ETL reading it."""
    with own_service(InfluxDB, tmp_path / "own-influxdb", ALERT_INFLUXDB_PORT) as influxdb:
        doc = yaml.safe_load(pipeline_configs[0].read_text())
        doc["influxdb"]["url"] = f"http://127.0.0.1:{influxdb.port}"
        etl_config = pipeline_configs[0].with_name("etl-own-influxdb.yaml")
        etl_config.write_text(yaml.safe_dump(doc))
        yield influxdb, (etl_config, pipeline_configs[1])


# On a Flink cluster of its own, which its Prometheus scrapes alone: the flush-stalled alert is
# per job name, and every other test's merger is a `latest_merger` too. The InfluxDB it stops
# is its own.
@pytest.mark.own_flink("third")
def test_pod_lag_and_flush_stalled_alerts_fire_and_clear(
    stack: Stack,
    prometheus: str,
    own_influxdb_configs: tuple[OwnService, tuple[Path, Path]],
    submit: Callable[..., str],
) -> None:
    influxdb, configs = own_influxdb_configs
    etl_settings = load_settings(EtlSettings, configs[0])
    pods = {label_value(pod) for pod in etl_settings.influxdb.pods}
    _, merger_id = start_pipeline(etl_settings, configs, submit)
    merger = job_name(stack, merger_id)

    def lagging() -> set[str]:
        return {labels["pod"] for labels in firing("BethosPodLagHigh")} & pods

    def stalled() -> bool:
        return any(labels["job_name"] == merger for labels in firing("BethosFlushStalled"))

    # The ETL starts `backfill` behind and catches up; then neither alert may fire.
    wait_for("no alert while the pipeline is healthy", lambda: not lagging() and not stalled(), 90)
    started = time.monotonic()
    influxdb.stop()
    try:
        wait_for("BethosPodLagHigh for every pod", lambda: lagging() == pods, 120)
        print(f"pod lag alert fired {time.monotonic() - started:.0f}s after stopping InfluxDB")
        assert not stalled(), "the flush stalled alert fired while the merger runs"
        started = time.monotonic()
        jobs.stop(stack, merger_id)
        wait_for("BethosFlushStalled for the merger", stalled, 90)
        print(f"flush stalled alert fired {time.monotonic() - started:.0f}s after the cancel")
    finally:
        started = time.monotonic()
        influxdb.start()
    submit("latest_merger", configs[1])
    wait_for("both alerts clear", lambda: not lagging() and not stalled(), 150)
    print(f"both alerts cleared {time.monotonic() - started:.0f}s after InfluxDB's restart")


def test_every_dashboard_panel_finds_series(
    stack: Stack,
    prometheus: str,
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    targets = [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    assert len(targets) >= 10
    start_pipeline(etl_settings, pipeline_configs, submit)
    # Rates need two scrapes in their range, the checkpoint panels a completed checkpoint.
    deadline = time.monotonic() + 60
    empty = [(title, expr) for title, expr in targets if not query(expr)]
    while empty and time.monotonic() < deadline:
        time.sleep(2)
        empty = [(title, expr) for title, expr in empty if not query(expr)]
    assert empty == [], "panels whose query returns no series"


def test_prometheus_has_every_metric_the_etl_and_the_default_merger_register(
    stack: Stack,
    prometheus: str,
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
) -> None:
    """The names read from the code (as the doc test reads them) against what Prometheus
    scraped: the ETL's and the log_compacted merger's, with its intake's."""
    sources = [
        ROOT / "bethos_flink" / name for name in ("etl_graph.py", "merge_function.py", "rows.py")
    ]
    names = {OPERATOR_PREFIX + "_".join(parts) for path in sources for parts in registrations(path)}
    assert len(names) >= 20
    etl_id, merger_id = start_pipeline(etl_settings, pipeline_configs, submit)
    jobs_matched = f'job_id=~"{etl_id}|{merger_id}"'
    missing = sorted(name for name in names if not query(f"{name}{{{jobs_matched}}}"))
    assert missing == [], "registered, but not in Prometheus"
