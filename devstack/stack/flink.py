"""A Flink standalone cluster from the apache-flink wheel: a JobManager and its TaskManagers.

Flink's own scripts start and stop it; they write their pid files into the stack's `run/`.
The conf dir (`state/flink-conf`) is the project's `flink-conf/config.yaml` with its
`@NAME@` placeholders filled in, plus the wheel's log4j files.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from devstack import paths
from devstack.exceptions import StackError
from devstack.stack.health import http_json, port_open
from devstack.stack.loopback_http import provider_jar
from devstack.stack.process import Daemon, Supervisor
from devstack.stack.service import Progress, ServiceStatus

FLINK_REST_PORT = 8081
FLINK_RPC_PORT = 6123
# Each JobManager and TaskManager takes the first free port of this range for its Prometheus
# reporter; Prometheus scrapes them all.
FLINK_METRICS_PORTS = range(9250, 9261)


@dataclass(frozen=True)
class FlinkPorts:
    """The ports a local cluster listens on (the others Flink picks itself). A second cluster
    beside the stack's (the tests run one) takes others, which its written conf keeps."""

    rest: int = FLINK_REST_PORT
    rpc: int = FLINK_RPC_PORT
    metrics: range = FLINK_METRICS_PORTS

    @classmethod
    def written_in(cls, conf: Path) -> FlinkPorts | None:
        """The ports of a conf that `write_conf` wrote, if there is one."""
        try:
            doc = yaml.safe_load(conf.read_text())
        except (OSError, yaml.YAMLError):
            return None
        try:
            low, high = (int(p) for p in str(doc["metrics"]["reporter"]["prom"]["port"]).split("-"))
            return cls(
                int(doc["rest"]["port"]),
                int(doc["jobmanager"]["rpc"]["port"]),
                range(low, high + 1),
            )
        except (KeyError, TypeError, ValueError):
            return None


# The pid files Flink's scripts write into `run/`, and the entry point their processes run: a pid
# in them is signalled only while its process runs that entry point with this stack's conf dir.
JOBMANAGER = Daemon(
    "flink-*-standalonesession.pid",
    "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint",
    "standalonesession",
)
TASKMANAGER = Daemon(
    "flink-*-taskexecutor.pid",
    "org.apache.flink.runtime.taskexecutor.TaskManagerRunner",
    "taskexecutor",
)
# One by default: the `memory` store of `state_store` lives in one TaskManager's interpreter.
# `bethos up --taskmanagers 2` (and the deploy test) spread a job's subtasks over two
# (`taskmanager.load-balance.mode`), as on any real cluster.
TASKMANAGERS = 1


