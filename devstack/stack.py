"""The local stack on loopback: Kafka (KRaft), InfluxDB, Redis and a Flink standalone cluster.

Every process `up` starts is recorded with a pid file under the state directory, and `down` stops
exactly those. Data and logs live under the same directory.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bethos import paths
from bethos.exceptions import BethosError

KAFKA_PORT_BASE = 19090
CONTROLLER_PORT_BASE = 29090
INFLUXDB_PORT = 8086
REDIS_PORT = 6379
FLINK_REST_PORT = 8081


class StackError(BethosError):
    """A service of the local stack failed to start or stop; the message names it."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    detail: str


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_until(check: Callable[[], bool], timeout: float, what: str, log_file: Path | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.5)
    tail = ""
    if log_file is not None and log_file.exists():
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-15:])
    raise StackError(f"{what} did not become healthy within {timeout:.0f}s\n{tail}")


def http_json(url: str, timeout: float = 2.0) -> object:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def write_influxdb_config(
    base: Path, http_port: int, max_row_limit: int = 0, auth: bool = False
) -> Path:
    """An influxd config on loopback with its data under `base`; the RPC port is HTTP + 2."""
    base.mkdir(parents=True, exist_ok=True)
    config = base / "influxdb.conf"
    config.write_text(
        "reporting-disabled = true\n"
        f'bind-address = "127.0.0.1:{http_port + 2}"\n'
        f'[meta]\n  dir = "{base}/meta"\n'
        f'[data]\n  dir = "{base}/data"\n  wal-dir = "{base}/wal"\n'
        '  query-log-enabled = false\n  index-version = "tsi1"\n'
        f'[http]\n  bind-address = "127.0.0.1:{http_port}"\n'
        "  log-enabled = false\n"
        f"  max-row-limit = {max_row_limit}\n"
        f"  auth-enabled = {'true' if auth else 'false'}\n"
    )
    return config


