"""The local stack without its servers: processes, pid files, config files, the facade."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bethos import paths
from devstack.stack import KAFKA_PORT_BASE, Stack, StackError, process
from devstack.stack.process import Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def spawn_sleeper(supervisor: Supervisor, name: str) -> int:
    """Spawn a process as the stack does, reaped as soon as it ends: the stack's real parent is
    a short-lived `bethos` command, so a stopped service never lingers as a zombie of it."""
    supervisor.spawn(name, SLEEPER)
    pid = supervisor.pid(name)
    assert pid is not None
    threading.Thread(target=os.waitpid, args=(pid, 0), daemon=True).start()
    return pid


def gone(supervisor: Supervisor, name: str, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while supervisor.pid(name) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    return supervisor.pid(name) is None


def test_the_supervisor_spawns_once_and_kills_what_it_spawned(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "run", tmp_path / "logs")
    pid = spawn_sleeper(supervisor, "sleeper")
    supervisor.spawn("sleeper", SLEEPER)  # already running: nothing new
    assert supervisor.pid("sleeper") == pid
    assert supervisor.log_file("sleeper") == tmp_path / "logs" / "sleeper.log"
    supervisor.kill("sleeper", timeout=10)
    assert supervisor.pid("sleeper") is None
    assert not supervisor.pid_file("sleeper").exists()


def test_a_pid_counts_only_while_its_process_lives(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "run", tmp_path / "logs")
    supervisor.run_dir.mkdir()
    supervisor.pid_file("stale").write_text("999999999")
    supervisor.pid_file("garbage").write_text("not a pid")
    assert supervisor.pid("stale") is None
    assert supervisor.pid("garbage") is None
    assert supervisor.pid("never") is None
    supervisor.kill("stale")  # nothing to signal; the stale file goes
    assert not supervisor.pid_file("stale").exists()


def test_pid_files_written_by_others_are_read_and_signalled(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "run", tmp_path / "logs")
    pid = spawn_sleeper(supervisor, "worker")
    # Flink's scripts write their own pid files, possibly several pids each.
    listed = supervisor.run_dir / "flink-x-taskexecutor.pid"
    listed.write_text(f"{pid}\n999999999\nnot-a-pid\n")
    assert supervisor.listed_pids("flink-*.pid") == [pid]
    supervisor.signal_listed("flink-*taskexecutor*.pid", signal.SIGKILL)
    assert not listed.exists()
    assert gone(supervisor, "worker")
    assert supervisor.listed_pids("flink-*.pid") == []


def test_down_stops_exactly_the_recorded_processes_in_reverse_order(tmp_path: Path) -> None:
    stack = Stack(state=tmp_path / "state", brokers=2)
    for name in ("kafka-1", "kafka-2", "redis"):
        spawn_sleeper(stack.processes, name)
    said: list[str] = []
    # No flink-conf in this state directory: there is no cluster of this stack to stop.
    stack.down(progress=said.append)
    assert said == ["stopping flink ...", "stopping redis ...", "stopping kafka-2 ...",
                    "stopping kafka-1 ..."]  # fmt: skip
    assert all(stack.processes.pid(n) is None for n in ("kafka-1", "kafka-2", "redis"))
    assert (tmp_path / "state").exists()
    stack.down(progress=said.append, purge=True)
    assert not (tmp_path / "state").exists()


def test_one_service_or_one_process_stops_alone(tmp_path: Path) -> None:
    stack = Stack(state=tmp_path, brokers=2)
    for name in ("kafka-1", "kafka-2", "influxdb"):
        spawn_sleeper(stack.processes, name)
    stack.stop_service("kafka-2")
    assert stack.processes.pid("kafka-2") is None
    assert stack.processes.pid("kafka-1") is not None
    stack.stop_service("kafka")
    assert stack.processes.pid("kafka-1") is None
    assert stack.processes.pid("influxdb") is not None
    stack.stop_service("influxdb")
    assert stack.processes.pid("influxdb") is None


def test_an_unknown_service_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="unknown service 'zookeeper'"):
        Stack(state=tmp_path).start_service("zookeeper")


def test_status_names_every_broker_and_service(tmp_path: Path) -> None:
    stack = Stack(state=tmp_path, brokers=2)
    statuses = stack.status()
    assert [s.name for s in statuses] == ["kafka-1", "kafka-2", "influxdb", "redis", "flink"]
    assert [s.detail for s in statuses[:4]] == ["stopped"] * 4


def test_the_broker_count_is_kept_with_the_state(tmp_path: Path) -> None:
    assert Stack(state=tmp_path).broker_count == 3
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "brokers").write_text("1")
    stack = Stack(state=tmp_path)
    assert stack.broker_count == 1
    assert stack.bootstrap_servers() == f"localhost:{KAFKA_PORT_BASE + 1}"
    assert Stack(state=tmp_path, brokers=2).bootstrap_servers() == "localhost:19091,localhost:19092"


def test_broker_configs_form_one_kraft_quorum(tmp_path: Path) -> None:
    stack = Stack(state=tmp_path, brokers=3)
    (tmp_path / "kafka").mkdir()
    path = stack.kafka._write_config(2, 3)
    props = dict(line.split("=", 1) for line in path.read_text().splitlines())
    assert path == tmp_path / "kafka" / "server-2.properties"
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:29091,2@127.0.0.1:29092,3@127.0.0.1:29093"
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:29092"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "broker-2")
    assert props["default.replication.factor"] == "3"


def test_the_flink_conf_dir_fills_the_project_template(tmp_path: Path) -> None:
    stack = Stack(state=tmp_path)
    conf = stack.write_flink_conf()
    assert conf == stack.flink_conf_dir() == tmp_path / "flink-conf"
    text = (conf / "config.yaml").read_text()
    assert re.search(r"@[A-Z_]+@", text.split("\nenv:")[1]) is None  # every placeholder filled
    assert f"{tmp_path}/logs/flink" in text
    # The cluster's Python is not the project's: bethos comes with each job.
    assert f'executable: "{paths.cluster_python()}"' in text
    assert f"{paths.PROJECT_ROOT}/.venv/" not in text
    assert (conf / "masters").read_text() == "localhost:8081\n"
    assert (conf / "workers").read_text() == "localhost\nlocalhost\n"
    lib = {p.name for p in (tmp_path / "flink-lib").iterdir()}
    assert any(name.startswith("flink-python-") for name in lib)
    assert paths.CONNECTOR_JAR_NAME in lib
    for sub in ("logs/flink", "flink/checkpoints", "flink/savepoints", "run"):
        assert (tmp_path / sub).is_dir()
    env = stack.flink_env()
    assert env["FLINK_CONF_DIR"] == str(conf)
    assert env["FLINK_PID_DIR"] == str(tmp_path / "run")
    assert env["FLINK_LOG_DIR"] == str(tmp_path / "logs" / "flink")
    assert env["FLINK_LIB_DIR"] == str(tmp_path / "flink-lib")


def test_a_stopped_child_is_not_alive_while_it_waits_to_be_reaped() -> None:
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    # `true` exits at once and stays a zombie until reaped; _alive reaps it.
    while process._alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process._alive(child.pid)
