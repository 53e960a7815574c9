"""The progress file (`checkpoint_path`) holds only windows whose records Kafka acknowledged.

The ETL writes to a broker of the test's own (the stack's serves the other tests meanwhile),
frozen (SIGSTOP) while the ETL reads new points: their records are handed to the
Kafka sink but cannot be acknowledged. The TaskManager is then SIGKILLed, which loses the
records in its producer, and the ETL is started again without state, from the progress file.
Had the file recorded the windows when their records were handed over, the new job would
start after the lost points, and they would never reach the topic.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from bethos.config import EtlSettings, load_settings
from bethos.source import progress_file
from connectors.kafka.admin import create_topics
from devstack.stack import Stack
from devstack.stack.kafka import KafkaCluster
from tests.data.log_fields import PROGRESS_FILE_ERROR_FIELDS
from tests.integration.helpers import (
    aggregated_equals_truth,
    events,
    point,
    poll_windows,
    wait_for,
    wait_until,
    write_points,
)
from tests.integration.own_services import throwaway_kafka

# Beside the stack's broker, the three-broker test's and the unreachable-broker tests'.
PORT_BASE, CONTROLLER_BASE = 20290, 21290


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaCluster]:
    with throwaway_kafka(tmp_path / "own-broker", 1, PORT_BASE, CONTROLLER_BASE) as cluster:
        yield cluster


@contextmanager
def frozen_brokers(cluster: KafkaCluster) -> Iterator[Callable[[], None]]:
    """SIGSTOP every broker; the yielded function (and the end of the block) thaws them."""
    pids = [cluster.processes.pid(f"kafka-{n}") for n in cluster.nodes()]
    groups = [pid for pid in pids if pid is not None]
    assert groups, "no broker to freeze"

    def thaw() -> None:
        for pid in groups:
            os.killpg(pid, signal.SIGCONT)

    for pid in groups:
        os.killpg(pid, signal.SIGSTOP)
    try:
        yield thaw
    finally:
        thaw()


@pytest.mark.own_flink
def test_the_progress_file_records_a_window_only_after_kafka_acknowledged_it(
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    tmp_path: Path,
    submit: Callable[..., str],
    own_broker: KafkaCluster,
) -> None:
    etl_config = pipeline_configs[0]
    progress = tmp_path / "etl-progress.json"
    doc = yaml.safe_load(etl_config.read_text())
    doc["kafka"]["brokers"] = own_broker.bootstrap_servers()
    # No lookback and no reconcile: only the progress file says where a new job starts.
    doc.update(checkpoint_path=str(progress), lookback="0s", reconcile_interval="0s")
    # The Kafka sink runs in the poller's task, and its flush at a checkpoint blocks that task
    # while Kafka is frozen: the new points must be polled before the next checkpoint begins.
    doc.setdefault("flink", {})["checkpoint_interval"] = "15s"
    etl_config.write_text(yaml.safe_dump(doc))
    settings = load_settings(EtlSettings, etl_config)
    create_topics(settings.kafka, settings.topics)
    pods = list(settings.influxdb.pods)

    now = int(time.time() * 1000)
    write_points(settings, [point(settings, pod, f"A-{pod}", {"speed": 1.0}, now) for pod in pods])
    first = submit("etl", etl_config)
    # Acknowledged at a checkpoint, then committed by the FileSink: every pod is recorded.
    wait_until(lambda: set(progress_file.load(progress)) == set(pods), timeout=120, interval=0.2)
    assert set(progress_file.load(progress)) == set(pods)

    with frozen_brokers(own_broker) as thaw:
        written = int(time.time() * 1000)
        late = [point(settings, pod, f"B-{pod}", {"speed": 2.0}, written) for pod in pods]
        write_points(settings, late)

        def handed_over() -> bool:
            return all(
                any(start <= written < end for start, end in poll_windows(stack, pod))
                for pod in pods
            )

        # Read, emitted and handed to the Kafka sink, which cannot deliver them.
        wait_until(handed_over, timeout=10, interval=0.5)
        assert handed_over()
        time.sleep(3)  # time enough to write the file, had the hand-over been enough
        recorded = progress_file.load(progress)
        assert all(recorded[pod] <= written for pod in pods), (recorded, written)

        stack.kill_taskmanager()  # the records in its producer are gone
        thaw()
    stack.flink.cancel(first)  # nothing restores its state
    stack.start_taskmanager()

    submit("etl", etl_config)  # without state: it starts from the progress file
    assert wait_for(aggregated_equals_truth(settings), timeout=180) == []
    wait_until(lambda: all(progress_file.load(progress)[pod] > written for pod in pods), 60)
    assert all(progress_file.load(progress)[pod] > written for pod in pods)


def test_a_damaged_progress_file_is_logged_and_the_polls_go_on(
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    tmp_path: Path,
    submit: Callable[..., str],
) -> None:
    """A progress file damaged under a running ETL: each fold of the journal into it fails
    with `[influxdb_source] event=error pod=... err=...` naming the file, and the polls, whose
    progress is in Flink's state, go on."""
    etl_config = pipeline_configs[0]
    progress = tmp_path / "damaged-progress.json"
    doc = yaml.safe_load(etl_config.read_text())
    doc.update(checkpoint_path=str(progress))
    etl_config.write_text(yaml.safe_dump(doc))
    settings = load_settings(EtlSettings, etl_config)
    pods = list(settings.influxdb.pods)
    now = int(time.time() * 1000)
    write_points(settings, [point(settings, pod, f"A-{pod}", {"speed": 1.0}, now) for pod in pods])
    submit("etl", etl_config)
    wait_until(lambda: set(progress_file.load(progress)) == set(pods), timeout=120, interval=0.5)

    progress.write_text("{damaged")

    def logged() -> list[dict[str, str]]:
        return [
            e
            for e in events(stack, "error")
            if e.get("pod") in pods and str(progress) in e.get("err", "")
        ]

    # Folds come once a minute per subtask.
    wait_until(lambda: bool(logged()), timeout=100, interval=1)
    assert logged() and all(list(e) == PROGRESS_FILE_ERROR_FIELDS for e in logged())
    later = int(time.time() * 1000)
    newer = [point(settings, pod, f"B-{pod}", {"speed": 2.0}, later) for pod in pods]
    write_points(settings, newer)
    assert wait_for(aggregated_equals_truth(settings), timeout=60) == []
