"""The state directory of a local stack, and the guard on deleting it.

`up` claims the directory with a marker file; `down --purge` deletes only a directory that
holds the marker, and never `/`, the home directory, the project's root or a directory above
any of them, marker or not: `BETHOS_STATE` set by mistake must not cost a home directory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from devstack import paths
from devstack.exceptions import StackError

MARKER = ".bethos-stack"
# Files that only a bethos stack writes: a directory holding one is the state of a stack from
# before the marker, which `up` claims.
STACK_FILES = ("kafka/cluster-id", "flink-conf/config.yaml")
# Below this, a stack starts but soon fails in ways that do not name the disk (a TaskManager's
# blobs alone are hundreds of MB; Flink's job upload breaks off with `Broken pipe`).
MIN_FREE_BYTES = 2 * 1024**3


def protected(state: Path) -> bool:
    """Whether `state` is, or holds, the file system root, the home directory or the project."""
    resolved = state.resolve()
    keep = (Path("/"), Path.home().resolve(), paths.PROJECT_ROOT.resolve())
    return any(resolved == kept or resolved in kept.parents for kept in keep)


def _refuse_protected(state: Path, what: str) -> None:
    if protected(state):
        raise StackError(
            f"refusing to {what} {state}: it is or holds the root, the home directory or the "
            "project; set BETHOS_STATE to a directory of its own"
        )


def claim(state: Path) -> None:
    """Create `state` for a stack, or take over an empty one or one of a stack from before the
    marker, and mark it as a stack's. Any other directory is refused."""
    _refuse_protected(state, "keep a stack's state in")
    if (state / MARKER).is_file():
        return
    made_by_a_stack = any((state / name).is_file() for name in STACK_FILES)
    if state.exists() and any(state.iterdir()) and not made_by_a_stack:
        raise StackError(
            f"refusing to keep a stack's state in {state}: it holds files but no bethos "
            "stack's; set BETHOS_STATE to a new or empty directory"
        )
    state.mkdir(parents=True, exist_ok=True)
    (state / MARKER).write_text(
        "The state of a bethos local stack: `bethos down --purge` deletes this directory.\n"
    )


def check_purgeable(state: Path) -> None:
    """Raise StackError unless `state` is a stack's state directory that may be deleted."""
    _refuse_protected(state, "delete")
    if state.is_symlink():
        raise StackError(f"refusing to delete {state}: it is a symbolic link")
    if not (state / MARKER).is_file():
        raise StackError(
            f"refusing to delete {state}: it has no {MARKER} file, so `bethos up` did not make "
            "it; delete it yourself if it is yours"
        )


def check_free_space(state: Path, minimum: int = MIN_FREE_BYTES) -> None:
    """Raise StackError when the disk that holds (or will hold) `state` has less than
    `minimum` bytes free."""
    existing = next(path for path in (state, *state.parents) if path.exists())
    free = shutil.disk_usage(existing).free
    if free < minimum:
        raise StackError(
            f"only {free / 1024**3:.1f} GiB free on the disk of {state}; the stack needs at "
            f"least {minimum / 1024**3:.0f} GiB (Kafka's logs, Flink's blobs and checkpoints). "
            "Free some: `bethos down --purge` deletes a stack's state"
        )
