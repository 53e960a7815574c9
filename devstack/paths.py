"""Where bethos keeps installed components (a cache shared by clones) and runtime state."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

KAFKA_VERSION = "4.1.1"
CONNECTOR_ARTIFACT = "org.apache.flink:flink-sql-connector-kafka:5.0.0-2.2"
CONNECTOR_JAR_NAME = "flink-sql-connector-kafka-5.0.0-2.2.jar"

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    """Downloads that a second install reuses (`BETHOS_CACHE`, default ~/.cache/bethos)."""
    return Path(os.environ.get("BETHOS_CACHE", Path.home() / ".cache" / "bethos"))


def state_dir() -> Path:
    """Data, logs and pid files of the local stack (`BETHOS_STATE`, default ./.bethos)."""
    return Path(os.environ.get("BETHOS_STATE", PROJECT_ROOT / ".bethos"))


def kafka_libs() -> Path:
    return cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"


def connector_jar() -> Path:
    return cache_dir() / "jars" / CONNECTOR_JAR_NAME


def python_executable() -> str:
    """The interpreter of the project's venv, for Flink's Python workers and client."""
    return sys.executable


def cluster_python() -> Path:
    """The interpreter of the local Flink cluster (`BETHOS_CLUSTER_PYTHON`, default
    .venv-cluster): the third-party dependencies without bethos, whose code comes with each job."""
    default = PROJECT_ROOT / ".venv-cluster" / "bin" / "python"
    return Path(os.environ.get("BETHOS_CLUSTER_PYTHON", default))


def flink_home() -> Path:
    """The apache-flink wheel's folder: it ships bin/, lib/, opt/, conf/ of a distribution."""
    spec = importlib.util.find_spec("pyflink")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("apache-flink is not installed; run scripts/install.sh")
    return Path(spec.origin).resolve().parent


def task_slots() -> int | None:
    """The local TaskManagers' slots (`BETHOS_TASK_SLOTS`), when not flink-conf/config.yaml's:
    the tests run several pipelines at once on one TaskManager."""
    value = os.environ.get("BETHOS_TASK_SLOTS")
    return int(value) if value else None
