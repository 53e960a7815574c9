"""The zip every job brings holds every package a job imports, and only those."""

from __future__ import annotations

from devstack.deploy import image
from devstack.package import PACKAGES, package_files
from tests.unit.test_boundaries import FLOORS, ROOT, imports_of


def test_the_zip_holds_every_package_the_jobs_import() -> None:
    needed: set[str] = set()
    files = sorted((ROOT / "jobs").glob("*.py"))
    seen: set[str] = set()
    while files:
        path = files.pop()
        for name in imports_of(path):
            top = name.split(".")[0]
            if top in FLOORS and top not in seen:
                seen.add(top)
                needed.add(top)
                files.extend((ROOT / top).rglob("*.py"))
    assert needed == set(PACKAGES)
    assert {name.split("/")[0] for name, _ in package_files()} == set(PACKAGES)
    # The image holds them too, where `-pyfs` finds them.
    assert set(PACKAGES) <= set(image.CODE_PARTS)
