"""The whole run: every test under tests/integration/ is marked `integration` (so `make unit`
deselects it), and the stack the integration tests started is stopped once, when the run ends
(in pytest-xdist's controlling process, after every worker finished)."""

from __future__ import annotations

import pytest

from tests import stack_lock
from tests.stack_lock import OWN_FLINK_STATE, TEST_STATE

INTEGRATION_DIR = "tests/integration/"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)
    items.sort(key=run_order)


def run_order(item: pytest.Item) -> int:
    """pytest-xdist (`--dist worksteal`) hands each process a contiguous share of this order and
    an idle one takes from the end of another's. First the tests that need the stack alone, one
    after another (tests/integration/conftest.py keeps the stack between them), then those of
    the second Flink cluster, which take it one at a time: both land on the first process, which
    runs them in turn. The unit tests come next, beside them on the other processes, then the
    integration tests that share the stack."""
    if item.get_closest_marker("exclusive") is not None:
        return 0
    if item.get_closest_marker("own_flink") is not None:
        return 1
    return 3 if item.get_closest_marker("integration") is not None else 2


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):
        return
    if stack_lock.started_here(OWN_FLINK_STATE) and not stop_own_flink():
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


def stop_own_flink() -> bool:
    """Stop the tests' second Flink cluster; whether it stopped."""
    from devstack.stack import port_open

    flink = stack_lock.own_flink()
    flink.stop(lambda _: None)
    stack_lock.forget_started(OWN_FLINK_STATE)
    return not port_open(flink.ports.rest)
