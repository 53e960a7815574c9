"""The Dockerfile's pins against pyproject.toml and devstack/paths.py, its paths against
devstack/deploy/image.py. The image is not built here (no Docker on this machine)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest
from packaging.specifiers import SpecifierSet

from devstack import paths
from devstack.deploy import flink_conf, image
from tests.unit.devstack.deploy.conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def global_args() -> dict[str, str]:
    """The ARGs before the first FROM, with their defaults."""
    args: dict[str, str] = {}
    for word, rest in instructions():
        if word == "FROM":
            break
        if word == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
    return args


def test_the_pins_are_pyprojects_and_devstack_paths() -> None:
    args = global_args()
    assert args["FLINK_VERSION"] == image.pinned("apache-flink") == image.flink_version()
    assert args["KAFKA_CONNECTOR"] == paths.CONNECTOR_ARTIFACT
    # The connector is built per Flink minor version: 5.0.0-2.2 for Flink 2.2.
    major_minor = ".".join(args["FLINK_VERSION"].split(".")[:2])
    assert args["KAFKA_CONNECTOR"].endswith(f"-{major_minor}")
    requires = SpecifierSet(image.pyproject()["project"]["requires-python"])
    assert requires.contains(args["PYTHON_VERSION"] + ".0")


def test_pinned_reads_an_exact_pin_only() -> None:
    assert image.pinned("apache-flink").count(".") == 2
    with pytest.raises(ValueError, match="orjson"):
        image.pinned("orjson")  # a range, not a pin


def test_the_image_is_the_official_flink_one_of_that_version() -> None:
    froms = [rest for word, rest in instructions() if word == "FROM"]
    assert froms[-1] == "flink:${FLINK_VERSION}-java${JAVA_VERSION}"
    assert "python:${PYTHON_VERSION}-slim-bookworm AS python" in froms


def test_the_dependencies_come_from_pyproject_itself() -> None:
    """The Dockerfile's own snippet, run on the repository's pyproject.toml, lists exactly its
    dependencies, which the image then installs."""
    copies = [rest for word, rest in instructions() if word == "COPY"]
    assert "pyproject.toml /tmp/bethos/pyproject.toml" in copies
    runs = " ".join(rest for word, rest in instructions() if word == "RUN")
    snippets = [s for s in re.findall(r'python3 -c "([^"]*)"', runs) if "tomllib" in s]
    assert len(snippets) == 1
    code = snippets[0].replace("/tmp/bethos/pyproject.toml", str(ROOT / "pyproject.toml"))
    listed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert listed == image.pyproject()["project"]["dependencies"]
    assert f"apache-flink=={global_args()['FLINK_VERSION']}" in listed
    assert "> /tmp/bethos/requirements.txt" in runs
    assert "pip install --no-cache-dir -r /tmp/bethos/requirements.txt" in runs
    # The build fails unless the PyFlink wheel is the base image's Flink.
    assert "m.version('apache-flink') != '${FLINK_VERSION}'" in runs
    # bethos itself is not installed: its code travels with each job.
    assert "pip install -e" not in runs and "pip install ." not in runs


def test_the_paths_are_the_images() -> None:
    copies = [shlex.split(rest) for word, rest in instructions() if word == "COPY"]
    plain = {tuple(c) for c in copies if not c[0].startswith("--")}
    for part in image.CODE_PARTS:
        assert (part, f"{image.CODE_DIR}/{part}") in plain
        assert (ROOT / part).is_dir()
    conf = [c for c in copies if c[-1] == f"{image.FLINK_HOME}/conf/config.yaml"]
    assert conf and conf[0][-2] == flink_conf.FLINK_CONF_FILE
    jars = [c for c in copies if c[0] == "--from=jars"]
    assert jars == [["--from=jars", "/jars/", f"{image.FLINK_HOME}/lib/"]]
    assert image.connector_jar().startswith(f"{image.FLINK_HOME}/lib/")
    runs = " ".join(rest for word, rest in instructions() if word == "RUN")
    assert image.python_jar().replace(image.flink_version(), "${FLINK_VERSION}") in runs
    assert f"install -d -o flink -g flink {image.STATE_DIR}" in runs
    assert f"{image.PYTHON} -m pip install" in runs


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    allowed = {
        line[1:]
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for word, rest in instructions():
        if word != "COPY":
            continue
        parts = [p for p in shlex.split(rest) if not p.startswith("--")]
        if any(p.startswith("--from") for p in shlex.split(rest)):
            continue
        for source in parts[:-1]:
            assert (ROOT / source).exists(), source
            assert any(source == a or source.startswith(a + "/") for a in allowed), source
