"""A service of the stack's kind (InfluxDB, Redis, Kafka) run for one test alone, on ports of
its own: the test can stop, freeze or kill it while the other tests go on with the stack's own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from devstack.stack import wait_until
from devstack.stack.kafka import KafkaCluster
from devstack.stack.process import Supervisor
from devstack.stack.service import SingleProcess


def _quiet(_: str) -> None:
    pass


class OwnService:
    """One supervised process of `kind`, its state under `state`, listening on `port`."""

    def __init__(self, kind: type[SingleProcess], state: Path, port: int) -> None:
        self.service = kind(state, Supervisor(state / "run", state / "logs"))
        self.service.port = port

    @property
    def port(self) -> int:
        return self.service.port

    def start(self) -> None:
        self.service.start()
        wait_until(
            self.service.healthy, 60, f"{self.service.name} on {self.port}", self.service.log_file
        )

    def stop(self) -> None:
        self.service.stop(_quiet)


@contextlib.contextmanager
def own_service(kind: type[SingleProcess], state: Path, port: int) -> Iterator[OwnService]:
    own = OwnService(kind, state, port)
    own.start()
    try:
        yield own
    finally:
        own.stop()


@contextlib.contextmanager
def throwaway_kafka(
    state: Path, brokers: int, port_base: int, controller_base: int
) -> Iterator[KafkaCluster]:
    """A Kafka cluster of `brokers` brokers, killed at the end. Its ports lie below the
    ephemeral range: there any client's outgoing connection may hold one, and the broker then
    stops at start (CI saw one never come up)."""
    low, _ = (int(p) for p in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    assert max(port_base, controller_base) + brokers < low, "ports in the ephemeral range"
    cluster = KafkaCluster(
        state, Supervisor(state / "run", state / "logs"), brokers, port_base, controller_base
    )
    cluster.start()
    try:
        wait_until(cluster.healthy, 120, f"kafka ({brokers} of a test's own)", cluster.log_file)
        yield cluster
    finally:
        # Thrown away with the test's directory: no controlled shutdown, which the last broker
        # standing of several cannot finish (no quorum) and waits out for 30 s.
        for node in cluster.nodes():
            cluster.processes.kill(f"kafka-{node}", timeout=0)
