from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pytest

from bethos.exceptions import ProgressFileError
from bethos.source import progress_file


def test_a_missing_file_is_no_progress(tmp_path: Path) -> None:
    assert progress_file.load(tmp_path / "progress.json") == {}


def test_save_then_load(tmp_path: Path) -> None:
    path = tmp_path / "state" / "progress.json"  # the directory is created
    assert progress_file.save(path, {"ingest-1": 1_000, "ingest-2": 2_000}) == {
        "ingest-1": 1_000,
        "ingest-2": 2_000,
    }
    assert progress_file.load(path) == {"ingest-1": 1_000, "ingest-2": 2_000}
    doc = orjson.loads(path.read_bytes())
    assert doc == {"version": 1, "pods": {"ingest-1": 1_000, "ingest-2": 2_000}}
    # No temporary file is left behind; only the file and its lock file.
    assert sorted(p.name for p in path.parent.iterdir()) == ["progress.json", "progress.json.lock"]


def test_other_pods_entries_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    progress_file.save(path, {"a": 10})
    progress_file.save(path, {"b": 20})
    assert progress_file.load(path) == {"a": 10, "b": 20}


def test_progress_never_goes_backwards(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    progress_file.save(path, {"a": 100, "b": 5})
    assert progress_file.save(path, {"a": 50, "b": 6}) == {"a": 100, "b": 6}
    assert progress_file.load(path) == {"a": 100, "b": 6}


def test_nothing_is_written_when_nothing_changes(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    progress_file.save(path, {"a": 100})
    before = path.stat().st_ino
    progress_file.save(path, {"a": 99})
    assert path.stat().st_ino == before  # not replaced
    progress_file.save(path, {"a": 101})
    assert path.stat().st_ino != before  # replaced atomically, a new inode


def test_two_writers_for_different_pods_both_survive(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    rounds = 200
    errors: list[BaseException] = []

    def writer(pod: str) -> None:
        try:
            for value in range(1, rounds + 1):
                progress_file.save(path, {pod: value})
                assert progress_file.load(path)[pod] == value
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(pod,)) for pod in ("pod-a", "pod-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert progress_file.load(path) == {"pod-a": rounds, "pod-b": rounds}


def test_concurrent_writers_of_one_pod_keep_the_maximum(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    values = [list(range(i, 600, 3)) for i in range(3)]

    threads = [
        threading.Thread(
            target=lambda vs=vs: [progress_file.save(path, {"p": v}) for v in reversed(vs)]
        )
        for vs in values
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert progress_file.load(path) == {"p": 599}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not valid JSON"),
        (b'{"version": 1, "pods": {"a": 1', "not valid JSON"),
        (b"[]", "expected an object with version 1"),
        (b'{"version": 2, "pods": {}}', "expected an object with version 1"),
        (b'{"version": 1, "pods": []}', "'pods' must be an object"),
        (b'{"version": 1, "pods": {"a": "12"}}', "pod 'a' needs an integer"),
        (b'{"version": 1, "pods": {"a": true}}', "pod 'a' needs an integer"),
        (b'{"version": 1, "pods": {"a": 1.5}}', "pod 'a' needs an integer"),
        (b'{"version": 1, "pods": {"": 1}}', "pod '' needs an integer"),
    ],
)
def test_a_corrupt_file_is_an_error_naming_it(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "progress.json"
    path.write_bytes(content)
    with pytest.raises(ProgressFileError, match=message) as info:
        progress_file.load(path)
    assert str(path) in str(info.value) and "delete it" in str(info.value)
    # save refuses too, and leaves the damaged file as it was.
    with pytest.raises(ProgressFileError):
        progress_file.save(path, {"a": 5})
    assert path.read_bytes() == content


@pytest.mark.parametrize("progress", [{"": 1}, {"a": "1"}, {"a": True}, {"a": 1.0}])
def test_save_refuses_bad_input(tmp_path: Path, progress: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        progress_file.save(tmp_path / "progress.json", progress)
    assert not (tmp_path / "progress.json").exists()


def part(path: Path, name: str, *progress: tuple[str, int]) -> Path:
    """A part file as Flink's FileSink leaves it in the journal."""
    journal = progress_file.journal_dir(path)
    journal.mkdir(parents=True, exist_ok=True)
    file = journal / name
    file.write_text("".join(progress_file.journal_entry(p, u) + "\n" for p, u in progress))
    return file


def test_load_takes_the_largest_of_the_file_and_the_committed_journal(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    progress_file.save(path, {"a": 5_000, "b": 9_000})
    part(path, "progress-x-0-0.jsonl", ("a", 6_000), ("a", 7_000), ("c", 1_000))
    part(path, "progress-y-1-0.jsonl", ("b", 8_000))
    # In progress or pending: not acknowledged yet, so not progress.
    part(path, ".progress-x-0-1.jsonl.inprogress.0f3c", ("a", 99_000))
    assert progress_file.load(path) == {"a": 7_000, "b": 9_000, "c": 1_000}


def test_fold_moves_the_committed_journal_into_the_file(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    progress_file.save(path, {"a": 5_000})
    part(path, "progress-x-0-0.jsonl", ("a", 6_000), ("b", 2_000))
    hidden = part(path, ".progress-x-0-1.jsonl.inprogress.0f3c", ("a", 99_000))
    assert progress_file.fold(path) == {"a": 6_000, "b": 2_000}
    assert orjson.loads(path.read_bytes())["pods"] == {"a": 6_000, "b": 2_000}
    assert list(progress_file.journal_dir(path).iterdir()) == [hidden]
    assert progress_file.fold(path) == {"a": 6_000, "b": 2_000}  # nothing more to fold


def test_fold_without_a_journal_or_a_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "progress.json"
    assert progress_file.fold(path) == {}
    assert progress_file.load(path) == {}


@pytest.mark.parametrize(
    "line",
    [b"not json", b'{"pod": "", "completed_until": 1}', b'{"pod": "a", "completed_until": "1"}'],
)
def test_a_damaged_journal_part_is_an_error_naming_it(tmp_path: Path, line: bytes) -> None:
    path = tmp_path / "progress.json"
    damaged = part(path, "progress-x-0-0.jsonl", ("a", 1_000))
    damaged.write_bytes(damaged.read_bytes() + line + b"\n")
    for call in (progress_file.load, progress_file.fold):
        with pytest.raises(ProgressFileError, match=f"{damaged}, line 2"):
            call(path)
    assert damaged.exists()  # the evidence stays
