"""Per-pod ETL progress in a file (`checkpoint_path`), where a job started without state
(no savepoint, no retained checkpoint) resumes.

The file is JSON: `{"version": 1, "pods": {"<pod>": <completed_until epoch ms>, ...}}`.

Progress reaches it only once Kafka has acknowledged the window's records. The ETL hands a
journal entry per settled window (`journal_entry`) to Flink's FileSink, writing into the
directory `<checkpoint_path>.journal`, after the window's records. The FileSink makes its part
files visible only when a checkpoint completes, and a checkpoint completes only after the Kafka
sink flushed and was acknowledged for everything handed to it before the checkpoint's barrier.
So a visible part file names only acknowledged windows. `fold` moves them into the JSON file;
`load` reads both.

- `save` and `fold` are atomic: the new content goes to a temporary file in the same directory,
  is fsynced, and replaces the old file with `os.replace`; the directory is fsynced too. A reader
  therefore sees the old or the new file, never a half-written one.
- Several writers (Flink subtasks owning different pods) share one file: `save` and `fold`
  read, merge and write under an exclusive `fcntl.flock` on `<path>.lock`, so no writer loses
  another's pods. flock is reliable on a local file system; do not put the file on NFS.
- Progress never moves backwards: a pod's saved value is the maximum of what is in the file and
  what is being saved. Pods are never removed (a pod dropped from the config keeps its entry).
- A missing file means no progress yet (`{}`). A file that exists but cannot be read or parsed
  is an error (ProgressFileError), never silently treated as empty: since writes are atomic,
  such a file was damaged from outside, and starting every pod again from `backfill` could skip
  data older than the backfill; a write would also overwrite the evidence. The message names the
  file; deleting it restarts every pod from `backfill`. The same holds for a journal part.
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
JOURNAL_SUFFIX = ".journal"


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


def _load_file(path: Path) -> dict[str, int]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ProgressFileError(f"cannot read progress file {path}: {exc.strerror}") from None
    return _parse(raw, path)


def journal_dir(path: str | Path) -> Path:
    """Where the FileSink writes the acknowledged progress, next to the progress file."""
    return Path(f"{path}{JOURNAL_SUFFIX}")


def journal_entry(pod: str, completed_until: int) -> str:
    """One line of the journal: a pod's progress once its window's records are acknowledged."""
    return orjson.dumps({"pod": pod, "completed_until": completed_until}).decode()


def _committed_parts(journal: Path) -> list[Path]:
    """The journal's visible part files; the FileSink's in-progress and pending files are
    hidden (their names start with a dot) until a checkpoint commits them."""
    try:
        names = sorted(os.listdir(journal))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ProgressFileError(f"cannot list progress journal {journal}: {exc.strerror}") from None
    return [journal / name for name in names if not name.startswith((".", "_"))]


def _read_part(part: Path) -> dict[str, int] | None:
    """A part file's progress per pod (the largest per pod); None when it is gone (folded)."""
    try:
        raw = part.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ProgressFileError(
            f"cannot read progress journal file {part}: {exc.strerror}"
        ) from None
    pods: dict[str, int] = {}
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry: Any = orjson.loads(line)
            pod, until = entry["pod"], entry["completed_until"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            pod, until = None, None
        if not isinstance(pod, str) or not pod or not _is_int(until):
            raise ProgressFileError(
                f"progress journal file {part}, line {number}: expected "
                f'{{"pod": "...", "completed_until": <epoch ms>}}, not {line[:200]!r}; '
                "delete the file to resume from the progress before it"
            )
        pods[pod] = max(until, pods.get(pod, until))
    return pods


def _merge(into: dict[str, int], progress: Mapping[str, int]) -> None:
    for pod, until in progress.items():
        into[pod] = max(until, into.get(pod, until))


def load(path: str | Path) -> dict[str, int]:
    """Pod -> completed_until (epoch ms) from the file and its journal; {} when neither exists.

    Needs no lock: the journal is read before the file, and `fold` writes the file before it
    deletes the parts it folded, so a part that vanishes here is already in the file.
    """
    path = Path(path)
    progress: dict[str, int] = {}
    for part in _committed_parts(journal_dir(path)):
        _merge(progress, _read_part(part) or {})
    _merge(progress, _load_file(path))
    return progress


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


def _save_locked(path: Path, progress: Mapping[str, int]) -> dict[str, int]:
    current = _load_file(path)
    merged = dict(current)
    _merge(merged, progress)
    if merged != current or not path.exists():
        doc = {"version": FORMAT_VERSION, "pods": dict(sorted(merged.items()))}
        _write_atomically(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    return merged


def save(path: str | Path, progress: Mapping[str, int]) -> dict[str, int]:
    """Merge `progress` into the file (per pod, the larger value wins) and return the file's
    content. Other pods' entries are kept. Nothing is written when nothing would change.
    """
    for pod, until in progress.items():
        if not isinstance(pod, str) or not pod:
            raise ValueError(f"pod must be a non-empty string, not {pod!r}")
        if not _is_int(until):
            raise ValueError(f"progress of pod {pod!r} must be an integer (epoch ms): {until!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        return _save_locked(path, progress)


def fold(path: str | Path) -> dict[str, int]:
    """Move the journal's committed parts into the file and return the file's content.

    The file is written (atomically) before the parts are deleted, so a crash in between only
    leaves parts whose progress the file already holds.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        parts = _committed_parts(journal_dir(path))
        if not parts:
            return _load_file(path)
        journal: dict[str, int] = {}
        for part in parts:
            _merge(journal, _read_part(part) or {})
        merged = _save_locked(path, journal)
        for part in parts:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
    return merged