class FlinkCluster:
    name = "flink"

    def __init__(
        self,
        state: Path,
        processes: Supervisor,
        taskmanagers: int = TASKMANAGERS,
        ports: FlinkPorts | None = None,
    ) -> None:
        self.state = state
        self.processes = processes
        self.taskmanagers = taskmanagers
        self.ports = ports or FlinkPorts.written_in(self.conf_dir() / "config.yaml") or FlinkPorts()

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.rest}"

    @property
    def log_dir(self) -> Path:
        return self.processes.log_dir / "flink"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "flink-standalonesession.log"

    def conf_dir(self) -> Path:
        return self.state / "flink-conf"

    def tmp_dir(self) -> Path:
        """Flink's `io.tmp.dirs` (flink-conf/config.yaml): its temporary files and the
        `jm_*` and `tm_*` working directories of its processes."""
        return self.state / "flink" / "tmp"

    def _remove_leftovers(self, pattern: str) -> None:
        """Remove what processes that no longer run left in `tmp_dir`. Flink's processes
        leave their working directories behind when stopped by a signal, as its scripts and
        the fault tests stop them."""
        for item in self.tmp_dir().glob(pattern):
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)

    def write_conf(self) -> Path:
        conf = self.conf_dir()
        conf.mkdir(parents=True, exist_ok=True)
        wheel_conf = paths.flink_home() / "conf"
        for item in wheel_conf.iterdir():
            if item.name.startswith("log4j") or item.name.startswith("logback"):
                write_if_changed(conf / item.name, item.read_bytes())
        template = (paths.PROJECT_ROOT / "flink-conf" / "config.yaml").read_text()
        text = (
            template.replace("@STATE@", str(self.state))
            .replace("@PYTHON@", str(paths.cluster_python()))
            .replace("@METRICS_PORTS@", f"{self.ports.metrics[0]}-{self.ports.metrics[-1]}")
        )
        for line, written, wanted in (
            ("    port: {}", FLINK_RPC_PORT, self.ports.rpc),
            ("  port: {}", FLINK_REST_PORT, self.ports.rest),
            (
                "  access-control-allow-origin: http://localhost:{}",
                FLINK_REST_PORT,
                self.ports.rest,
            ),
        ):
            text, count = re.subn(rf"(?m)^{line.format(written)}$", line.format(wanted), text)
            if count != 1:
                raise StackError(f"flink-conf/config.yaml: no line {line.format(written)!r}")
        slots = paths.task_slots()
        if slots is not None:
            text, count = re.subn(r"(?m)^(  numberOfTaskSlots:) \d+$", rf"\g<1> {slots}", text)
            if count != 1:
                raise StackError("flink-conf/config.yaml: no taskmanager.numberOfTaskSlots line")
        write_if_changed(conf / "config.yaml", text.encode())
        self._write_lib()
        write_if_changed(conf / "masters", f"localhost:{self.ports.rest}\n".encode())
        write_if_changed(conf / "workers", ("localhost\n" * self.taskmanagers).encode())
        for sub in ("logs/flink", "flink/checkpoints", "flink/savepoints", "flink/tmp", "run"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        return conf

    def _write_lib(self) -> None:
        """The wheel's lib/ plus flink-python from opt/ and the Kafka connector, as a Flink
        distribution with the connector installed has them (`flink run` plans SQL with lib/),
        and the provider that keeps the reporters' HTTP servers on loopback (`loopback_http.py`).

        With flink-python on the cluster's own classpath, pemja loads libpython once per
        TaskManager; loaded per job instead, a second Python job on the same TaskManager fails
        (`NoSuchFieldException: loadedLibraryNames` on Java 17).
        """
        lib = self.state / "flink-lib"
        home = paths.flink_home()
        jars = [
            *(home / "lib").glob("*.jar"),
            *(home / "opt").glob("flink-python-*.jar"),
            paths.connector_jar(),
            provider_jar(),
        ]
        wanted = {jar.name: str(jar) for jar in jars}
        if lib.is_dir() and {link.name: os.readlink(link) for link in lib.iterdir()} == wanted:
            return  # as it is: a command running beside this one keeps reading it
        fresh = Path(tempfile.mkdtemp(prefix="flink-lib.", dir=self.state))
        for name, target in wanted.items():
            (fresh / name).symlink_to(target)
        stale = self.state / f"{fresh.name}.stale"
        if lib.exists():
            lib.rename(stale)
        fresh.rename(lib)
        shutil.rmtree(stale, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """The environment of Flink's scripts and CLI: the cluster's Python first on PATH (a
        TaskManager's embedded interpreter is the `python` PATH finds, whatever
        `python.executable` says), the project's venv off it; our dirs."""
        env = dict(os.environ)
        project_bin = str(Path(paths.python_executable()).parent)
        rest = [entry for entry in env.get("PATH", "").split(os.pathsep) if entry != project_bin]
        env["PATH"] = os.pathsep.join([str(paths.cluster_python().parent), *rest])
        env["FLINK_CONF_DIR"] = str(self.conf_dir())
        env["FLINK_LIB_DIR"] = str(self.state / "flink-lib")
        env["FLINK_LOG_DIR"] = str(self.log_dir)
        env["FLINK_PID_DIR"] = str(self.processes.run_dir)
        return env

    def bin(self, name: str) -> str:
        return str(paths.flink_home() / "bin" / name)

    def taskmanager_logs(self) -> list[Path]:
        return sorted(self.log_dir.glob("*taskexecutor*.log"))

    def start(self) -> None:
        """Start the JobManager and the TaskManagers that do not run (after a JobManager crash
        the TaskManagers live on and register with the new one; after a TaskManager crash the
        JobManager lists the dead one until its heartbeat times out, so the processes are
        counted, not the registrations)."""
        if port_open(self.ports.rest):
            self.start_taskmanagers()
            return
        if not self.processes.listed_pids(JOBMANAGER, self.conf_dir()):
            taskmanagers = self.taskmanager_pids()
            # After a JobManager crash the TaskManagers live on: only the dead one's goes.
            self._remove_leftovers("jm_*" if taskmanagers else "*")
        self.write_conf()
        result = self._script("jobmanager.sh", "start")
        if result.returncode != 0:
            raise StackError(f"flink: jobmanager.sh start failed: {result.stderr or result.stdout}")
        self.start_taskmanagers()

    def kill_jobmanager(self) -> None:
        """SIGKILL the JobManager (fault tests): its jobs end with it, their retained
        checkpoints stay."""
        self._signal(JOBMANAGER, signal.SIGKILL)

    def _script(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        # Run from the stack's directory: no process of the cluster starts in the repository,
        # where `import bethos` would find the code without the job bringing it.
        self.state.mkdir(parents=True, exist_ok=True)
        return subprocess.run(
            [self.bin(name), *args], env=self.env(), cwd=self.state, capture_output=True, text=True
        )

    def registered_taskmanagers(self) -> int:
        overview = http_json(f"{self.rest_url}/overview")
        return int(overview.get("taskmanagers", 0)) if isinstance(overview, dict) else 0

    def healthy(self) -> bool:
        """Its TaskManagers run and as many are registered (a dead one may still be listed for
        a while: each new one registers within seconds of its start)."""
        running = len(self.taskmanager_pids())
        return running >= self.taskmanagers and self.registered_taskmanagers() >= self.taskmanagers

    def healthy_again(self) -> bool:
        """`healthy`, first starting the TaskManagers missing while the JobManager answers: `up`
        waits with it, since a TaskManager can end itself meanwhile (seen: a task's Kafka
        transaction abort timed out while the JobManager came back, a fatal error to Flink)."""
        if port_open(self.ports.rest):
            self.start_taskmanagers()
        return self.healthy()

    def taskmanager_pids(self) -> list[int]:
        """The running TaskManagers of this cluster's conf dir."""
        return self.processes.listed_pids(TASKMANAGER, self.conf_dir())

    def taskmanager_process_size(self) -> str:
        """A TaskManager's whole memory as the cluster's config.yaml sets it (`1728m`)."""
        conf = yaml.safe_load((self.conf_dir() / "config.yaml").read_text())
        return str(conf["taskmanager"]["memory"]["process"]["size"])

    def _pids(self) -> list[int]:
        """The running JobManager and TaskManagers of this stack's conf dir."""
        return [
            pid
            for daemon in (JOBMANAGER, TASKMANAGER)
            for pid in self.processes.listed_pids(daemon, self.conf_dir())
        ]

    def stop(self, progress: Progress) -> None:
        """stop-cluster.sh on the pid files cleared of pids that are not this cluster's;
        whatever still runs after 30 s is killed."""
        progress("stopping flink ...")
        if not self.conf_dir().exists():
            return
        for daemon in (JOBMANAGER, TASKMANAGER):
            self.processes.prune_listed(daemon, self.conf_dir())
        # Every TaskManager, however many run (stop-cluster.sh stops one per `workers` line).
        self._script("taskmanager.sh", "stop-all")
        self._script("jobmanager.sh", "stop")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (port_open(self.ports.rest) or self._pids()):
            time.sleep(0.5)
        for daemon in (JOBMANAGER, TASKMANAGER):
            self._signal(daemon, signal.SIGKILL)
        # A process stopped by its script (SIGTERM) keeps its working directory too.
        if not self._pids():
            self._remove_leftovers("*")

    def status(self) -> list[ServiceStatus]:
        try:
            healthy = self.healthy()
        except OSError:
            healthy = False
        detail = f"dashboard http://localhost:{self.ports.rest}" if healthy else "stopped"
        return [ServiceStatus(self.name, healthy, detail)]

    def kill_taskmanager(self) -> None:
        """SIGKILL every TaskManager of the cluster (fault tests)."""
        self._signal(TASKMANAGER, signal.SIGKILL)

    def _signal(self, daemon: Daemon, signum: int) -> None:
        self.processes.signal_listed(daemon, signum, self.conf_dir())

    def start_taskmanagers(self) -> None:
        """Start TaskManagers until the cluster has its number of them running."""
        running = len(self.taskmanager_pids())
        if not running:
            self._remove_leftovers("tm_*")
        for _ in range(self.taskmanagers - running):
            result = self._script("taskmanager.sh", "start")
            if result.returncode != 0:
                raise StackError(f"flink: taskmanager.sh start failed: {result.stderr}")

    def restart_taskmanagers(self, progress: Progress, timeout_s: float = 120) -> None:
        """Stop every TaskManager and start fresh ones: in thread mode one Python interpreter per
        TaskManager keeps the modules it imported, so new code needs new processes."""
        progress(f"restarting {self.taskmanagers} TaskManagers (fresh Python interpreters) ...")
        before = self.taskmanager_ids()
        self.processes.prune_listed(TASKMANAGER, self.conf_dir())
        self._script("taskmanager.sh", "stop-all")
        deadline = time.monotonic() + 30
        while self.taskmanager_pids():
            if time.monotonic() > deadline:
                self.kill_taskmanager()
                break
            time.sleep(0.5)
        self.start_taskmanagers()
        progress(
            f"waiting up to {timeout_s:.0f}s for {self.taskmanagers} new TaskManagers to register"
        )
        deadline = time.monotonic() + timeout_s
        while len(self.taskmanager_ids() - before) < self.taskmanagers:
            if time.monotonic() > deadline:
                raise StackError(f"flink: {self.taskmanagers} TaskManagers not registered in time")
            time.sleep(1)

    def scale_taskmanagers(self, count: int, timeout_s: float = 120) -> None:
        """Run `count` TaskManagers: start the missing ones, or stop the last started."""
        self.taskmanagers = count
        running = len(self.taskmanager_pids())
        for _ in range(running - count):
            self.processes.prune_listed(TASKMANAGER, self.conf_dir())
            self._script("taskmanager.sh", "stop")
        self.start_taskmanagers()
        # A stopped TaskManager leaves the JobManager's list before its process has exited.
        deadline = time.monotonic() + timeout_s
        while self.registered_taskmanagers() != count or len(self.taskmanager_pids()) != count:
            if time.monotonic() > deadline:
                raise StackError(f"flink: not {count} TaskManagers running and registered in time")
            time.sleep(1)

    def taskmanager_ids(self) -> set[str]:
        """The ids of the TaskManagers registered with the JobManager."""
        answer = http_json(f"{self.rest_url}/taskmanagers")
        managers = answer.get("taskmanagers", []) if isinstance(answer, dict) else []
        return {str(manager["id"]) for manager in managers if isinstance(manager, dict)}

    def cancel(self, job_id: str) -> None:
        """Cancel a job through the REST API (`PATCH /jobs/ID?mode=cancel`), without starting a
        client JVM: the tests' clean-up. `bethos stop --cancel` uses Flink's CLI as users do."""
        url = f"{self.rest_url}/jobs/{job_id}?mode=cancel"
        with urllib.request.urlopen(urllib.request.Request(url, method="PATCH"), timeout=10):
            pass

    def job(self, job_id: str) -> dict[str, object]:
        """One job's details (`state`, its `vertices` with their `status`) from the REST API."""
        answer = http_json(f"{self.rest_url}/jobs/{job_id}")
        return answer if isinstance(answer, dict) else {}

    def job_failure(self, job_id: str) -> str:
        """The newest failure in a job's exception history, its stack trace; "" if none."""
        failures = self.job_failures(job_id)
        return failures[0] if failures else ""

    def job_failures(self, job_id: str) -> list[str]:
        """The failures in a job's exception history, newest first: their stack traces."""
        url = f"{self.rest_url}/jobs/{job_id}/exceptions?maxExceptions=20"
        answer = http_json(url)
        history = answer.get("exceptionHistory", {}) if isinstance(answer, dict) else {}
        entries = history.get("entries", []) if isinstance(history, dict) else []
        return [
            str(entry.get("stacktrace") or entry.get("exceptionName") or "")
            for entry in entries
            if isinstance(entry, dict)
        ]

    def jobs(self) -> list[dict[str, object]]:
        """The cluster's jobs as its REST API lists them; none when it does not answer."""
        try:
            overview = http_json(f"{self.rest_url}/jobs/overview")
        except OSError:
            return []
        jobs = overview.get("jobs", []) if isinstance(overview, dict) else []
        return [job for job in jobs if isinstance(job, dict)]


def write_if_changed(path: Path, content: bytes) -> None:
    """Each `flink` command writes the conf dir first, and several may run at once (the
    tests'): a file is replaced whole (renamed over), and only when its content changes, so a
    command never reads one half written."""
    try:
        if path.read_bytes() == content:
            return
    except FileNotFoundError:
        pass
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(fd, 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    os.replace(temporary, path)
