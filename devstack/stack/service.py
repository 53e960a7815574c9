"""What the stack needs of each service, and the common case: one supervised process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from devstack.stack.health import port_open
from devstack.stack.process import Supervisor

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    detail: str


class Service(Protocol):
    """One service of the local stack: started, checked, stopped, and where it logs."""

    @property
    def name(self) -> str: ...

    @property
    def log_file(self) -> Path:
        """The log whose tail explains a failed start."""
        ...

    def start(self) -> None:
        """Start (idempotent) without waiting; `healthy` says when it serves."""
        ...

    def healthy(self) -> bool:
        """Whether it serves; may raise while it does not."""
        ...

    def stop(self, progress: Progress) -> None:
        """Stop what was started, abruptly if need be; says what it stops."""
        ...

    def status(self) -> list[ServiceStatus]: ...


def process_status(name: str, pid: int | None, port: int) -> ServiceStatus:
    return ServiceStatus(
        name,
        pid is not None and port_open(port),
        f"pid {pid}, 127.0.0.1:{port}" if pid else "stopped",
    )


class SingleProcess:
    """A service that is one supervised process listening on one loopback port."""

    name: str
    port: int

    def __init__(self, state: Path, processes: Supervisor) -> None:
        self.state = state
        self.processes = processes

    @property
    def log_file(self) -> Path:
        return self.processes.log_file(self.name)

    def stop(self, progress: Progress) -> None:
        if self.processes.pid(self.name) is not None:
            progress(f"stopping {self.name} ...")
        self.processes.kill(self.name)

    def status(self) -> list[ServiceStatus]:
        return [process_status(self.name, self.processes.pid(self.name), self.port)]
