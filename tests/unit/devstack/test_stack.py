"""The local stack without its servers: processes, pid files, config files, the facade."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from devstack import paths
from devstack.stack import KAFKA_PORT_BASE, Stack, StackError, flink, process
from devstack.stack.process import Daemon, Supervisor
from devstack.stack.state import claim

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def spawn_sleeper(supervisor: Supervisor, name: str) -> int:
    """Spawn a process as the stack does, reaped as soon as it ends: the stack's real parent is
    a short-lived `bethos` command, so a stopped service never lingers as a zombie of it."""
    supervisor.spawn(name, SLEEPER)
    pid = supervisor.pid(name)
    assert pid is not None
    threading.Thread(target=_reap, args=(pid,), daemon=True).start()
    return pid


def _reap(pid: int) -> None:
    # The stack's own liveness check may reap the process first.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


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
    supervisor.pid_file("stale").write_text(f"999999999 1 {process.boot_id()}")
    supervisor.pid_file("garbage").write_text("not a pid")
    assert supervisor.pid("stale") is None
    assert supervisor.pid("garbage") is None
    assert supervisor.pid("never") is None
    supervisor.kill("stale")  # nothing to signal; the stale file goes
    assert not supervisor.pid_file("stale").exists()


def test_a_pid_file_records_the_start_time_and_boot(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "run", tmp_path / "logs")
    pid = spawn_sleeper(supervisor, "sleeper")
    recorded = supervisor.pid_file("sleeper").read_text().split()
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    assert recorded == [
        str(pid),
        stat[19],
        Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
    ]
    supervisor.kill("sleeper", timeout=10)


@pytest.mark.parametrize(
    "forged",
    [
        "{pid} {start_plus_one} {boot}",  # the pid of a process that started later: a reuse
        "{pid} {start} another-boot",  # the same start time in another boot
        "{pid}",  # a bare pid proves nothing
    ],
)
def test_a_process_that_is_not_the_one_spawned_is_never_signalled(
    tmp_path: Path, forged: str
) -> None:
    """A pid file whose pid is now some other process (a reused pid): `pid` does not count it,
    `kill` does not signal it, and the stale file goes."""
    supervisor = Supervisor(tmp_path / "run", tmp_path / "logs")
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        start = process.start_ticks(other.pid)
        assert start is not None
        supervisor.run_dir.mkdir()
        supervisor.pid_file("kafka-1").write_text(
            forged.format(
                pid=other.pid, start=start, start_plus_one=start + 1, boot=process.boot_id()
            )
        )
        assert supervisor.pid("kafka-1") is None
        supervisor.kill("kafka-1", timeout=1)
        time.sleep(0.2)
        assert other.poll() is None, "a process the supervisor did not start was signalled"
        assert not supervisor.pid_file("kafka-1").exists()
        supervisor.spawn("kafka-1", SLEEPER)  # not taken for running: spawned anew
        assert supervisor.pid("kafka-1") not in (None, other.pid)
        supervisor.kill("kafka-1", timeout=10)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_the_start_time_is_read_past_a_command_name_with_spaces_and_parentheses(
    tmp_path: Path,
) -> None:
    odd = tmp_path / "a b) (c"
    odd.symlink_to("/bin/sleep")
    proc = subprocess.Popen([str(odd), "60"])
    try:
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
        assert "(a b) (c)" in stat
        assert process.start_ticks(proc.pid) == int(stat.rsplit(")", 1)[1].split()[19])
    finally:
        proc.kill()
        proc.wait()
    assert process.start_ticks(proc.pid) is None  # reaped: gone


TASKMANAGER = Daemon("flink-*-taskexecutor.pid", "org.example.TaskManagerRunner", "taskexecutor")


def daemon_like(conf_dir: Path, main: str = TASKMANAGER.main) -> subprocess.Popen[bytes]:
    """A process whose command line looks like a Flink daemon's, as flink-daemon.sh starts it."""
    script = "import time; time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", script, main, "--configDir", str(conf_dir)])
    # The interpreter may be a launcher that execs the real one: wait for the final command line.
    deadline = time.monotonic() + 10
    while main not in process.cmdline(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc


def launching_like(tmp_path: Path, kind: str, conf_dir: Path) -> subprocess.Popen[bytes]:
    """A process whose command line is flink-daemon.sh's, as the pid it lists is while the
    script still expands the java command line."""
    script = tmp_path / "flink-daemon.sh"
    script.write_text("sleep 60\n")
    proc = subprocess.Popen(["bash", str(script), "start", kind, "--configDir", str(conf_dir)])
    deadline = time.monotonic() + 10
    while str(script) not in process.cmdline(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc


def test_pid_files_written_by_others_count_only_for_the_daemon_of_this_conf_dir(
    tmp_path: Path,
) -> None:
    supervisor = Supervisor(tmp_path / "run", tmp_path / "logs")
    supervisor.run_dir.mkdir()
    conf = tmp_path / "flink-conf"
    ours = daemon_like(conf)
    ours_launching = launching_like(tmp_path, "taskexecutor", conf)
    other_stack = daemon_like(tmp_path / "elsewhere" / "flink-conf")
    other_daemon = daemon_like(conf, main="org.example.StandaloneSessionClusterEntrypoint")
    other_launching = launching_like(tmp_path, "standalonesession", conf)
    unrelated = subprocess.Popen(["sleep", "60"])
    processes = [ours, ours_launching, other_stack, other_daemon, other_launching, unrelated]
    try:
        # Flink's scripts write their own pid files, possibly several pids each.
        listed = supervisor.run_dir / "flink-x-taskexecutor.pid"
        listed.write_text("".join(f"{p.pid}\n" for p in processes) + "999999999\nnot-a-pid\n")
        mine = [ours.pid, ours_launching.pid]
        assert supervisor.listed_pids(TASKMANAGER, conf) == mine
        assert supervisor.signal_listed(TASKMANAGER, signal.SIGKILL, conf) == mine
        assert ours.wait(timeout=10) == ours_launching.wait(timeout=10) == -signal.SIGKILL
        time.sleep(0.2)
        assert [p.poll() for p in processes[2:]] == [None, None, None, None]
        assert not listed.exists()
        assert supervisor.listed_pids(TASKMANAGER, conf) == []
    finally:
        for p in processes:
            p.kill()
            p.wait()


def test_down_stops_exactly_the_recorded_processes_in_reverse_order(tmp_path: Path) -> None:
    stack = Stack(state=tmp_path / "state", brokers=2)
    claim(stack.state)  # as `up` does
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
    assert (conf / "workers").read_text() == "localhost\n"
    lib = {p.name for p in (tmp_path / "flink-lib").iterdir()}
    assert any(name.startswith("flink-python-") for name in lib)
    assert paths.CONNECTOR_JAR_NAME in lib

    for sub in ("logs/flink", "flink/checkpoints", "flink/savepoints", "flink/tmp", "run"):
        assert (tmp_path / sub).is_dir()
    # Temporary files and working directories stay in the stack's directory.
    options = yaml.safe_load(text)
    assert options["io"]["tmp"]["dirs"] == str(stack.flink.tmp_dir()) == f"{tmp_path}/flink/tmp"
    for process_kind in ("jobmanager", "taskmanager", "client"):
        java_options = options["env"]["java"]["opts"][process_kind].split()
        assert f"-Djava.io.tmpdir={tmp_path}/flink/tmp" in java_options
    env = stack.flink_env()
    assert env["FLINK_CONF_DIR"] == str(conf)
    assert env["FLINK_PID_DIR"] == str(tmp_path / "run")
    assert env["FLINK_LOG_DIR"] == str(tmp_path / "logs" / "flink")
    assert env["FLINK_LIB_DIR"] == str(tmp_path / "flink-lib")


def test_writing_the_flink_conf_again_leaves_what_did_not_change_in_place(tmp_path: Path) -> None:
    """Each `flink` command writes the conf dir and several run at once: a file or the lib
    dir another command reads is only replaced (whole) when it changes."""
    stack = Stack(state=tmp_path)
    conf = stack.write_flink_conf()
    lib = tmp_path / "flink-lib"
    before = {path: path.stat().st_ino for path in [lib, *conf.iterdir()]}
    jars = sorted(link.name for link in lib.iterdir())
    stack.write_flink_conf()
    assert {path: path.stat().st_ino for path in [lib, *conf.iterdir()]} == before
    (conf / "workers").write_text("elsewhere\n")
    next(lib.iterdir()).unlink()
    stack.write_flink_conf()
    assert (conf / "workers").read_text() == "localhost\n"
    assert lib.stat().st_ino != before[lib]
    assert sorted(link.name for link in lib.iterdir()) == jars
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("flink-lib.")] == []


def test_a_second_cluster_writes_its_ports_and_is_found_by_them_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BETHOS_TASK_SLOTS", "16")
    ports = flink.FlinkPorts(rest=8091, rpc=6133, metrics=range(9270, 9281))
    second = Stack(state=tmp_path / "a").with_flink(
        flink.FlinkCluster(
            tmp_path / "b", Supervisor(tmp_path / "b/run", tmp_path / "b/logs"), ports=ports
        )
    )
    conf = second.write_flink_conf()
    assert conf == tmp_path / "b" / "flink-conf"
    options = yaml.safe_load((conf / "config.yaml").read_text())
    assert options["rest"]["port"] == 8091
    assert options["web"]["access-control-allow-origin"] == "http://localhost:8091"
    assert options["jobmanager"]["rpc"]["port"] == 6133
    assert options["metrics"]["reporter"]["prom"]["port"] == "9270-9280"
    assert options["taskmanager"]["numberOfTaskSlots"] == 16
    assert (conf / "masters").read_text() == "localhost:8091\n"
    assert second.flink.rest_url == "http://127.0.0.1:8091"
    # `bethos` run on that state directory finds the cluster by its conf.
    assert Stack(state=tmp_path / "b").flink.ports == ports
    assert Stack(state=tmp_path / "a").flink.ports == flink.FlinkPorts()
    # The rest of the stack stays the first one's; its Prometheus scrapes the second cluster.
    assert second.state == tmp_path / "a"
    scraped = yaml.safe_load(second.prometheus.write_config().read_text())
    assert scraped["scrape_configs"][0]["static_configs"][0]["targets"] == [
        f"127.0.0.1:{port}" for port in range(9270, 9281)
    ]
    assert Stack(state=tmp_path / "a").prometheus.metrics_ports == flink.FLINK_METRICS_PORTS
    assert Stack(state=tmp_path / "b").prometheus.metrics_ports == range(9270, 9281)


def test_a_local_job_run_finds_the_connector_jar_the_install_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bethos_flink.environment import local_connector_jar

    for cache in (None, str(tmp_path)):
        if cache is None:
            monkeypatch.delenv("BETHOS_CACHE", raising=False)
        else:
            monkeypatch.setenv("BETHOS_CACHE", cache)
        assert local_connector_jar() == paths.connector_jar()


def test_a_stopped_child_is_not_alive_while_it_waits_to_be_reaped() -> None:
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    # `true` exits at once and stays a zombie until reaped; _alive reaps it.
    while process._alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process._alive(child.pid)


def test_stopping_flink_signals_no_stale_pid_of_its_pid_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flink's stop-cluster.sh kills every live pid of its pid files: after a crash those may
    be other processes'. The stack clears them first; only a process of its own conf dir goes."""
    monkeypatch.setenv("FLINK_IDENT_STRING", "bethos-test")
    monkeypatch.setattr(flink, "port_open", lambda port: False)  # another cluster's 8081
    stack = Stack(state=tmp_path)
    conf = stack.write_flink_conf()
    ours = daemon_like(conf, main=flink.TASKMANAGER.main)
    # Reaped as soon as it ends, as a real TaskManager (no child of this process) would be.
    reaper = threading.Thread(target=ours.wait)
    reaper.start()
    unrelated = subprocess.Popen(["sleep", "60"])
    try:
        pid_files = [
            tmp_path / "run" / f"flink-bethos-test-{d}.pid"
            for d in ("taskexecutor", "standalonesession")
        ]
        pid_files[0].write_text(f"{unrelated.pid}\n{ours.pid}\n")
        pid_files[1].write_text(f"{unrelated.pid}\n")
        leftovers(stack.flink.tmp_dir())
        stack.flink.stop(progress=lambda line: None)
        reaper.join(timeout=30)
        assert ours.returncode == -signal.SIGTERM
        time.sleep(0.5)
        assert unrelated.poll() is None, "stop signalled a process that is not the cluster's"
        assert not any(p.exists() for p in pid_files)
        # What the stopped processes left in their temporary directory went with them.
        assert list(stack.flink.tmp_dir().iterdir()) == []
    finally:
        for proc in (ours, unrelated):
            proc.kill()
            proc.wait()


def leftovers(tmp: Path) -> set[str]:
    """What killed Flink processes leave in `io.tmp.dirs`: working directories and temp files."""
    names = {"jm_dead", "tm_localhost:1-dead", "flink-io-x", "blobStore-x"}
    for name in names:
        (tmp / name / "blobStorage").mkdir(parents=True)
        (tmp / name / "blobStorage" / "job.jar").write_bytes(b"x" * 1024)
    (tmp / "jaas-1.conf").write_text("")
    return names | {"jaas-1.conf"}


@pytest.fixture
def quiet_flink(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Flink's scripts not run but recorded, and no cluster answering on 8081."""
    calls: list[tuple[str, ...]] = []

    def script(self: flink.FlinkCluster, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        calls.append((name, *args))
        return subprocess.CompletedProcess([name, *args], 0, "", "")

    monkeypatch.setattr(flink.FlinkCluster, "_script", script)
    monkeypatch.setattr(flink, "port_open", lambda port: False)
    return calls


def test_a_fresh_start_removes_what_killed_flink_processes_left(
    tmp_path: Path, quiet_flink: list[tuple[str, ...]]
) -> None:
    stack = Stack(state=tmp_path)
    stack.write_flink_conf()
    leftovers(stack.flink.tmp_dir())
    stack.flink.start()
    assert list(stack.flink.tmp_dir().iterdir()) == []
    assert quiet_flink == [("jobmanager.sh", "start"), ("taskmanager.sh", "start")]


def test_a_new_jobmanager_removes_only_the_dead_ones_dir_while_taskmanagers_run(
    tmp_path: Path, quiet_flink: list[tuple[str, ...]]
) -> None:
    """After a JobManager crash the TaskManagers live on: their files stay."""
    stack = Stack(state=tmp_path)
    conf = stack.write_flink_conf()
    tmp = stack.flink.tmp_dir()
    names = leftovers(tmp)
    running = daemon_like(conf, main=flink.TASKMANAGER.main)
    try:
        (tmp_path / "run" / "flink-x-taskexecutor.pid").write_text(f"{running.pid}\n")
        stack.flink.start()
        assert {item.name for item in tmp.iterdir()} == names - {"jm_dead"}
        assert quiet_flink == [("jobmanager.sh", "start")]  # its one TaskManager runs
    finally:
        running.kill()
        running.wait()


def test_taskmanagers_started_after_a_kill_remove_the_killed_ones_dirs(
    tmp_path: Path, quiet_flink: list[tuple[str, ...]]
) -> None:
    stack = Stack(state=tmp_path)
    stack.write_flink_conf()
    tmp = stack.flink.tmp_dir()
    names = leftovers(tmp)
    stack.start_taskmanager()
    assert {item.name for item in tmp.iterdir()} == names - {"tm_localhost:1-dead"}
    assert quiet_flink == [("taskmanager.sh", "start")]


def test_up_with_the_jobmanager_running_starts_a_missing_taskmanager(
    tmp_path: Path, quiet_flink: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TaskManager killed while the JobManager runs: the JobManager still lists it until its
    heartbeat times out, so the cluster is healthy only once a process runs again."""
    monkeypatch.setattr(flink, "port_open", lambda port: True)
    monkeypatch.setattr(flink.FlinkCluster, "registered_taskmanagers", lambda self: 1)
    stack = Stack(state=tmp_path)
    stack.write_flink_conf()
    assert not stack.flink.healthy()
    stack.flink.start()
    assert quiet_flink == [("taskmanager.sh", "start")]


def test_waiting_for_flink_starts_a_taskmanager_that_died_meanwhile(
    tmp_path: Path, quiet_flink: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up` waits with `healthy_again`: a TaskManager that ends after `start` checked it (a
    fatal task error while the JobManager comes back) is started again, not waited for."""
    monkeypatch.setattr(flink, "port_open", lambda port: True)
    monkeypatch.setattr(flink.FlinkCluster, "registered_taskmanagers", lambda self: 1)
    stack = Stack(state=tmp_path)
    stack.write_flink_conf()
    assert not stack.flink.healthy_again()
    assert quiet_flink == [("taskmanager.sh", "start")]
    monkeypatch.setattr(flink, "port_open", lambda port: False)
    assert not stack.flink.healthy_again()  # no JobManager answers: nothing to start yet
    assert quiet_flink == [("taskmanager.sh", "start")]
