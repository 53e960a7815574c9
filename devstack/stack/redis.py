"""Redis on loopback with an append-only file under `state/redis`."""

from __future__ import annotations

import shutil
import socket

from devstack.exceptions import StackError
from devstack.stack.service import SingleProcess

REDIS_PORT = 6379


class Redis(SingleProcess):
    name = "redis"
    port = REDIS_PORT

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError("redis: redis-server not installed; run scripts/install.sh")
        base = self.state / "redis"
        base.mkdir(parents=True, exist_ok=True)
        self.processes.spawn(
            self.name,
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--protected-mode",
                "yes",
                "--port",
                str(self.port),
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

    def healthy(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
