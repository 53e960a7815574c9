"""The whole run: every test under tests/integration/ is marked `integration` (so `make unit`
deselects it), the test processes share the tests as tests/lanes.py says, and the stack the
integration tests started is stopped once, when the run ends (in pytest-xdist's controlling
process, after every worker finished)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings

from tests import lanes, stack_lock
from tests.stack_lock import OWN_FLINK_PORTS, TEST_STATE, own_flink_name, own_flink_state

INTEGRATION_DIR = "tests/integration/"


# Property tests without a time limit per example: five test processes share two cores, and an
# example that takes 0.5 ms alone took 295 ms beside them.
settings.register_profile("bethos", deadline=None)
settings.load_profile("bethos")


def pytest_configure(config: pytest.Config) -> None:
    lanes.configure(config)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> lanes.LaneScheduling | None:
    return lanes.make_scheduler(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)
    items.sort(key=run_order)
    lanes.record({item.nodeid: name for item in items if (name := own_flink_name(item))})


# Long tests that mostly wait (on a broker frozen or killed, a cluster of their own): first in
# the queue, beside the others rather than after them.
LONG_WAITS = ("test_kafka_unreachable.py", "test_broker_kill.py", "test_chaos.py")


def run_order(item: pytest.Item) -> int:
    """The queue's order (tests/lanes.py): the unit tests first, while the stack starts, then
    the integration tests, those that mostly wait first. A lane's tests (`own_flink`) run in
    this order on their process."""
    if item.get_closest_marker("integration") is None:
        return 0
    return 1 if item.path.name in LONG_WAITS else 2


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):
        return
    for name in OWN_FLINK_PORTS:
        if stack_lock.started_here(own_flink_state(name)) and not stop_own_flink(name):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if not stack_lock.started_here(TEST_STATE):
        return
    from devstack.stack import (
        FLINK_REST_PORT,
        INFLUXDB_PORT,
        KAFKA_PORT_BASE,
        REDIS_PORT,
        Stack,
        flink_client,
        port_open,
    )

    # The warm Flink client stops when its socket goes (its JVM with it).
    flink_client.socket_path(TEST_STATE).unlink(missing_ok=True)
    Stack(state=TEST_STATE, brokers=1).down(lambda _: None)
    stack_lock.forget_started(TEST_STATE)
    ports = [KAFKA_PORT_BASE + 1, INFLUXDB_PORT, REDIS_PORT, FLINK_REST_PORT]
    still_open = [port for port in ports if port_open(port)]
    if still_open:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"`down` left ports open: {still_open}", red=True)


def stop_own_flink(name: str) -> bool:
    """Stop one of the tests' own Flink clusters; whether it stopped."""
    from devstack.stack import port_open

    flink = stack_lock.own_flink(name)
    flink.stop(lambda _: None)
    stack_lock.forget_started(own_flink_state(name))
    return not port_open(flink.ports.rest)
