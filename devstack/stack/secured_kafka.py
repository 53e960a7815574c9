"""A Kafka broker that speaks only SASL (SCRAM) and TLS, to try `kafka.security` on a real one.

One KRaft node (broker and controller) from the same installed distribution as `KafkaCluster`,
with a state directory of its own and free loopback ports, so it runs beside the local stack:

- a SASL_PLAINTEXT listener and a SASL_SSL listener, both taking SCRAM-SHA-256 and -512;
- the brokers' traffic on SASL_PLAINTEXT too, as the user `admin`, whose random password is
  made at format time (`--add-scram`) and kept in the state directory;
- for TLS, a CA and a broker certificate (for `localhost` and `127.0.0.1`) made with openssl:
  `ca_file` is what a client's `kafka.security.ca_file` names.

Users are added over the wire by `add_user` (SCRAM credentials through the admin API).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from devstack import paths
from devstack.exceptions import StackError
from devstack.stack.kafka import java_tmpdir_option, new_cluster_id
from devstack.stack.process import Supervisor

ADMIN = "admin"
MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")

_LOG4J = (
    "rootLogger.level=INFO\nrootLogger.appenderRef.stdout.ref=STDOUT\n"
    "appender.stdout.type=Console\nappender.stdout.name=STDOUT\n"
    "appender.stdout.layout.type=PatternLayout\n"
    "appender.stdout.layout.pattern=[%d] %p %m (%c)%n\n"
    "logger.kafka.name=kafka\nlogger.kafka.level=WARN\n"
    "logger.apache.name=org.apache.kafka\nlogger.apache.level=WARN\n"
)


@dataclass(frozen=True)
class Ports:
    sasl_plaintext: int
    sasl_ssl: int
    controller: int


def free_ports(count: int) -> list[int]:
    """Ports free on loopback now (held open together, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def make_tls(directory: Path) -> Path:
    """A CA (`ca.pem`, returned) and a broker key (`broker.key`) and certificate signed by it
    (`broker.crt`) for `localhost` and `127.0.0.1`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "broker.key", directory / "broker.csr", directory / "broker.crt"
    extensions = directory / "broker.ext"
    extensions.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "7",
        "-subj", "/CN=bethos test CA", "-keyout", str(ca_key), "-out", str(ca),
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", str(key), "-out", str(csr),
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "7", "-extfile", str(extensions), "-out", str(cert),
    )  # fmt: skip
    key.chmod(0o600)
    return ca


def _slf4j_binding() -> list[Path]:
    return sorted((paths.flink_home() / "lib").glob("log4j-slf4j-impl-*.jar"))[:1]


def _properties_value(text: str) -> str:
    """A multi-line value in a Java properties file."""
    return text.strip().replace("\\", "\\\\").replace("\n", "\\n")


class SecuredBroker:
    """Start, use and stop the broker; its state, logs and pid file are under `state`."""

    name = "kafka-secured"

    def __init__(self, state: Path) -> None:
        self.dir = state
        self.processes = Supervisor(state / "run", state / "logs")

    @property
    def ports(self) -> Ports:
        return Ports(**json.loads((self.dir / "ports.json").read_text()))

    @property
    def ca_file(self) -> Path:
        return self.dir / "tls" / "ca.pem"

    @property
    def log_file(self) -> Path:
        return self.processes.log_file(self.name)

    def bootstrap(self, protocol: str) -> str:
        """`host:port` of the listener of `SASL_PLAINTEXT` or `SASL_SSL`."""
        if protocol == "SASL_SSL":
            return f"localhost:{self.ports.sasl_ssl}"
        return f"127.0.0.1:{self.ports.sasl_plaintext}"

    def admin_properties(self) -> dict[str, str]:
        """librdkafka's properties to log in as `admin` (the secret included)."""
        return {
            "bootstrap.servers": self.bootstrap("SASL_PLAINTEXT"),
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": ADMIN,
            "sasl.password": (self.dir / "admin-password").read_text(),
        }

    def _java(self, main: str, *args: str, heap: str) -> list[str]:
        return [
            "java",
            f"-Xmx{heap}",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            java_tmpdir_option(self.dir),
            "-cp",
            # The distribution's slf4j 1.7 API finds no binding there: Flink's log4j binding
            # for it makes the broker's warnings and errors reach its log.
            os.pathsep.join([*map(str, _slf4j_binding()), f"{paths.kafka_libs()}/*"]),
            main,
            *args,
        ]

    def _write_config(self, ports: Ports, admin_password: str, tls: Path) -> Path:
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN}" password="{admin_password}";'
        )
        # Every SASL listener needs a login context per mechanism; the brokers' own one logs
        # in as admin.
        logins = {
            f"listener.name.{listener}.{mechanism.lower()}.sasl.jaas.config": jaas
            for listener in ("sasl_plaintext", "sasl_ssl")
            for mechanism in MECHANISMS
        }
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{ports.controller}",
            "listeners": f"SASL_PLAINTEXT://127.0.0.1:{ports.sasl_plaintext},"
            f"SASL_SSL://127.0.0.1:{ports.sasl_ssl},CONTROLLER://127.0.0.1:{ports.controller}",
            "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{ports.sasl_plaintext},"
            f"SASL_SSL://localhost:{ports.sasl_ssl}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,"
            "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "sasl.enabled.mechanisms": ",".join(MECHANISMS),
            **logins,
            # Inline: a PEM key store read from a file must hold an encrypted key.
            "ssl.keystore.type": "PEM",
            "ssl.keystore.key": _properties_value((tls / "broker.key").read_text()),
            "ssl.keystore.certificate.chain": _properties_value((tls / "broker.crt").read_text()),
            "log.dirs": str(self.dir / "data"),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
        }
        path = self.dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        path.chmod(0o600)
        return path

    def start(self, timeout: float = 90.0) -> None:
        """Make the state (first start only), start the broker, wait until `admin` logs in."""
        if not paths.kafka_libs().exists():
            raise StackError(f"kafka: not installed ({paths.kafka_libs()}); run scripts/install.sh")
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "log4j2.properties").write_text(_LOG4J)
        first = not (self.dir / "data" / "meta.properties").exists()
        if first:
            ports = Ports(*free_ports(3))
            (self.dir / "ports.json").write_text(json.dumps(asdict(ports)))
            password_file = self.dir / "admin-password"
            password_file.write_text(secrets.token_urlsafe(18))
            password_file.chmod(0o600)
        if first:
            make_tls(self.dir / "tls")
        admin_password = (self.dir / "admin-password").read_text()
        config = self._write_config(self.ports, admin_password, self.dir / "tls")
        if first:
            cluster_id = new_cluster_id()
            subprocess.run(
                self._java(
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={cluster_id}",
                    "-c",
                    str(config),
                    "--add-scram",
                    f"SCRAM-SHA-512=[name={ADMIN},password={admin_password}]",
                    heap="256m",
                ),
                check=True,
                capture_output=True,
            )
        self.processes.spawn(self.name, self._java("kafka.Kafka", str(config), heap="768m"))
        self._wait(timeout)

    def _wait(self, timeout: float) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        config: dict[str, str | int | float | bool] = {**self.admin_properties(), "log_level": 0}
        admin = AdminClient(config)
        deadline = time.monotonic() + timeout
        while True:
            if self.processes.pid(self.name) is None:
                raise StackError(f"{self.name} exited; see {self.log_file}")
            try:
                if admin.list_topics(timeout=2).brokers:
                    return
            except KafkaException:
                pass
            if time.monotonic() > deadline:
                raise StackError(f"{self.name} not up within {timeout:g}s; see {self.log_file}")
            time.sleep(0.5)

    def add_user(self, name: str, password: str, mechanisms: tuple[str, ...] = MECHANISMS) -> None:
        """Create or reset a SCRAM user (every mechanism given)."""
        from confluent_kafka.admin import (
            AdminClient,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialAlteration,
            UserScramCredentialUpsertion,
        )

        config: dict[str, str | int | float | bool] = {**self.admin_properties()}
        admin = AdminClient(config)
        for mechanism in mechanisms:  # one request each: a request alters a user once
            upsert: list[UserScramCredentialAlteration] = [
                UserScramCredentialUpsertion(
                    name,
                    ScramCredentialInfo(ScramMechanism[mechanism.replace("-", "_")], 4096),
                    password.encode(),
                )
            ]
            for future in admin.alter_user_scram_credentials(upsert).values():
                future.result(timeout=30)

    def stop(self) -> None:
        self.processes.kill(self.name)

    def running(self) -> bool:
        return self.processes.pid(self.name) is not None
