"""The Flink environment every job runs in, and what every entry point in jobs/ does.

The `bethos_flink` package is the only place in bethos that imports Flink.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from pyflink.common import Configuration
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from bethos.config import FlinkSettings, load_settings

M = TypeVar("M", bound=BaseModel)

# The Kafka connector, built for this Flink's minor version (devstack/paths.py pins the same).
CONNECTOR_JAR_NAME = "flink-sql-connector-kafka-5.0.0-2.2.jar"


def local_connector_jar() -> Path:
    """The connector jar of a run outside `flink run` (`python jobs/<job>.py`): where
    scripts/install.sh puts it, in the download cache (`BETHOS_CACHE`, default
    ~/.cache/bethos)."""
    cache = Path(os.environ.get("BETHOS_CACHE", Path.home() / ".cache" / "bethos"))
    return cache / "jars" / CONNECTOR_JAR_NAME


def ensure_logging() -> None:
    """Flink's Python workers start without handlers; events go to the worker's stderr."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)


def freeze_loaded_objects() -> None:
    """Take every object alive now (PyFlink, the job's modules, the settings) out of the
    cyclic garbage collector's reach; reference counting still frees them.

    A TaskManager's interpreter holds some 400k long-lived objects, and every full collection
    walks them all: an allocation-heavy loop (parsing a query response) ran about twice as
    slowly in a TaskManager as in a plain interpreter, and as fast once they were frozen.
    """
    gc.freeze()


def submitted_by_flink_run() -> bool:
    """Whether Flink's CLI started this process (it passes the port of its gateway)."""
    return "PYFLINK_GATEWAY_PORT" in os.environ


def create_environments(
    settings: FlinkSettings, checkpoint_interval_ms: int
) -> tuple[StreamExecutionEnvironment, StreamTableEnvironment]:
    """The job's environments; `checkpoint_interval_ms` is the job's resolved interval
    (`EtlSettings` / `MergerSettings.checkpoint_interval_ms`)."""
    config = Configuration()
    config.set_string("python.execution-mode", "thread")
    if not submitted_by_flink_run():
        # Run as `python jobs/<job>.py`: a local cluster in this process, whose workers need
        # this interpreter. Under `flink run` the cluster's own Python runs the workers.
        config.set_string("python.executable", sys.executable)
        config.set_string("python.client.executable", sys.executable)
    # A local run shows its own dashboard on the first free port from rest_port on.
    config.set_string("rest.bind-port", f"{settings.rest_port}-{settings.rest_port + 19}")
    config.set_string("state.backend.type", settings.state_backend)
    compression = "true" if settings.snapshot_compression else "false"
    config.set_string("execution.checkpointing.snapshot-compression", compression)
    if settings.state_backend == "rocksdb":
        config.set_string("execution.checkpointing.incremental", "true")
    env = StreamExecutionEnvironment.get_execution_environment(config)
    if not submitted_by_flink_run():
        # Under `flink run` the cluster's configuration names the connector jar
        # (`pipeline.jars`) or its lib/ holds it.
        env.add_jars(local_connector_jar().as_uri())
    if settings.parallelism is not None:
        env.set_parallelism(settings.parallelism)
    env.set_max_parallelism(settings.max_parallelism)
    env.enable_checkpointing(checkpoint_interval_ms)
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("python.execution-mode", "thread")
    t_env.get_config().set("table.exec.sink.upsert-materialize", "NONE")
    return env, t_env


def run_job(
    description: str,
    model: type[M],
    default_config: str,
    build: Callable[[M], tuple[StreamExecutionEnvironment, Any]],
    name: str,
    argv: list[str] | None = None,
) -> None:
    """What every entry point in jobs/ does: read settings, build the graph, execute."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=os.environ.get("BETHOS_CONFIG", default_config))
    args, _ = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    env, statements = build(load_settings(model, args.config))
    statements.attach_as_datastream()
    env.execute(name)
