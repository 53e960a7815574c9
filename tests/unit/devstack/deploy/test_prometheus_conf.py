"""The containers' Prometheus configuration: the monitoring config, the containers as targets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from devstack import paths
from devstack.deploy import prometheus_conf, topology
from devstack.stack.flink import FLINK_METRICS_PORTS

ROOT = paths.PROJECT_ROOT


def test_prometheus_is_the_monitoring_config_with_the_containers_as_targets() -> None:
    template = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
    config = prometheus_conf.prometheus()
    assert [s["job_name"] for s in config["scrape_configs"]] == [
        s["job_name"] for s in template["scrape_configs"]
    ]
    assert set(config["global"]) == set(template["global"])
    targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [
        f"{host}:{FLINK_METRICS_PORTS[0]}"
        for host in (
            "jobmanager",
            *(f"taskmanager-{i}" for i in range(1, topology.TASKMANAGERS + 1)),
        )
    ]


def test_promtool_accepts_the_containers_prometheus_config(tmp_path: Path) -> None:
    """The generated file, its rule path pointed at monitoring/rules/ (mounted there in
    docker-compose.yml), as Prometheus's own checker reads it."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: scripts/install.sh installs Debian's `prometheus`")
    config = yaml.safe_load((ROOT / prometheus_conf.PROMETHEUS_FILE).read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    config["rule_files"] = [str(ROOT / "monitoring" / "rules" / "*.yml")]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    result = subprocess.run([binary, "check", "config", str(copy)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
