"""The real stack on loopback: started for the session when not already up, stopped after."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from bethos.config import EtlSettings, MergerSettings, load_settings
from connectors.kafka.admin import create_topics
from devstack.stack import Stack, flink_client, jobs
from devstack.stack import wait_until as wait_healthy
from devstack.stack.pipeline import pipeline_docs
from devstack.status.rest_figures import TERMINAL_STATES
from tests import stack_lock
from tests.integration.helpers import wait_until
from tests.stack_lock import TEST_STATE, own_flink_name

# Up to five tests at once (the Makefile's workers), each with up to three jobs.
TEST_TASK_SLOTS = 16


@pytest.fixture
def stack(request: pytest.FixtureRequest, shared_stack: Stack) -> Stack:
    """The stack a test runs on: the shared one, or for a test marked `own_flink` the same
    with one of the tests' own Flink clusters."""
    name = own_flink_name(request.node)
    if name is None:
        return shared_stack
    own_flink_stack: Callable[[str], Stack] = request.getfixturevalue("own_flink_stack")
    return own_flink_stack(name)


@pytest.fixture(scope="session")
def own_flink_stack(shared_stack: Stack) -> Callable[[str], Stack]:
    """The shared stack's Kafka, InfluxDB and Redis with a Flink cluster of the tests' own
    (`stack_lock.OWN_FLINK_PORTS`), for the tests that restart, kill or rescale Flink's
    processes or read every job's log lines: they take a cluster one at a time, while the
    other tests go on. Each is started by the first test process that needs it and stopped
    when the run ends (tests/conftest.py)."""
    started: dict[str, Stack] = {}

    def of(name: str) -> Stack:
        if name not in started:
            flink = stack_lock.own_flink(name)
            with stack_lock.held(TEST_STATE, exclusive=True, name=f"start-own-flink-{name}"):
                if not flink.status()[0].running:
                    state = stack_lock.own_flink_state(name)
                    state.mkdir(parents=True, exist_ok=True)
                    stack_lock.mark_started(state)
                    flink.start()
                    what = f"the tests' Flink cluster {name!r}"
                    wait_healthy(flink.healthy_again, 120, what, flink.log_file)
            started[name] = shared_stack.with_flink(flink)
        return started[name]

    return of


@pytest.fixture(scope="session")
def shared_stack() -> Iterator[Stack]:
    """Someone's running stack (a demo), left running; else the tests' own, started by the
    first test process that needs it (pytest-xdist runs several) and stopped when the run ends
    (tests/conftest.py)."""
    existing = Stack()
    if running(existing):
        yield existing
        return
    # Several tests' pipelines at once on the one TaskManager, whoever (re)starts it.
    os.environ["BETHOS_TASK_SLOTS"] = str(TEST_TASK_SLOTS)
    with stack_lock.held(TEST_STATE, exclusive=True):
        started = Stack(state=TEST_STATE, brokers=1)
        if not running(started):
            # Alone in the room: what is down (a server that died mid-run) is not started
            # under a running test.
            with stack_lock.turn(TEST_STATE, exclusive=True):
                if not running(started):
                    started.up()
                    stack_lock.mark_started(TEST_STATE)
        warm = warm_flink_client(started)
        if warm is not None:
            os.environ[flink_client.ENV_VAR] = str(warm)
    yield started


def running(stack: Stack) -> bool:
    return all(status.running for status in stack.status())


def warm_flink_client(stack: Stack) -> Path | None:
    """The warm Flink client of the tests' stack (devstack/stack/flink_client.py), started once
    for the run: the tests' `flink` commands skip a JVM's start and a cold JIT each."""
    socket_file = flink_client.socket_path(stack.state)
    if flink_client.available(socket_file):
        return socket_file
    log = stack.log_dir / "flink-client-server.log"
    with log.open("ab") as out:
        subprocess.Popen(
            [sys.executable, "-m", "devstack.stack.flink_client", str(stack.state)],
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    deadline = time.monotonic() + 120
    while not flink_client.available(socket_file):
        if time.monotonic() > deadline:
            # The tests then run `bin/flink` for each command: slower, as correct.
            warnings.warn(f"the warm Flink client did not start: see {log}", stacklevel=1)
            return None
        time.sleep(0.2)
    return socket_file


@pytest.fixture(autouse=True)
def stack_turn(request: pytest.FixtureRequest, stack: Stack) -> Iterator[None]:
    """Tests share the stack, several at once under pytest-xdist, each holding a shared turn;
    the stack's fixture takes it alone to bring back what is down. A test that stops, kills or
    freezes a server does so to one of its own (`own_services`, or a Flink cluster of the tests'
    own: a test marked `own_flink` takes its cluster alone).

    No lock may be waited for while the turn is held and another holder waits for the turn:
    the stack is started before (its fixture takes the turn alone), and a server that a test
    takes for itself (`stack_lock.resource`) is taken inside the turn, for one test at a time."""
    name = own_flink_name(request.node)
    with ExitStack() as held:
        if name is not None:
            # The Flink cluster first, then the shared services: the order every holder of both
            # takes them in.
            held.enter_context(stack_lock.held(TEST_STATE, True, f"own-flink-{name}"))
        held.enter_context(stack_lock.turn(TEST_STATE, exclusive=False))
        yield


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
    cancelled = [job_id for job_id in submitted if job_id in running]
    for job_id in cancelled:
        stack.flink.cancel(job_id)
    # Until they are cancelled: a cancelled Kafka writer aborts its open transaction, and a
    # broker that a test takes away after this (its own) must still answer that abort, or the
    # abort's timeout ends the whole TaskManager.
    wait_until(lambda: all(ended(stack, job_id) for job_id in cancelled), CANCEL_WAIT_S, 0.5)


# Longer than a transactional writer's wait for the brokers (150 s).
CANCEL_WAIT_S = 180


def ended(stack: Stack, job_id: str) -> bool:
    return stack.flink.job(job_id).get("state") in TERMINAL_STATES
