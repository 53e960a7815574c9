"""A warm Flink client: Flink's own CLI (`CliFrontend`, what `bin/flink` runs) kept in one
long-lived JVM, which `flink` commands of the local stack go through while it runs.

Every `flink run` starts a JVM that loads Flink's classes, plans the job's SQL with a cold JIT
and exits: 7-8 s and as many core-seconds for the merger on a 2-core machine, 2.5-3 s warm
(docs/DECISIONS.md, "Testing"). The warm client runs the very same `CliFrontend.parseAndRun`
with the same arguments, configuration directory and environment, in a JVM that stays up, so
only the first command pays for the JVM. It is for the test suite, which submits jobs some
seventy times (`tests/integration/conftest.py` starts it): `bin/flink` stays the way users and
`bethos` submit.

    python -m devstack.stack.flink_client STATE_DIR     # serve until the socket is removed

One command runs at a time (the CLI writes its answer to the JVM's `System.out`, which is
swapped for a buffer per command).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import yaml

from devstack import paths

SOCKET_NAME = "flink-client.sock"
ENV_VAR = "BETHOS_FLINK_CLIENT"
"""Set to the socket's path, `flink` commands of devstack go through the warm client."""


def socket_path(state: Path) -> Path:
    """In the temporary directory, named after the stack's: a Unix socket's path may not be
    longer than 107 bytes, which a state directory deep in a checkout can exceed."""
    digest = hashlib.sha1(str(state.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"bethos-{digest}-{SOCKET_NAME}"


def run(socket_file: Path, args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `flink ARGS` in the warm client with the environment `env` (what `bin/flink` would
    run with: the job reads its settings' variables from it): its exit code and output."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(socket_file))
        conn.sendall(json.dumps({"args": args, "env": env}).encode() + b"\n")
        answer = json.loads(conn.makefile("rb").readline())
    return int(answer["rc"]), str(answer["output"])


def available(socket_file: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(socket_file))
        return True
    except OSError:
        return False


# -- the server --------------------------------------------------------------------------------


class _Watchdog:
    """Answers the gateway server's pings: it exits when this process is gone."""

    def ping(self) -> bool:
        time.sleep(10)
        return True

    class Java:
        implements: ClassVar = ["org.apache.flink.client.python.PythonGatewayServer$Watchdog"]


def _java_options(conf_dir: Path) -> list[str]:
    """`env.java.opts.all` (the module openings Flink needs on Java 17) and the client's
    temporary directory from `env.java.opts.client`, without its C1-only flags: this JVM lives
    long enough for the full JIT to pay."""
    conf = yaml.safe_load((conf_dir / "config.yaml").read_text())
    opts = conf.get("env", {}).get("java", {}).get("opts", {})
    client = [opt for opt in str(opts.get("client", "")).split() if opt.startswith("-D")]
    return [*str(opts.get("all", "")).split(), *client]


def _launch_gateway(env: dict[str, str], cwd: Path, log: Path) -> Any:
    """Start a JVM with the cluster's classpath (FLINK_LIB_DIR holds flink-python and the
    connector) serving py4j, the way PyFlink starts one for a local job, its output to `log`;
    return the connected gateway."""
    from py4j.java_gateway import (  # type: ignore[import-untyped]
        CallbackServerParameters,
        GatewayParameters,
        JavaGateway,
    )

    conf_dir = Path(env["FLINK_CONF_DIR"])
    info_dir = Path(tempfile.mkdtemp())
    info_file = info_dir / "port"
    java_home = env.get("JAVA_HOME")
    command = [
        str(Path(java_home, "bin", "java")) if java_home else "java",
        *_java_options(conf_dir),
        f"-Dlog.file={log.with_suffix('.java.log')}",
        f"-Dlog4j.configurationFile={conf_dir / 'log4j-cli.properties'}",
        "-cp",
        os.pathsep.join(str(jar) for jar in sorted(Path(env["FLINK_LIB_DIR"]).glob("*.jar"))),
        "org.apache.flink.client.python.PythonGatewayServer",
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            env={**env, "_PYFLINK_CONN_INFO_PATH": str(info_file)},
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=out,
        )
    while not info_file.is_file():
        if process.poll() is not None:
            raise RuntimeError(f"the client JVM exited ({process.returncode}); see {log}")
        time.sleep(0.1)
    time.sleep(0.1)  # written whole: 4 bytes
    port = struct.unpack("!I", info_file.read_bytes()[:4])[0]
    shutil.rmtree(info_dir, ignore_errors=True)
    gateway = JavaGateway(
        gateway_parameters=GatewayParameters(port=port, auto_convert=True),
        callback_server_parameters=CallbackServerParameters(
            port=0, daemonize=True, daemonize_connections=True
        ),
    )
    # The gateway server exits unless this process's watchdog answers its pings (so it ends
    # with this process), as PyFlink's own get_gateway arranges.
    callback = gateway.get_callback_server()
    gateway.jvm.org.apache.flink.client.python.PythonEnvUtils.resetCallbackClient(
        gateway.java_gateway_server,
        callback.get_listening_address(),
        callback.get_listening_port(),
    )
    gateway.entry_point.put("Watchdog", _Watchdog())
    return gateway


class _Cli:
    def __init__(self, gateway: Any, conf_dir: str) -> None:
        self.gateway = gateway
        self.conf_dir = conf_dir

    def run(self, args: list[str], env: dict[str, str]) -> tuple[int, str]:
        jvm = self.gateway.jvm
        self._set_environment(env)
        system = jvm.java.lang.System
        buffer = jvm.java.io.ByteArrayOutputStream()
        stream = jvm.java.io.PrintStream(buffer, True, "UTF-8")
        saved_out, saved_err = system.out, system.err
        system.setOut(stream)
        system.setErr(stream)
        try:
            self._release_python_gateway_slot()
            # Read per command, as `bin/flink` does: the stack rewrites it before each one. The
            # command's own: a second cluster beside the stack's has a conf dir of its own.
            conf_dir = env.get("FLINK_CONF_DIR", self.conf_dir)
            configuration = jvm.org.apache.flink.configuration.GlobalConfiguration
            configuration = configuration.loadConfiguration(conf_dir)
            cli_class = jvm.org.apache.flink.client.cli.CliFrontend
            command_lines = cli_class.loadCustomCommandLines(configuration, conf_dir)
            cli = cli_class(configuration, command_lines)
            java_args = self.gateway.new_array(jvm.java.lang.String, len(args))
            for index, arg in enumerate(args):
                java_args[index] = arg
            try:
                code = int(cli.parseAndRun(java_args))
            except Exception as error:  # the CLI's own handlers return 1; this is anything else
                stream.println(str(error))
                code = 1
        finally:
            system.setOut(saved_out)
            system.setErr(saved_err)
            stream.flush()
        return code, str(buffer.toString("UTF-8"))

    def _set_environment(self, env: dict[str, str]) -> None:
        """Make `env` the JVM's environment (`System.getenv()`), which the job's Python process
        inherits, as a `bin/flink` started with it would have (the module openings of
        `env.java.opts.all` allow the reflection)."""
        jvm = self.gateway.jvm
        unmodifiable = jvm.java.lang.System.getenv()
        inner = jvm.java.lang.Class.forName("java.util.Collections$UnmodifiableMap")
        field = inner.getDeclaredField("m")
        field.setAccessible(True)
        environment = field.get(unmodifiable)
        for name in list(environment.keySet()):
            if name not in env:
                environment.remove(name)
        for name, value in env.items():
            environment.put(name, value)

    def _release_python_gateway_slot(self) -> None:
        """A JVM holds one registered Python gateway (PythonEnvUtils.gatewayServer), and
        `flink run -py` registers its own: this JVM's gateway, which serves this process and
        needs no registration once connected, gives the slot up."""
        jvm = self.gateway.jvm
        utils = jvm.java.lang.Class.forName("org.apache.flink.client.python.PythonEnvUtils")
        field = utils.getDeclaredField("gatewayServer")
        field.setAccessible(True)
        field.set(None, None)


def serve(state: Path) -> None:
    """Serve `flink` commands for the stack in `state` until the socket file is removed."""
    from devstack.stack.local import Stack

    stack = Stack(state)  # up: its Flink conf dir is written (and again before each command)
    flink_home = paths.flink_home()
    # What bin/flink's config.sh adds to the environment of the CLI it starts.
    flink_dirs = {
        "FLINK_HOME": str(flink_home),
        "FLINK_BIN_DIR": str(flink_home / "bin"),
        "FLINK_OPT_DIR": str(flink_home / "opt"),
        "FLINK_PLUGINS_DIR": str(flink_home / "plugins"),
    }
    env = {**stack.flink_env(), **flink_dirs}
    gateway = _launch_gateway(env, state, stack.log_dir / "flink-client.log")
    cli = _Cli(gateway, env["FLINK_CONF_DIR"])
    path = socket_path(state)
    path.unlink(missing_ok=True)

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline()
            if not line:  # a probe (`available`)
                return
            request = json.loads(line)
            args = [str(arg) for arg in request["args"]]
            env = {str(name): str(value) for name, value in request["env"].items()}
            code, output = cli.run(args, {**env, **flink_dirs})
            self.wfile.write(json.dumps({"rc": code, "output": output}).encode() + b"\n")

    with socketserver.UnixStreamServer(str(path), Handler) as server:
        server.timeout = 1.0
        # Until the tests remove the socket, or `down --purge` the stack.
        while path.exists() and state.exists():
            server.handle_request()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
