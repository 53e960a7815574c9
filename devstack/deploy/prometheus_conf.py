"""The containers' Prometheus configuration: `monitoring/prometheus.yml` with the Flink
containers as targets and the production intervals; the rules are `monitoring/rules/` itself,
mounted."""

from __future__ import annotations

from typing import Any

import yaml

from devstack import paths
from devstack.deploy.submit import JOBMANAGER
from devstack.deploy.topology import METRICS_PORT, TASKMANAGERS, taskmanager_service

PROMETHEUS_FILE = "deploy/prometheus.yml"

# Production intervals (monitoring/prometheus.yml's own are the local stack's 2 s).
PROMETHEUS_INTERVALS = {"scrape_interval": "15s", "evaluation_interval": "15s"}


def metrics_targets() -> list[str]:
    hosts = [JOBMANAGER, *(taskmanager_service(i) for i in range(1, TASKMANAGERS + 1))]
    return [f"{host}:{METRICS_PORT}" for host in hosts]


def prometheus() -> dict[str, Any]:
    """`monitoring/prometheus.yml` with the containers as targets and the rules mounted."""
    text = (paths.PROJECT_ROOT / "monitoring" / "prometheus.yml").read_text()
    config = yaml.safe_load(text.replace("@RULES_DIR@", "/etc/prometheus/rules"))
    config["global"].update(PROMETHEUS_INTERVALS)
    for scrape in config["scrape_configs"]:
        for static in scrape.get("static_configs", []):
            if static.get("targets") == ["@FLINK_TARGETS@"]:
                static["targets"] = metrics_targets()
    return dict(config)
