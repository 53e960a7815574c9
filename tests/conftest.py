"""The whole run: every test under tests/integration/ is marked `integration` (so `make unit`
deselects it), and the stack the integration tests started is stopped once, when the run ends
(in pytest-xdist's controlling process, after every worker finished)."""

from __future__ import annotations

import pytest

from tests import stack_lock
from tests.stack_lock import TEST_STATE

INTEGRATION_DIR = "tests/integration/"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)
    items.sort(key=run_order)


def run_order(item: pytest.Item) -> int:
    """The tests that need the stack alone first, one after another (pytest-xdist hands each
    process a contiguous share, so they land on one process, which keeps the stack for the next
    of them: tests/integration/conftest.py), the unit tests beside them on the other processes
    (they need no stack), then the integration tests that share the stack."""
    if item.get_closest_marker("exclusive") is not None:
        return 0
    return 2 if item.get_closest_marker("integration") is not None else 1


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput") or not stack_lock.started_here(TEST_STATE):
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