class Stack:
    def __init__(self, state: Path | None = None, brokers: int | None = None) -> None:
        self.state = state or paths.state_dir()
        self.run_dir = self.state / "run"
        self.log_dir = self.state / "logs"
        self._brokers = brokers

    # -- bookkeeping -------------------------------------------------------------------------
    def _pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def _pid(self, name: str) -> int | None:
        try:
            pid = int(self._pid_file(name).read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        if self._pid(name) is not None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        self._pid_file(name).write_text(str(proc.pid))

    def _kill(self, name: str, timeout: float = 30.0) -> None:
        pid = self._pid(name)
        if pid is not None:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._pid(name) is not None:
                time.sleep(0.2)
            if self._pid(name) is not None:
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
        self._pid_file(name).unlink(missing_ok=True)

    @property
    def broker_count(self) -> int:
        if self._brokers is not None:
            return self._brokers
        saved = self.state / "kafka" / "brokers"
        return int(saved.read_text()) if saved.exists() else 3

    # -- Kafka ---------------------------------------------------------------------------------
    def _kafka_java(self, main: str, *args: str, heap: str = "512m") -> list[str]:
        return [
            "java",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.state / 'kafka' / 'log4j2.properties'}",
            "-cp",
            f"{paths.kafka_libs()}/*",
            main,
            *args,
        ]

    def _write_kafka_config(self, node: int, count: int) -> Path:
        voters = ",".join(f"{i}@127.0.0.1:{CONTROLLER_PORT_BASE + i}" for i in range(1, count + 1))
        rf = min(3, count)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{KAFKA_PORT_BASE + node},"
            f"CONTROLLER://127.0.0.1:{CONTROLLER_PORT_BASE + node}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{KAFKA_PORT_BASE + node}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.state / "kafka" / f"broker-{node}"),
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
        path = self.state / "kafka" / f"server-{node}.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _start_kafka(self) -> None:
        libs = paths.kafka_libs()
        if not libs.exists():
            raise StackError(f"kafka: not installed ({libs} missing); run scripts/install.sh")
        kafka_dir = self.state / "kafka"
        kafka_dir.mkdir(parents=True, exist_ok=True)
        count = self.broker_count
        brokers_file = kafka_dir / "brokers"
        if brokers_file.exists() and int(brokers_file.read_text()) != count:
            raise StackError(
                f"kafka: the state in {kafka_dir} is for {brokers_file.read_text().strip()} "
                f"broker(s); run `bethos down --purge` to start over with {count}"
            )
        brokers_file.write_text(str(count))
        (kafka_dir / "log4j2.properties").write_text(
            "rootLogger.level=INFO\nrootLogger.appenderRef.stdout.ref=STDOUT\n"
            "appender.stdout.type=Console\nappender.stdout.name=STDOUT\n"
            "appender.stdout.layout.type=PatternLayout\n"
            "appender.stdout.layout.pattern=[%d] %p %m (%c)%n\n"
            "logger.kafka.name=kafka\nlogger.kafka.level=WARN\n"
            "logger.apache.name=org.apache.kafka\nlogger.apache.level=WARN\n"
        )
        cluster_id_file = kafka_dir / "cluster-id"
        if not cluster_id_file.exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            cluster_id_file.write_text(cluster_id)
        cluster_id = cluster_id_file.read_text().strip()
        for node in range(1, count + 1):
            config = self._write_kafka_config(node, count)
            if not (kafka_dir / f"broker-{node}" / "meta.properties").exists():
                subprocess.run(
                    self._kafka_java(
                        "kafka.tools.StorageTool",
                        "format",
                        "-t",
                        cluster_id,
                        "-c",
                        str(config),
                        "--ignore-formatted",
                        heap="256m",
                    ),
                    check=True,
                    capture_output=True,
                )
            self._spawn(f"kafka-{node}", self._kafka_java("kafka.Kafka", str(config), heap="768m"))

    def _kafka_healthy(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers(), "log_level": 0})
        metadata = admin.list_topics(timeout=3)
        return len(metadata.brokers) >= self.broker_count and metadata.controller_id >= 0

    def bootstrap_servers(self) -> str:
        return ",".join(f"localhost:{KAFKA_PORT_BASE + i}" for i in range(1, self.broker_count + 1))

    # -- InfluxDB and Redis ---------------------------------------------------------------
    def _start_influxdb(self) -> None:
        binary = shutil.which("influxd")
        if binary is None:
            raise StackError("influxdb: influxd not installed; run scripts/install.sh")
        config = write_influxdb_config(self.state / "influxdb", INFLUXDB_PORT)
        self._spawn("influxdb", [binary, "-config", str(config)])

    def _influxdb_healthy(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{INFLUXDB_PORT}/ping", timeout=2) as r:
            return bool(r.status == 204)

    def _start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError("redis: redis-server not installed; run scripts/install.sh")
        base = self.state / "redis"
        base.mkdir(parents=True, exist_ok=True)
        self._spawn(
            "redis",
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(REDIS_PORT),
                "--dir",
                str(base),
                # The `state_store` strategy keeps the latest records here: a restart of
                # Redis must not lose them.
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--daemonize",
                "no",
            ],
        )

    def _redis_healthy(self) -> bool:
        with socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    # -- Flink -----------------------------------------------------------------------------
    def flink_conf_dir(self) -> Path:
        return self.state / "flink-conf"

    def write_flink_conf(self) -> Path:
        conf = self.flink_conf_dir()
        conf.mkdir(parents=True, exist_ok=True)
        wheel_conf = paths.flink_home() / "conf"
        for item in wheel_conf.iterdir():
            if item.name.startswith("log4j") or item.name.startswith("logback"):
                shutil.copy(item, conf / item.name)
        template = (paths.PROJECT_ROOT / "flink-conf" / "config.yaml").read_text()
        text = (
            template.replace("@STATE@", str(self.state))
            .replace("@PYTHON@", paths.python_executable())
            .replace("@CONNECTOR_JAR@", str(paths.connector_jar()))
        )
        (conf / "config.yaml").write_text(text)
        self._write_flink_lib()
        (conf / "masters").write_text(f"localhost:{FLINK_REST_PORT}\n")
        (conf / "workers").write_text("localhost\n")
        for sub in ("logs/flink", "flink/checkpoints", "flink/savepoints", "run"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        return conf

    def _write_flink_lib(self) -> None:
        """The wheel's lib/ plus flink-python from opt/.

        With flink-python on the cluster's own classpath, pemja loads libpython once per
        TaskManager; loaded per job instead, a second Python job on the same TaskManager fails
        (`NoSuchFieldException: loadedLibraryNames` on Java 17).
        """
        lib = self.state / "flink-lib"
        if lib.exists():
            shutil.rmtree(lib)
        lib.mkdir(parents=True)
        home = paths.flink_home()
        jars = [*(home / "lib").glob("*.jar"), *(home / "opt").glob("flink-python-*.jar")]
        for jar in jars:
            (lib / jar.name).symlink_to(jar)

    def flink_env(self) -> dict[str, str]:
        env = dict(os.environ)
        venv_bin = str(Path(paths.python_executable()).parent)
        env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
        env["FLINK_CONF_DIR"] = str(self.flink_conf_dir())
        env["FLINK_LIB_DIR"] = str(self.state / "flink-lib")
        env["FLINK_LOG_DIR"] = str(self.log_dir / "flink")
        env["FLINK_PID_DIR"] = str(self.run_dir)
        return env

    def taskmanager_logs(self) -> list[Path]:
        return sorted((self.log_dir / "flink").glob("*taskexecutor*.log"))

    def flink_bin(self, name: str) -> str:
        return str(paths.flink_home() / "bin" / name)

    def _start_flink(self) -> None:
        if port_open(FLINK_REST_PORT):
            return
        self.write_flink_conf()
        result = subprocess.run(
            [self.flink_bin("start-cluster.sh")],
            env=self.flink_env(),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise StackError(f"flink: start-cluster.sh failed: {result.stderr or result.stdout}")

    def _flink_healthy(self) -> bool:
        overview = http_json(f"http://127.0.0.1:{FLINK_REST_PORT}/overview")
        return isinstance(overview, dict) and int(overview.get("taskmanagers", 0)) >= 1

    def _stop_flink(self) -> None:
        if not self.flink_conf_dir().exists():
            return
        subprocess.run(
            [self.flink_bin("stop-cluster.sh")],
            env=self.flink_env(),
            capture_output=True,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (port_open(FLINK_REST_PORT) or self._flink_pids()):
            time.sleep(0.5)
        for pid in self._flink_pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def _flink_pids(self) -> list[int]:
        pids = []
        for pid_file in self.run_dir.glob("flink-*.pid"):
            for line in pid_file.read_text().split():
                try:
                    pid = int(line)
                    os.kill(pid, 0)
                    pids.append(pid)
                except (ValueError, OSError):
                    continue
        return pids

    def kill_taskmanager(self) -> None:
        """SIGKILL every TaskManager of the cluster (fault tests)."""
        for pid_file in self.run_dir.glob("flink-*taskexecutor*.pid"):
            for line in pid_file.read_text().split():
                try:
                    os.kill(int(line), signal.SIGKILL)
                except (ValueError, OSError):
                    continue
            pid_file.unlink()

    def start_taskmanager(self) -> None:
        subprocess.run(
            [self.flink_bin("taskmanager.sh"), "start"],
            env=self.flink_env(),
            check=True,
            capture_output=True,
        )

    # -- the stack as a whole ----------------------------------------------------------------
    def services(self) -> list[tuple[str, Callable[[], None], Callable[[], bool], Path]]:
        kafka_log = self.log_dir / "kafka-1.log"
        return [
            ("kafka", self._start_kafka, self._kafka_healthy, kafka_log),
            (
                "influxdb",
                self._start_influxdb,
                self._influxdb_healthy,
                self.log_dir / "influxdb.log",
            ),
            ("redis", self._start_redis, self._redis_healthy, self.log_dir / "redis.log"),
            (
                "flink",
                self._start_flink,
                self._flink_healthy,
                self.log_dir / "flink" / "flink-standalonesession.log",
            ),
        ]

    def start_service(self, name: str) -> None:
        """Start one service (kafka, influxdb, redis, flink) and wait until it is healthy."""
        for service, start, healthy, log_file in self.services():
            if service == name:
                start()
                wait_until(healthy, 120, name, log_file)
                return
        raise StackError(f"unknown service {name!r}")

    def stop_service(self, name: str) -> None:
        """Stop one service abruptly (SIGTERM, then SIGKILL): fault tests use this."""
        if name == "flink":
            self._stop_flink()
        elif name == "kafka":
            for node in range(1, self.broker_count + 1):
                self._kill(f"kafka-{node}")
        else:
            self._kill(name)

    def up(self, progress: Callable[[str], None] = print) -> None:
        for name, start, healthy, log_file in self.services():
            progress(f"starting {name} ...")
            started = time.monotonic()
            try:
                start()
            except subprocess.CalledProcessError as exc:
                raise StackError(f"{name}: {exc}\n{exc.stderr!r}") from None
            wait_until(healthy, 120, name, log_file)
            progress(f"  {name} healthy ({time.monotonic() - started:.1f}s)")

    def down(self, progress: Callable[[str], None] = print, purge: bool = False) -> None:
        progress("stopping flink ...")
        self._stop_flink()
        for name in ["redis", "influxdb"] + [f"kafka-{i}" for i in range(self.broker_count, 0, -1)]:
            if self._pid(name) is not None:
                progress(f"stopping {name} ...")
            self._kill(name)
        if purge and self.state.exists():
            progress(f"removing {self.state} ...")
            shutil.rmtree(self.state)

    def status(self) -> list[ServiceStatus]:
        result = []
        for node in range(1, self.broker_count + 1):
            pid = self._pid(f"kafka-{node}")
            port = KAFKA_PORT_BASE + node
            result.append(
                ServiceStatus(
                    f"kafka-{node}",
                    pid is not None and port_open(port),
                    f"pid {pid}, 127.0.0.1:{port}" if pid else "stopped",
                )
            )
        for name, port in (("influxdb", INFLUXDB_PORT), ("redis", REDIS_PORT)):
            pid = self._pid(name)
            result.append(
                ServiceStatus(
                    name,
                    pid is not None and port_open(port),
                    f"pid {pid}, 127.0.0.1:{port}" if pid else "stopped",
                )
            )
        try:
            healthy = self._flink_healthy()
        except OSError:
            healthy = False
        result.append(
            ServiceStatus(
                "flink",
                healthy,
                f"dashboard http://localhost:{FLINK_REST_PORT}" if healthy else "stopped",
            )
        )
        return result

    def jobs(self) -> list[dict[str, object]]:
        try:
            overview = http_json(f"http://127.0.0.1:{FLINK_REST_PORT}/jobs/overview")
        except OSError:
            return []
        jobs = overview.get("jobs", []) if isinstance(overview, dict) else []
        return [job for job in jobs if isinstance(job, dict)]
