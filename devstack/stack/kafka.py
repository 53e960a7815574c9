"""Kafka in KRaft mode: 1 to 3 brokers, each its own controller, on loopback."""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path

from devstack import paths
from devstack.exceptions import StackError
from devstack.stack.process import Supervisor
from devstack.stack.service import Progress, ServiceStatus, process_status

KAFKA_PORT_BASE = 19090
CONTROLLER_PORT_BASE = 29090

_LOG4J = (
    "rootLogger.level=INFO\nrootLogger.appenderRef.stdout.ref=STDOUT\n"
    "appender.stdout.type=Console\nappender.stdout.name=STDOUT\n"
    "appender.stdout.layout.type=PatternLayout\n"
    "appender.stdout.layout.pattern=[%d] %p %m (%c)%n\n"
    "logger.kafka.name=kafka\nlogger.kafka.level=WARN\n"
    "logger.apache.name=org.apache.kafka\nlogger.apache.level=WARN\n"
)


def java_tmpdir_option(broker_dir: Path) -> str:
    """`-Djava.io.tmpdir` in the broker's own directory: what Java libraries unpack there (lz4's
    native library) stays in the stack's state."""
    tmp = broker_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return f"-Djava.io.tmpdir={tmp}"


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding. Like Kafka's own
    `Uuid.randomUuid`, never one that starts with `-` (a tool would read it as an option)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaCluster:
    """Broker N listens on `port_base` + N (KAFKA_PORT_BASE: 19091...), its controller on
    `controller_base` + N; its data is under `state/kafka/broker-N`."""

    name = "kafka"

    def __init__(
        self,
        state: Path,
        processes: Supervisor,
        brokers: int | None = None,
        port_base: int = KAFKA_PORT_BASE,
        controller_base: int = CONTROLLER_PORT_BASE,
    ) -> None:
        self.dir = state / "kafka"
        self.processes = processes
        self._brokers = brokers
        self.port_base = port_base
        self.controller_base = controller_base

    @property
    def broker_count(self) -> int:
        """As asked, else as the state directory was made, else 3."""
        if self._brokers is not None:
            return self._brokers
        saved = self.dir / "brokers"
        return int(saved.read_text()) if saved.exists() else 3

    def nodes(self) -> range:
        return range(1, self.broker_count + 1)

    def bootstrap_servers(self) -> str:
        return ",".join(f"localhost:{self.port_base + i}" for i in self.nodes())

    @property
    def log_file(self) -> Path:
        return self.processes.log_file("kafka-1")

    def java_command(self, main: str, *args: str, heap: str = "512m") -> list[str]:
        """A JVM running `main` of Kafka's jars, logging as the brokers do."""
        return [
            "java",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            java_tmpdir_option(self.dir),
            "-cp",
            f"{paths.kafka_libs()}/*",
            main,
            *args,
        ]

    def _write_config(self, node: int, count: int) -> Path:
        voters = ",".join(f"{i}@127.0.0.1:{self.controller_base + i}" for i in range(1, count + 1))
        rf = min(3, count)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port_base + node},"
            f"CONTROLLER://127.0.0.1:{self.controller_base + node}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port_base + node}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.dir / f"broker-{node}"),
            "num.partitions": "3",
            "default.replication.factor": str(rf),
            "offsets.topic.replication.factor": str(rf),
            "transaction.state.log.replication.factor": str(rf),
            "transaction.state.log.min.isr": "1",
            "min.insync.replicas": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.cleaner.min.compaction.lag.ms": "0",
        }
        path = self.dir / f"server-{node}.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _cluster_id(self) -> str:
        cluster_id_file = self.dir / "cluster-id"
        if not cluster_id_file.exists():
            cluster_id_file.write_text(new_cluster_id())
        return cluster_id_file.read_text().strip()

    def start(self) -> None:
        libs = paths.kafka_libs()
        if not libs.exists():
            raise StackError(f"kafka: not installed ({libs} missing); run scripts/install.sh")
        self.dir.mkdir(parents=True, exist_ok=True)
        count = self.broker_count
        brokers_file = self.dir / "brokers"
        if brokers_file.exists() and int(brokers_file.read_text()) != count:
            raise StackError(
                f"kafka: the state in {self.dir} is for {brokers_file.read_text().strip()} "
                f"broker(s); run `bethos down --purge` to start over with {count}"
            )
        brokers_file.write_text(str(count))
        (self.dir / "log4j2.properties").write_text(_LOG4J)
        cluster_id = self._cluster_id()
        for node in range(1, count + 1):
            config = self._write_config(node, count)
            if not (self.dir / f"broker-{node}" / "meta.properties").exists():
                subprocess.run(
                    self.java_command(
                        "kafka.tools.StorageTool",
                        "format",
                        f"--cluster-id={cluster_id}",
                        "-c",
                        str(config),
                        "--ignore-formatted",
                        heap="256m",
                    ),
                    check=True,
                    capture_output=True,
                )
            self.processes.spawn(
                f"kafka-{node}", self.java_command("kafka.Kafka", str(config), heap="768m")
            )

    def healthy(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers(), "log_level": 0})
        metadata = admin.list_topics(timeout=3)
        return len(metadata.brokers) >= self.broker_count and metadata.controller_id >= 0

    def stop(self, progress: Progress) -> None:
        """Every broker, the last one first."""
        for node in reversed(self.nodes()):
            name = f"kafka-{node}"
            if self.processes.pid(name) is not None:
                progress(f"stopping {name} ...")
            self.processes.kill(name)

    def status(self) -> list[ServiceStatus]:
        return [
            process_status(
                f"kafka-{node}", self.processes.pid(f"kafka-{node}"), self.port_base + node
            )
            for node in self.nodes()
        ]
