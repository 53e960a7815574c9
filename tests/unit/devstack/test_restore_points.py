"""Which savepoints and retained checkpoints `bethos resume` may restore a job from."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from devstack.stack import Stack
from devstack.stack.jobs import record_submission
from devstack.stack.lifecycle import restore_points


class StateOnly:
    """A stack's state directory and its Flink cluster's (the same one, as for a local stack)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.flink = self


def point(directory: Path) -> None:
    directory.mkdir(parents=True)
    (directory / "_metadata").write_bytes(b"x")


def test_a_job_started_without_state_does_not_restore_an_earlier_runs_points(
    tmp_path: Path,
) -> None:
    stack = cast(Stack, StateOnly(tmp_path))
    config = tmp_path / "merger.yaml"
    checkpoints = tmp_path / "flink" / "checkpoints"
    savepoints = tmp_path / "flink" / "savepoints" / "latest_merger"

    def submitted(job_id: str, restored: bool) -> None:
        record_submission(stack, "latest_merger", job_id, config, None, {}, restored=restored)

    old, resumed, fresh = "a" * 32, "b" * 32, "c" * 32
    submitted(old, restored=False)
    point(checkpoints / old / "chk-3")
    point(savepoints / f"savepoint-{old[:6]}-0123456789ab")
    submitted(resumed, restored=True)
    point(checkpoints / resumed / "chk-9")
    found = {p.path.name for p in restore_points(stack, "latest_merger")}
    assert found == {"chk-3", "chk-9", f"savepoint-{old[:6]}-0123456789ab"}

    # Another run of the job, started without state (other topics, say): before its first
    # checkpoint there is nothing to resume from.
    submitted(fresh, restored=False)
    assert restore_points(stack, "latest_merger") == []
    point(checkpoints / fresh / "chk-1")
    (latest,) = restore_points(stack, "latest_merger")
    assert latest.path == checkpoints / fresh / "chk-1"
    assert cast(Any, latest).kind == "checkpoint"
