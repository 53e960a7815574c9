"""The generated deployment files as committed, parsed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bethos.config import EtlSettings, MergerSettings
from devstack import paths
from devstack.deploy import compose, image, k8s

ROOT = paths.PROJECT_ROOT
JOB_MODELS: dict[str, type[EtlSettings] | type[MergerSettings]] = {
    "etl": EtlSettings,
    "latest_merger": MergerSettings,
    "state_store_publisher": MergerSettings,
}


def in_repo(image_path: str) -> Path:
    """The repository file that the image holds at `image_path` (under its CODE_DIR)."""
    if image_path == image.CODE_DIR:
        return ROOT
    prefix = image.CODE_DIR + "/"
    if not image_path.startswith(prefix):
        raise AssertionError(f"{image_path} is not under {image.CODE_DIR}")
    return ROOT / image_path.removeprefix(prefix)


@pytest.fixture(scope="session")
def compose_file() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / compose.COMPOSE_FILE).read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="session")
def manifests() -> dict[str, list[dict[str, Any]]]:
    """Each file of deploy/k8s/ with its documents."""
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        for path in sorted((ROOT / k8s.K8S_DIR).glob("*.yaml"))
    }
