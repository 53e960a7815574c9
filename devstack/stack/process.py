"""The processes of the local stack: one pid file each under `run/`, output in `logs/NAME.log`.

The stack stops exactly what it started: a process is known by its pid file, and a pid counts
only while a process of that id is alive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


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


class Supervisor:
    """Spawns, signals and waits for the stack's processes; shared by its services."""

    def __init__(self, run_dir: Path, log_dir: Path) -> None:
        self.run_dir = run_dir
        self.log_dir = log_dir

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def pid(self, name: str) -> int | None:
        """The pid of a running process started as `name`, or None."""
        try:
            pid = int(self.pid_file(name).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

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
        self.pid_file(name).write_text(str(proc.pid))

    def kill(self, name: str, timeout: float = 30.0) -> None:
        """SIGTERM the process group, SIGKILL it after `timeout`; the pid file goes."""
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

    def listed_pids(self, pattern: str) -> list[int]:
        """The live pids in pid files matching `pattern` that others wrote (Flink's scripts
        write one or more pids a file)."""
        pids = []
        for pid_file in self.run_dir.glob(pattern):
            for line in pid_file.read_text().split():
                with contextlib.suppress(ValueError):
                    if _alive(int(line)):
                        pids.append(int(line))
        return pids

    def signal_listed(self, pattern: str, signum: int) -> None:
        """Send `signum` to every pid in pid files matching `pattern`, then remove the files."""
        for pid_file in self.run_dir.glob(pattern):
            for line in pid_file.read_text().split():
                with contextlib.suppress(ValueError, OSError):
                    os.kill(int(line), signum)
            pid_file.unlink()
