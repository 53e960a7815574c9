"""The generated files equal what the sources give now, and what they derive is derived."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack import paths
from devstack.deploy import image, render
from devstack.stack.flink import FLINK_METRICS_PORTS
from devstack.stack.kafka import KafkaCluster
from devstack.stack.process import Supervisor

ROOT = paths.PROJECT_ROOT


def test_the_committed_files_are_what_the_sources_give() -> None:
    assert render.stale(ROOT) == [], "run `python -m devstack.deploy` and commit the result"


def test_a_changed_or_missing_file_is_stale(tmp_path: Path) -> None:
    assert render.write(tmp_path) == list(render.files())
    assert render.stale(tmp_path) == []
    compose = tmp_path / render.COMPOSE_FILE
    compose.write_text(compose.read_text().replace("19092", "19099"))
    (tmp_path / render.PROMETHEUS_FILE).unlink()
    assert render.stale(tmp_path) == [render.COMPOSE_FILE, render.PROMETHEUS_FILE]
    assert render.main(["--check"]) == 0  # the repository's own files


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [str(value)]


def test_the_containers_flink_conf_is_the_local_one_with_the_listed_changes() -> None:
    local = render.flatten(render.local_flink_conf("S", "P", "M"))
    conf = render.container_flink_conf()
    changed = set(render.CONTAINER_FLINK) | set(render.CONTAINER_FLINK_REMOVED)
    placeholders = {"S", "P", "M"}
    for key, value in local.items():
        if key in changed:
            continue
        if any(mark in str(value) for mark in placeholders):
            continue  # a placeholder's value: the image's path, checked below
        assert conf[key] == value, key
    assert not set(conf) - set(local) - set(render.CONTAINER_FLINK)
    for key in render.CONTAINER_FLINK_REMOVED:
        assert key not in conf
    assert "pipeline.jars" not in conf  # the connector is in lib/ (the Dockerfile's test)
    assert conf["python.executable"] == image.PYTHON
    assert conf["state.savepoints.dir"].startswith(f"file://{image.STATE_DIR}/")
    assert conf["metrics.reporter.prom.port"] == str(FLINK_METRICS_PORTS[0])


def test_no_container_listens_on_loopback_or_keeps_a_placeholder() -> None:
    conf = render.container_flink_conf()
    for value in _strings(conf):
        assert "@" not in value, value
        assert "127.0.0.1" not in value and "localhost" not in value, value


def test_the_operator_conf_leaves_out_what_the_operator_sets() -> None:
    for job in render.DEPLOYED_JOBS:
        conf = render.operator_flink_conf(job)
        assert not set(conf) & set(render.OPERATOR_SETS)
        assert all(isinstance(value, str) for value in conf.values())
        for key in (
            "state.checkpoints.dir",
            "state.savepoints.dir",
            "high-availability.storageDir",
        ):
            assert conf[key].startswith(f"file://{render.K8S_DATA_DIR}/{job}/"), key


def test_the_brokers_have_the_local_stacks_settings(tmp_path: Path) -> None:
    cluster = KafkaCluster(tmp_path, Supervisor(tmp_path / "run", tmp_path / "logs"), brokers=3)
    cluster.dir.mkdir(parents=True)
    written = cluster._write_config(1, render.BROKERS)
    local = dict(line.split("=", 1) for line in written.read_text().splitlines() if "=" in line)
    assert {key: local[key] for key in render.KAFKA_SETTINGS} == render.KAFKA_SETTINGS


@pytest.mark.parametrize(
    ("key", "variable"),
    [
        ("log.cleaner.min.compaction.lag.ms", "KAFKA_LOG_CLEANER_MIN_COMPACTION_LAG_MS"),
        ("node.id", "KAFKA_NODE_ID"),
        ("some_key.with-dash", "KAFKA_SOME__KEY_WITH___DASH"),
    ],
)
def test_kafka_image_variables(key: str, variable: str) -> None:
    assert render._kafka_env_name(key) == variable


def test_prometheus_is_the_monitoring_config_with_the_containers_as_targets() -> None:
    template = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
    config = render.prometheus()
    assert [s["job_name"] for s in config["scrape_configs"]] == [
        s["job_name"] for s in template["scrape_configs"]
    ]
    assert set(config["global"]) == set(template["global"])
    targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [
        f"{host}:{FLINK_METRICS_PORTS[0]}"
        for host in ("jobmanager", *(f"taskmanager-{i}" for i in range(1, render.TASKMANAGERS + 1)))
    ]


def test_promtool_accepts_the_containers_prometheus_config(tmp_path: Path) -> None:
    """The generated file, its rule path pointed at monitoring/rules/ (mounted there in
    docker-compose.yml), as Prometheus's own checker reads it."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: scripts/install.sh installs Debian's `prometheus`")
    config = yaml.safe_load((ROOT / render.PROMETHEUS_FILE).read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    config["rule_files"] = [str(ROOT / "monitoring" / "rules" / "*.yml")]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    result = subprocess.run([binary, "check", "config", str(copy)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_no_generated_file_copies_a_topic_name() -> None:
    """Topic names come from config/*.yaml (and their defaults), which the jobs read as they are."""
    from bethos.config import TopicSettings

    topics = TopicSettings()
    for path, text in render.files().items():
        for name in (topics.aggregated, topics.latest, topics.dlq):
            assert name not in text, f"{path} copies {name}"


# Keys that Flink 2.2 reads nowhere: no config option, deprecated key or reporter factory of its
# 2.2.1 jars names them. A config that sets one only misleads its reader.
IGNORED_BY_FLINK = {
    # The Prometheus reporter reads `port` only (PrometheusReporterFactory) and binds every
    # interface; the local stack keeps it on loopback with a JDK HTTP server provider.
    "metrics.reporter.prom.host",
    # Reporters are made by their `factory.class`; a reporter's `class` key is read by nothing.
    "metrics.reporter.prom.class",
    # The heap sizes of the memory model before `*.memory.process.size`, gone from 2.x.
    "jobmanager.heap.size",
    "taskmanager.heap.size",
}


def shipped_flink_confs() -> dict[str, dict[str, Any]]:
    """Every Flink configuration the project ships, flattened: the local cluster's, the
    containers' and each Kubernetes deployment's."""
    confs = {}
    for path in ("flink-conf/config.yaml", render.FLINK_CONF_FILE):
        confs[path] = render.flatten(yaml.safe_load((ROOT / path).read_text()))
    for job in render.DEPLOYED_JOBS:
        path = f"{render.K8S_DIR}/{job}.yaml"
        confs[path] = yaml.safe_load((ROOT / path).read_text())["spec"]["flinkConfiguration"]
    return confs


def test_no_shipped_flink_conf_sets_a_key_that_flink_ignores() -> None:
    confs = shipped_flink_confs()
    assert len(confs) == 2 + len(render.DEPLOYED_JOBS)
    for path, conf in confs.items():
        assert "metrics.reporter.prom.port" in conf, path  # the reporter is configured
        assert sorted(set(conf) & IGNORED_BY_FLINK) == [], path
    # The containers' own keys add none either.
    assert not set(render.CONTAINER_FLINK) & IGNORED_BY_FLINK
