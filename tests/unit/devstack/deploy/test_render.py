"""The generated files equal what the sources give now; no file copies what its source says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from devstack import paths
from devstack.deploy import compose, flink_conf, k8s, prometheus_conf, render, topology

ROOT = paths.PROJECT_ROOT


def test_the_committed_files_are_what_the_sources_give() -> None:
    assert render.stale(ROOT) == [], "run `python -m devstack.deploy` and commit the result"


def test_a_changed_or_missing_file_is_stale(tmp_path: Path) -> None:
    assert render.write(tmp_path) == list(render.files())
    assert render.stale(tmp_path) == []
    compose_file = tmp_path / compose.COMPOSE_FILE
    compose_file.write_text(compose_file.read_text().replace("19092", "19099"))
    (tmp_path / prometheus_conf.PROMETHEUS_FILE).unlink()
    assert render.stale(tmp_path) == [compose.COMPOSE_FILE, prometheus_conf.PROMETHEUS_FILE]
    assert render.main(["--check"]) == 0  # the repository's own files


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
    for path in ("flink-conf/config.yaml", flink_conf.FLINK_CONF_FILE):
        confs[path] = flink_conf.flatten(yaml.safe_load((ROOT / path).read_text()))
    for job in topology.DEPLOYED_JOBS:
        path = f"{k8s.K8S_DIR}/{job}.yaml"
        confs[path] = yaml.safe_load((ROOT / path).read_text())["spec"]["flinkConfiguration"]
    return confs


def test_no_shipped_flink_conf_sets_a_key_that_flink_ignores() -> None:
    confs = shipped_flink_confs()
    assert len(confs) == 2 + len(topology.DEPLOYED_JOBS)
    for path, conf in confs.items():
        assert "metrics.reporter.prom.port" in conf, path  # the reporter is configured
        assert sorted(set(conf) & IGNORED_BY_FLINK) == [], path
    # The containers' own keys add none either.
    assert not set(flink_conf.CONTAINER_FLINK) & IGNORED_BY_FLINK
