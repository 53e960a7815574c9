"""Per-pod ETL progress in a file (`checkpoint_path`), for running without Flink checkpoints.

The file is JSON: `{"version": 1, "pods": {"<pod>": <completed_until epoch ms>, ...}}`.

- `save` is atomic: the new content goes to a temporary file in the same directory, is fsynced,
  and replaces the old file with `os.replace`; the directory is fsynced too. A reader therefore
  sees the old or the new file, never a half-written one.
- Several writers (Flink subtasks owning different pods) share one file: `save` reads, merges and
  writes under an exclusive `fcntl.flock` on `<path>.lock`, so no writer loses another's pods.
  flock is reliable on a local file system; do not put the file on NFS.
- Progress never moves backwards: a pod's saved value is the maximum of what is in the file and
  what is being saved. Pods are never removed (a pod dropped from the config keeps its entry).
- A missing file means no progress yet (`{}`). A file that exists but cannot be read or parsed
  is an error (ProgressFileError), never silently treated as empty: since writes are atomic,
  such a file was damaged from outside, and starting every pod again from `backfill` could skip
  data older than the backfill; `save` would also overwrite the evidence. The message names the
  file; deleting it restarts every pod from `backfill`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from bethos.exceptions import ProgressFileError

FORMAT_VERSION = 1


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse(raw: bytes, path: Path) -> dict[str, int]:
    hint = "fix it, or delete it to restart every pod from backfill"
    try:
        doc: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProgressFileError(f"progress file {path} is not valid JSON ({exc}); {hint}") from None
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        raise ProgressFileError(
            f"progress file {path}: expected an object with version {FORMAT_VERSION}; {hint}"
        )
    pods = doc.get("pods")
    if not isinstance(pods, dict):
        raise ProgressFileError(f"progress file {path}: 'pods' must be an object; {hint}")
    for pod, until in pods.items():
        if not pod or not _is_int(until):
            raise ProgressFileError(
                f"progress file {path}: pod {pod!r} needs an integer (epoch ms), "
                f"not {until!r}; {hint}"
            )
    return dict(pods)


def load(path: str | Path) -> dict[str, int]:
    """Pod -> completed_until (epoch ms); {} when the file does not exist."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ProgressFileError(f"cannot read progress file {path}: {exc.strerror}") from None
    return _parse(raw, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save(path: str | Path, progress: Mapping[str, int]) -> dict[str, int]:
    """Merge `progress` into the file (per pod, the larger value wins) and return the result.

    Other pods' entries are kept. Nothing is written when nothing would change.
    """
    for pod, until in progress.items():
        if not isinstance(pod, str) or not pod:
            raise ValueError(f"pod must be a non-empty string, not {pod!r}")
        if not _is_int(until):
            raise ValueError(f"progress of pod {pod!r} must be an integer (epoch ms): {until!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        current = load(path)
        merged = dict(current)
        for pod, until in progress.items():
            merged[pod] = max(until, current.get(pod, until))
        if merged != current or not path.exists():
            doc = {"version": FORMAT_VERSION, "pods": dict(sorted(merged.items()))}
            _write_atomically(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    return merged
