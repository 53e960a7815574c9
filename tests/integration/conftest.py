"""The real stack on loopback: started for the session when not already up, stopped after."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from bethos.config import EtlSettings, MergerSettings, load_settings
from connectors.kafka.admin import create_topics
from devstack import paths
from devstack.stack import (
    FLINK_REST_PORT,
    INFLUXDB_PORT,
    KAFKA_PORT_BASE,
    REDIS_PORT,
    Stack,
    jobs,
    port_open,
)
from devstack.stack.pipeline import pipeline_docs


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    existing = Stack()
    if all(status.running for status in existing.status()):
        yield existing  # someone's stack (a demo): use it, leave it running
        return
    # A state directory of its own: the default one may hold a 3-broker demo stack.
    started = Stack(state=Path(f"{paths.state_dir()}-test"), brokers=1)
    started.up()
    yield started
    started.down()
    ports = [KAFKA_PORT_BASE + 1, INFLUXDB_PORT, REDIS_PORT, FLINK_REST_PORT]
    still_open = [port for port in ports if port_open(port)]
    assert still_open == [], f"`down` left ports open: {still_open}"


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def pipeline_configs(stack: Stack, unique: str, tmp_path: Path) -> tuple[Path, Path]:
    """An ETL and a merger config on topics, database and group of this test alone."""
    etl, merger = pipeline_docs(
        stack,
        f"test-{unique}",
        f"test_{unique}",
        [f"pod-a-{unique}", f"pod-b-{unique}", f"pod 'c' {unique}"],
        f"test-{unique}",
        partitions=2,
    )
    etl.update(poll_interval="2s", chunk_duration="10s", lookback="10s", backfill="15m")
    merger.update(latest_merger={"flush_interval": "3s"}, flink={"checkpoint_interval": "2s"})
    etl_path, merger_path = tmp_path / "etl.yaml", tmp_path / "merger.yaml"
    etl_path.write_text(yaml.safe_dump(etl))
    merger_path.write_text(yaml.safe_dump(merger))
    settings = load_settings(MergerSettings, merger_path)
    create_topics(settings.kafka, settings.topics)
    return etl_path, merger_path


@pytest.fixture
def etl_settings(pipeline_configs: tuple[Path, Path]) -> EtlSettings:
    return load_settings(EtlSettings, pipeline_configs[0])


@pytest.fixture
def submit(stack: Stack) -> Iterator[Callable[..., str]]:
    """Submit jobs; every job submitted is cancelled at the end of the test."""
    submitted: list[str] = []

    def run(job: str, config: Path, **kwargs: object) -> str:
        job_id = jobs.submit(stack, job, str(config), **kwargs)  # type: ignore[arg-type]
        submitted.append(job_id)
        return job_id

    yield run
    running = {job_id for _, job_id in jobs.running_jobs(stack)}
    for job_id in submitted:
        if job_id in running:
            jobs.stop(stack, job_id)
