"""InfluxDB 1.x (`influxd`) on loopback, its data under `state/influxdb`."""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

from devstack.exceptions import StackError
from devstack.stack.service import SingleProcess

INFLUXDB_PORT = 8086


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


class InfluxDB(SingleProcess):
    name = "influxdb"
    port = INFLUXDB_PORT

    def start(self) -> None:
        binary = shutil.which("influxd")
        if binary is None:
            raise StackError("influxdb: influxd not installed; run scripts/install.sh")
        config = write_influxdb_config(self.state / "influxdb", self.port)
        self.processes.spawn(self.name, [binary, "-config", str(config)])

    def healthy(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=2) as r:
            return bool(r.status == 204)
