"""The code a job brings to any Flink cluster: one zip of the `bethos`, `connectors` and
`bethos_flink` packages.

`flink run -pyfs bethos-<version>-<digest>.zip -py jobs/<job>.py` puts the zip on the path of
the job's client and of its Python workers, so a cluster whose Python has only the third-party
dependencies runs it. (A directory given to `-pyfs` is itself put on the path, so it would
have to hold the packages; one file is easier to keep and to copy.) The digest names the code:
a changed file gives a new zip, the same code the same bytes.
"""

from __future__ import annotations

import hashlib
import zipfile
from importlib.metadata import version
from pathlib import Path

from devstack import paths

PACKAGES = ("bethos", "connectors", "bethos_flink")
# Fixed so that the same code gives the same zip (zip stores local times of day).
_EPOCH = (1980, 1, 1, 0, 0, 0)


def package_files(root: Path = paths.PROJECT_ROOT) -> list[tuple[str, Path]]:
    """(name in the zip, file) of every file of the packages, sorted; no bytecode."""
    files = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append((path.relative_to(root).as_posix(), path))
    return files


def build_package(output_dir: Path, root: Path = paths.PROJECT_ROOT) -> Path:
    """Write `bethos-<version>-<digest>.zip` into `output_dir` (once per code) and return it."""
    files = package_files(root)
    digest = hashlib.sha256()
    for name, path in files:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    target = output_dir / f"bethos-{version('bethos')}-{digest.hexdigest()[:12]}.zip"
    if target.exists():
        return target
    output_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in files:
            entry = zipfile.ZipInfo(name, _EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, path.read_bytes())
    partial.replace(target)
    return target
