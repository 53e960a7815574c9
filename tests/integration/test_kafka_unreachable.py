"""What an operator sees when the latest topic's brokers stop answering, under every strategy
(docs/MONITORING.md, "Flush age"): the Kafka topics are written by Flink's own Kafka sink, whose
producer gives up on the records it holds after `delivery.timeout.ms`; the task fails with the
producer's `org.apache.kafka.common.errors.TimeoutException` in the job's exception history, the
TaskManager lives on (the failed task's transaction abort waits for the brokers) and the job
restarts from its last checkpoint. A writer that holds no records waits instead (in `send`,
for the topic's metadata, up to `max.block.ms`). Once the brokers answer again, the flushes go
on and nothing is lost.

Each case runs against a broker of its own (the test stack's broker serves the other tests
meanwhile), frozen with SIGSTOP: a broker that holds its connections and never answers, as
behind a network partition. The producer's delivery timeout is shortened in the config (its
default is two minutes), through `kafka.properties` as a user would, and the mergers emit every
VIN at each flush (`emit: all`), so there is always something to send."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from bethos.config import EtlSettings, load_settings
from connectors.kafka.admin import create_topics
from devstack.stack import Stack
from devstack.stack.kafka import KafkaCluster
from tests.integration.helpers import wait_for
from tests.integration.helpers import wait_until as wait_until_done
from tests.integration.own_services import throwaway_kafka
from tests.integration.test_merger import produce
from tests.integration.test_rescale import STRATEGIES, Case, batch, case_for, output_equals
from tests.integration.test_strategies import keyed

pytestmark = pytest.mark.integration

# Beside the test stack's broker (19091), the three-broker test's (20091-20093) and their
# controllers; one broker per strategy, 10 ports apart.
PORT_BASE, CONTROLLER_BASE = 20190, 21190
# What the operator is told to look for.
TIMEOUT = "org.apache.kafka.common.errors.TimeoutException"
# A producer that gives up within seconds rather than minutes.
FAST_FAILING = {"request.timeout.ms": "3000", "delivery.timeout.ms": "8000"}
# The writers that mostly hold records in flight when the broker freezes (every VIN at each 2 s
# flush): they fail. Not always: a freeze that comes while the writer opens its next
# transaction's producer (`InitProducerId`, at each checkpoint) blocks it there with nothing
# sent, and it waits like the others (seen once in CI). The publisher's new transaction's
# producer waits for metadata in `send`; window_stream has nothing to write.
MOSTLY_FAIL = ("log_compacted", "inline")
# The producer's words for records it gave up on.
EXPIRED = "has passed since batch creation"
# Long enough for the delivery timeout to pass, well under the coordinator wait (150 s).
FROZEN_S = 25
# What a TaskManager writes when a fatal error ends it.
FATAL = "Fatal error occurred while executing the TaskManager"


@pytest.fixture
def own_broker(tmp_path: Path, strategy: str) -> Iterator[KafkaCluster]:
    """A broker for this case alone: ports of its own per strategy."""
    offset = 10 * STRATEGIES.index(strategy)
    with throwaway_kafka(
        tmp_path / "own-broker", 1, PORT_BASE + offset, CONTROLLER_BASE + offset
    ) as cluster:
        yield cluster


def on_broker(pipeline_configs: tuple[Path, Path], brokers: str) -> tuple[Path, EtlSettings]:
    """The test's merger config on `brokers`, with the fast-failing producer, and the ETL
    settings of the same topics (for producing and reading)."""
    moved = []
    for path in pipeline_configs:
        doc = yaml.safe_load(path.read_text())
        doc["kafka"] = {"brokers": brokers, "properties": FAST_FAILING}
        if "latest_merger" in doc:
            doc["latest_merger"]["emit"] = "all"
        target = path.with_name(f"own-broker-{path.name}")
        target.write_text(yaml.safe_dump(doc))
        moved.append(target)
    settings = load_settings(EtlSettings, moved[0])
    create_topics(settings.kafka, settings.topics)
    return moved[1], settings


def fatal_lines(stack: Stack) -> int:
    return sum(log.read_text(errors="replace").count(FATAL) for log in stack.taskmanager_logs())


def timeouts(stack: Stack, job_id: str) -> list[str]:
    """The failures of a job that name the producer's TimeoutException."""
    return [trace for trace in stack.flink.job_failures(job_id) if TIMEOUT in trace]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_unreachable_brokers_fail_or_stall_the_writer_the_taskmanager_lives_and_nothing_is_lost(
    strategy: str,
    own_broker: KafkaCluster,
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    submit: Callable[..., str],
    unique: str,
) -> None:
    merger_config, settings = on_broker(pipeline_configs, own_broker.bootstrap_servers())
    case: Case = case_for(strategy, merger_config, settings, unique)
    t0 = (int(time.time() * 1000) - 3_600_000) // 10_000 * 10_000
    first = batch(0, t0)
    produce(case.settings, keyed(first + case.closer(t0)))
    running = {job: submit(job, case.config) for job in case.jobs}
    assert wait_for(output_equals(case, first), timeout=120) == []
    # The job that writes the output topic (state_store: its publisher).
    writer = running[case.jobs[-1]]

    fatal_before = fatal_lines(stack)
    pid = own_broker.processes.pid("kafka-1")
    assert pid is not None
    os.killpg(pid, signal.SIGSTOP)
    try:
        time.sleep(FROZEN_S)
    finally:
        os.killpg(pid, signal.SIGCONT)
    if strategy in MOSTLY_FAIL:
        # The failed task reports once its transaction's abort is answered, after the thaw.
        wait_until_done(lambda: bool(timeouts(stack, writer)), timeout=90, interval=1)
    else:
        time.sleep(10)
    # The writer either failed with the producer's timeout, having given up on the records it
    # held, or held none and waited (for metadata or a producer id) and went on: nothing else.
    failures = stack.flink.job_failures(writer)
    seen = [trace.split("\n", 1)[0] for trace in failures]
    assert all(TIMEOUT in trace for trace in failures), seen
    if failures and strategy in MOSTLY_FAIL:
        assert any(EXPIRED in trace for trace in failures), seen
    # The TaskManager lived through it (the abort waited for the brokers).
    assert fatal_lines(stack) == fatal_before

    # The brokers answer again: the job is back from its checkpoint and the next readings
    # arrive with everything before them.
    second = batch(1, t0 + 20_000)
    produce(case.settings, keyed(second + case.closer(t0 + 20_000)))
    assert wait_for(output_equals(case, first + second), timeout=180) == []
