"""The processes of the local stack: one pid file each under `run/`, output in `logs/NAME.log`.

The stack signals only what it can prove it started. A pid alone proves nothing: once a process
ends, the kernel may give its pid to any other process. So the pid file of a process spawned here
holds the pid, its start time (clock ticks after boot, `/proc/PID/stat` field 22) and the boot's
id; a pid counts only while the process of that id has that start time in that boot. Flink's
scripts write pid files of their own, bare pids: those count only while the process's command
line shows what the stack started (its entry point and its conf dir), see `listed_pids`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _alive(pid: int) -> bool:
    """Whether the process runs. A child of this process that exited stays a zombie until it
    is reaped, and a zombie answers signals: reap it here, or a stop waits out its timeout."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: another process started it (an earlier `bethos up`)
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def boot_id() -> str:
    return _BOOT_ID.read_text().strip()


def start_ticks(pid: int) -> int | None:
    """When process `pid` started, in clock ticks after boot; None when there is no such
    process or it is a zombie (it has ended, only its exit status is left)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2, the command name in parentheses, may hold spaces and parentheses itself.
    fields = stat[stat.rindex(")") + 2 :].split()
    state, starttime = fields[0], fields[19]  # fields 3 and 22
    return None if state in ("Z", "X") else int(starttime)


def cmdline(pid: int) -> list[str]:
    """The process's argv; empty when there is no such process (or it is a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")[:-1] if raw else []


@dataclass(frozen=True)
class Spawned:
    """What identifies a process spawned here, for as long as it runs: its pid, its start time
    and the boot it started in."""

    pid: int
    start: int
    boot: str

    @classmethod
    def of(cls, pid: int) -> Spawned | None:
        start = start_ticks(pid)
        return None if start is None else cls(pid, start, boot_id())

    @classmethod
    def parse(cls, text: str) -> Spawned | None:
        """A pid file's content; None for anything else, a bare pid included: it proves
        nothing."""
        parts = text.split()
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            return None
        return cls(int(parts[0]), int(parts[1]), parts[2])

    def text(self) -> str:
        return f"{self.pid} {self.start} {self.boot}\n"

    def running(self) -> bool:
        """Whether this very process still runs: a process under the same pid that started at
        another time, or in another boot, is another process."""
        return _alive(self.pid) and Spawned.of(self.pid) == self


class Daemon(NamedTuple):
    """Processes that others start and list in pid files (Flink's scripts): the pattern of
    those files, the entry point their processes run and the name `flink-daemon.sh` starts
    them by."""

    pid_files: str
    main: str
    kind: str

    def runs(self, pid: int, conf_dir: Path) -> bool:
        """Whether process `pid` runs the entry point with `--configDir conf_dir`, as Flink's
        scripts start a JobManager or TaskManager of that conf dir, or is about to: the pid
        `flink-daemon.sh` lists is first a copy of the script expanding the java command line
        (its classpath takes a while on a busy machine), then the JVM."""
        argv = cmdline(pid)
        if ("--configDir", str(conf_dir)) not in itertools.pairwise(argv):
            return False
        launching = len(argv) > 2 and argv[1].endswith("flink-daemon.sh") and self.kind in argv
        return self.main in argv or launching


class Supervisor:
    """Spawns, signals and waits for the stack's processes; shared by its services."""

    def __init__(self, run_dir: Path, log_dir: Path) -> None:
        self.run_dir = run_dir
        self.log_dir = log_dir

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def spawned(self, name: str) -> Spawned | None:
        """The running process spawned as `name`, or None (no pid file, or one whose process
        has ended, even if its pid is in use again)."""
        try:
            spawned = Spawned.parse(self.pid_file(name).read_text())
        except OSError:
            return None
        return spawned if spawned is not None and spawned.running() else None

    def pid(self, name: str) -> int | None:
        """The pid of a running process started as `name`, or None."""
        spawned = self.spawned(name)
        return None if spawned is None else spawned.pid

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Start `argv` in a session of its own, unless `name` is already running."""
        if self.pid(name) is not None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file(name), "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        spawned = Spawned.of(proc.pid)
        if spawned is None:  # it ended already; its log says why
            self.pid_file(name).unlink(missing_ok=True)
            return
        partial = self.pid_file(name).with_suffix(".pid.tmp")
        partial.write_text(spawned.text())
        partial.replace(self.pid_file(name))

    def kill(self, name: str, timeout: float = 30.0) -> None:
        """SIGTERM the process group, SIGKILL it after `timeout`; the pid file goes. Each
        signal goes only to a process proven to be the one spawned as `name`."""
        pid = self.pid(name)
        if pid is not None:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.pid(name) is not None:
                time.sleep(0.2)
            if self.pid(name) is not None:
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
        self.pid_file(name).unlink(missing_ok=True)

    def listed_pids(self, daemon: Daemon, conf_dir: Path) -> list[int]:
        """The pids in the pid files of `daemon` that others wrote (Flink's scripts write one
        or more pids a file) whose processes run its entry point with `conf_dir`."""
        return [pid for pid in self._listed(daemon) if _alive(pid) and daemon.runs(pid, conf_dir)]

    def signal_listed(self, daemon: Daemon, signum: int, conf_dir: Path) -> list[int]:
        """Send `signum` to every process of `listed_pids`, then remove the pid files; returns
        the pids signalled."""
        signalled = [
            pid for pid in self._listed(daemon) if send_signal(pid, signum, daemon, conf_dir)
        ]
        for pid_file in self.run_dir.glob(daemon.pid_files):
            pid_file.unlink()
        return signalled

    def prune_listed(self, daemon: Daemon, conf_dir: Path) -> None:
        """Leave in the pid files of `daemon` only the pids of `listed_pids`. Flink's own stop
        scripts signal every pid in them that is alive, whatever runs under it now."""
        for pid_file in self.run_dir.glob(daemon.pid_files):
            words = pid_file.read_text().split()
            kept = [
                w for w in words if w.isdigit() and _alive(int(w)) and daemon.runs(int(w), conf_dir)
            ]
            if not kept:
                pid_file.unlink()
            elif kept != words:
                pid_file.write_text("".join(f"{pid}\n" for pid in kept))

    def _listed(self, daemon: Daemon) -> list[int]:
        return [
            int(word)
            for pid_file in self.run_dir.glob(daemon.pid_files)
            for word in pid_file.read_text().split()
            if word.isdigit()
        ]


def send_signal(pid: int, signum: int, daemon: Daemon, conf_dir: Path) -> bool:
    """Signal `pid` if it runs `daemon` with `conf_dir`; whether it was signalled. The process is
    held by a pidfd while its command line is checked, so the signal cannot reach another
    process that took the pid in between."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if not daemon.runs(pid, conf_dir):
            return False
        signal.pidfd_send_signal(pidfd, signum)
        return True
    except OSError:
        return False
    finally:
        os.close(pidfd)
