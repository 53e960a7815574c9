"""The local stack on loopback: Kafka (KRaft), InfluxDB, Redis and a Flink standalone cluster,
and optionally Prometheus scraping it (`monitoring`).

Every process `up` starts is recorded with a pid file under the state directory, and `down` stops
exactly those. Data and logs live under the same directory, which `up` marks as a stack's and
`down --purge` deletes only when so marked (`state.py`).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import time
from pathlib import Path

from devstack import paths
from devstack.exceptions import StackError
from devstack.stack.flink import FlinkCluster
from devstack.stack.health import wait_until
from devstack.stack.influxdb import InfluxDB
from devstack.stack.kafka import KafkaCluster
from devstack.stack.process import Supervisor
from devstack.stack.prometheus import Prometheus
from devstack.stack.redis import Redis
from devstack.stack.service import Progress, Service, ServiceStatus
from devstack.stack.state import check_free_space, check_purgeable, claim

HEALTHY_WITHIN_S = 120
# What `up` says it waits for, by service (each one's `healthy`).
WAITS_FOR = {
    "kafka": "every broker and a controller in the cluster metadata",
    "influxdb": "HTTP /ping on 127.0.0.1:8086",
    "redis": "PING on 127.0.0.1:6379",
    "flink": "a TaskManager registered with the JobManager (REST on 127.0.0.1:8081)",
}


def _quiet(line: str) -> None:
    pass


class Stack:
    """The services, started in this order and stopped in the reverse one."""

    def __init__(
        self, state: Path | None = None, brokers: int | None = None, monitoring: bool = False
    ) -> None:
        self.state = state or paths.state_dir()
        self.run_dir = self.state / "run"
        self.log_dir = self.state / "logs"
        self.processes = Supervisor(self.run_dir, self.log_dir)
        self.kafka = KafkaCluster(self.state, self.processes, brokers)
        self.influxdb = InfluxDB(self.state, self.processes)
        self.redis = Redis(self.state, self.processes)
        self.flink = FlinkCluster(self.state, self.processes)
        self.prometheus = Prometheus(self.state, self.processes, self.flink.ports.metrics)
        self.monitoring = monitoring

    def with_flink(self, flink: FlinkCluster) -> Stack:
        """This stack's Kafka, InfluxDB and Redis with another Flink cluster (of its own state
        directory and ports), which its Prometheus scrapes: the tests restart, kill and rescale
        one while the others' jobs run on the stack's."""
        other = copy.copy(self)
        other.flink = flink
        other.prometheus = Prometheus(self.state, self.processes, flink.ports.metrics)
        return other

    def services(self) -> list[Service]:
        """What `up` starts: Prometheus only with `monitoring`."""
        core: list[Service] = [self.kafka, self.influxdb, self.redis, self.flink]
        return [*core, self.prometheus] if self.monitoring else core

    def _all_services(self) -> list[Service]:
        return [self.kafka, self.influxdb, self.redis, self.flink, self.prometheus]

    def _service(self, name: str) -> Service:
        for service in self._all_services():
            if service.name == name:
                return service
        raise StackError(f"unknown service {name!r}")

    # -- the stack as a whole ----------------------------------------------------------------
    def up(self, progress: Progress = print) -> None:
        check_free_space(self.state)
        claim(self.state)
        for service in self.services():
            progress(f"starting {service.name} ...")
            started = time.monotonic()
            try:
                service.start()
            except subprocess.CalledProcessError as exc:
                raise StackError(f"{service.name}: {exc}\n{exc.stderr!r}") from None
            waits_for = WAITS_FOR.get(service.name, "its health check")
            progress(f"{service.name}: waiting up to {HEALTHY_WITHIN_S}s for {waits_for}")
            check = self.flink.healthy_again if service is self.flink else service.healthy
            wait_until(check, HEALTHY_WITHIN_S, service.name, service.log_file)
            progress(f"  {service.name} healthy ({time.monotonic() - started:.1f}s)")

    def down(self, progress: Progress = print, purge: bool = False) -> None:
        """Stop every service; with `purge`, delete the state directory, which must be a
        stack's: a refused one is left as it was, its processes running."""
        if purge and self.state.exists():
            check_purgeable(self.state)
        for service in reversed(self._all_services()):
            service.stop(progress)
        if purge and self.state.exists():
            progress(f"removing {self.state} ...")
            shutil.rmtree(self.state)

    def status(self) -> list[ServiceStatus]:
        """Every service `up` starts, and Prometheus whenever it runs."""
        statuses = [status for service in self.services() for status in service.status()]
        if not self.monitoring:
            statuses += [status for status in self.prometheus.status() if status.running]
        return statuses

    def start_service(self, name: str) -> None:
        """Start one service (kafka, influxdb, redis, flink, prometheus) and wait until it is
        healthy."""
        service = self._service(name)
        service.start()
        wait_until(service.healthy, HEALTHY_WITHIN_S, name, service.log_file)

    def stop_service(self, name: str) -> None:
        """Stop one service abruptly (SIGTERM, then SIGKILL): fault tests use this. Any other
        name is a process of the stack (`kafka-2`: one broker)."""
        if name in {service.name for service in self._all_services()}:
            self._service(name).stop(_quiet)
        else:
            self.processes.kill(name)

    # -- Kafka -------------------------------------------------------------------------------
    @property
    def broker_count(self) -> int:
        return self.kafka.broker_count

    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers()

    # -- Flink -------------------------------------------------------------------------------
    def flink_conf_dir(self) -> Path:
        return self.flink.conf_dir()

    def write_flink_conf(self) -> Path:
        return self.flink.write_conf()

    def flink_env(self) -> dict[str, str]:
        return self.flink.env()

    def flink_bin(self, name: str) -> str:
        return self.flink.bin(name)

    def taskmanager_logs(self) -> list[Path]:
        return self.flink.taskmanager_logs()

    def kill_taskmanager(self) -> None:
        """SIGKILL every TaskManager of the cluster (fault tests)."""
        self.flink.kill_taskmanager()

    def kill_jobmanager(self) -> None:
        """SIGKILL the JobManager (fault tests); `up` starts a new one."""
        self.flink.kill_jobmanager()

    def start_taskmanager(self) -> None:
        """Start TaskManagers until the cluster has its number of them again."""
        self.flink.start_taskmanagers()

    def jobs(self) -> list[dict[str, object]]:
        return self.flink.jobs()
