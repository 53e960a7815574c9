"""One test stack for every test process of a run (pytest-xdist starts several): file locks
decide who starts it and which tests may run beside others.

`turn` is a readers-writer lock between processes: shared for the tests, exclusive for the
fixture that starts what of the stack is down. A turnstile taken first keeps an exclusive
waiter from being starved by a stream of shared turns.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from devstack import paths

if TYPE_CHECKING:
    from devstack.stack.flink import FlinkCluster

# A state directory of its own: the default one may hold a 3-broker demo stack.
TEST_STATE = Path(f"{paths.state_dir()}-test")
# The Flink clusters of the tests' own beside the stack's (8081, 6123, 9250-9260), by name
# (tests/integration/conftest.py, `own_flink_stack`): rest, rpc and the metric reporters' ports.
OWN_FLINK_PORTS = {
    "second": (8091, 6133, range(9270, 9281)),
    "third": (8101, 6143, range(9290, 9301)),
}
# The cluster of a test marked `own_flink` without a name.
DEFAULT_OWN_FLINK = "second"
_STARTED = "started-by-tests"


def _lock_file(state: Path, name: str) -> Path:
    # Beside the state directory, which `down --purge` may remove while a lock is held.
    return state.parent / f"{state.name}.locks" / name


@contextmanager
def held(state: Path, exclusive: bool, name: str = "start") -> Iterator[None]:
    path = _lock_file(state, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def turn(state: Path, exclusive: bool) -> Iterator[None]:
    with ExitStack() as room:
        # The room is taken inside the turnstile and kept after it is let go.
        with held(state, True, "turnstile"):
            room.enter_context(held(state, exclusive, "room"))
        yield


def mark_started(state: Path) -> None:
    (state / _STARTED).write_text("")


def started_here(state: Path) -> bool:
    """Whether this run's tests started the stack (and so stop it at the end)."""
    return (state / _STARTED).exists()


def forget_started(state: Path) -> None:
    (state / _STARTED).unlink(missing_ok=True)


@contextmanager
def resource(name: str) -> Iterator[None]:
    """One holder at a time across the run's processes: a server that a test module starts for
    itself on fixed ports or in a fixed directory (the secured broker, the Redis cluster), or a
    service of the stack that a module starts and stops (Prometheus)."""
    with held(TEST_STATE, True, f"resource-{name}"):
        yield


def own_flink_name(item: pytest.Item) -> str | None:
    """The Flink cluster of the tests' own a test runs on (`own_flink` or `own_flink(name)`),
    or None for the stack's."""
    marker = item.get_closest_marker("own_flink")
    if marker is None:
        return None
    return str(marker.args[0]) if marker.args else DEFAULT_OWN_FLINK


def own_flink_state(name: str) -> Path:
    return Path(f"{TEST_STATE}-flink-{name}")


def own_flink(name: str) -> FlinkCluster:
    """One of the tests' own Flink clusters (`OWN_FLINK_PORTS`), its state beside the stack's."""
    from devstack.stack.flink import FlinkCluster, FlinkPorts
    from devstack.stack.process import Supervisor

    state = own_flink_state(name)
    rest, rpc, metrics = OWN_FLINK_PORTS[name]
    return FlinkCluster(
        state,
        Supervisor(state / "run", state / "logs"),
        ports=FlinkPorts(rest=rest, rpc=rpc, metrics=metrics),
    )
