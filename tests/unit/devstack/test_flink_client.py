"""The warm Flink client without a JVM: its protocol, and the JVM options it takes."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from devstack.stack import flink_client


@pytest.fixture
def echo_server(tmp_path: Path) -> Iterator[Path]:
    """A server answering as the warm client does: the arguments back, and one variable of
    the environment it was sent."""
    path = tmp_path / "client.sock"

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline()
            if not line:
                return
            request = json.loads(line)
            output = " ".join(request["args"]) + " " + request["env"]["WHO"]
            self.wfile.write(json.dumps({"rc": 3, "output": output}).encode() + b"\n")

    server = socketserver.UnixStreamServer(str(path), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()


def test_a_command_goes_with_its_environment_and_comes_back_with_its_code(
    echo_server: Path,
) -> None:
    assert flink_client.available(echo_server)
    assert flink_client.run(echo_server, ["run", "-d"], {"WHO": "me"}) == (3, "run -d me")


def test_no_server_is_not_available(tmp_path: Path) -> None:
    assert not flink_client.available(tmp_path / "none.sock")


def test_the_jvm_takes_the_clusters_openings_and_the_clients_properties(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "env": {
                    "java": {
                        "opts": {
                            "all": "--add-opens=java.base/java.util=ALL-UNNAMED",
                            "client": "-Djava.io.tmpdir=/x -XX:TieredStopAtLevel=1",
                        }
                    }
                }
            }
        )
    )
    # The C1-only flags are for short-lived JVMs; this one lives for the whole run.
    assert flink_client._java_options(tmp_path) == [
        "--add-opens=java.base/java.util=ALL-UNNAMED",
        "-Djava.io.tmpdir=/x",
    ]
