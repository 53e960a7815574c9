"""What the container image (`Dockerfile`) holds and where, as the generated files and the
submitter see it. The Dockerfile cannot import this: `tests/unit/devstack/deploy/` checks that
its paths and pins equal these and `pyproject.toml`."""

from __future__ import annotations

import tomllib
from functools import cache
from typing import Any

from devstack import paths

FLINK_HOME = "/opt/flink"
# bethos's code (bethos/, connectors/, bethos_flink/, jobs/, config/, devstack/): the submitter's
# PYTHONPATH and what `-pyfs` ships with each job. It is not installed into the image's Python.
CODE_DIR = "/opt/bethos"
# Flink's state (checkpoints, savepoints) on a volume shared by the JobManager and TaskManagers.
STATE_DIR = "/var/lib/bethos"
# The Python copied from the official python image: the same for client and workers.
PYTHON = "/usr/local/bin/python3"
PYTHON_JAR = FLINK_HOME + "/opt/flink-python-{flink}.jar"
CODE_PARTS = ("bethos", "connectors", "bethos_flink", "jobs", "config", "devstack")


def connector_jar() -> str:
    """In Flink's lib/, as on the local cluster: `flink run` plans the jobs' SQL with it."""
    return f"{FLINK_HOME}/lib/{paths.CONNECTOR_JAR_NAME}"


@cache
def pyproject() -> dict[str, Any]:
    with (paths.PROJECT_ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def pinned(package: str) -> str:
    """The version `pyproject.toml` pins `package` to with `==`; ValueError if it does not."""
    for requirement in pyproject()["project"]["dependencies"]:
        name, sep, version = str(requirement).partition("==")
        if name.strip() == package and sep:
            return version.strip()
    raise ValueError(f"pyproject.toml pins no {package}==VERSION")


def flink_version() -> str:
    return pinned("apache-flink")


def python_jar() -> str:
    return PYTHON_JAR.format(flink=flink_version())


def image_tag() -> str:
    project = pyproject()["project"]
    return f"{project['name']}:{project['version']}"
