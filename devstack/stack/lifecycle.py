"""Stop, resume and upgrade a job by its name, keeping its state in savepoints.

- `stop_job` takes a savepoint into `<state>/flink/savepoints/<job>/` (or cancels: then only
  the retained checkpoints keep the state).
- `resume_job` starts the current code from the newest savepoint or retained checkpoint of the
  job: after a stop, a cancel or a JobManager crash.
- `upgrade_job` stops with a savepoint and starts the current code from it. In thread mode one
  Python interpreter per TaskManager serves every job and keeps the modules it imported, so new
  code needs new TaskManagers: the other bethos jobs are stopped with savepoints too, the
  TaskManagers restarted, and every job started from its savepoint with the same current code.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bethos.exceptions import BethosError
from devstack.stack import jobs
from devstack.stack.local import Stack

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RestorePoint:
    path: Path
    kind: str  # "savepoint" or "checkpoint"
    written_at: float

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


def running_job_id(stack: Stack, job: str) -> str | None:
    ids = [job_id for name, job_id in jobs.running_jobs(stack) if name == job]
    if len(ids) > 1:
        raise BethosError(f"{len(ids)} jobs named {job!r} run: {', '.join(ids)}; stop all but one")
    return ids[0] if ids else None


def _require_known(job: str) -> None:
    if job not in jobs.JOBS:
        raise BethosError(f"unknown job {job!r}; valid: {', '.join(jobs.JOBS)}")


def savepoint_dir(stack: Stack, job: str) -> Path:
    return stack.flink.state / "flink" / "savepoints" / job


def stop_job(stack: Stack, job: str, cancel: bool = False) -> str | None:
    """Stop the running `job` with a savepoint and return its path; with `cancel`, cancel it
    (None)."""
    _require_known(job)
    job_id = running_job_id(stack, job)
    if job_id is None:
        raise BethosError(f"no job named {job!r} runs on the cluster")
    return jobs.stop(stack, job_id, None if cancel else str(savepoint_dir(stack, job)))


def restore_points(stack: Stack, job: str) -> list[RestorePoint]:
    """The savepoints and retained checkpoints of every Flink job the job has been since it was
    last started without state, newest first (by the time their metadata was written). Flink
    names a savepoint `savepoint-<first 6 of its job id>-<random>`."""
    recorded = jobs.submission(stack, job).get("job_ids", [])
    job_ids = [str(job_id) for job_id in recorded] if isinstance(recorded, list) else []
    prefixes = {f"savepoint-{job_id[:6]}-" for job_id in job_ids}
    found = [
        RestorePoint(meta.parent, "savepoint", meta.stat().st_mtime)
        for meta in savepoint_dir(stack, job).glob("*/_metadata")
        if any(meta.parent.name.startswith(prefix) for prefix in prefixes)
    ]
    checkpoints = stack.flink.state / "flink" / "checkpoints"
    for job_id in job_ids:
        found += [
            RestorePoint(meta.parent, "checkpoint", meta.stat().st_mtime)
            for meta in (checkpoints / str(job_id)).glob("chk-*/_metadata")
        ]
    return sorted(found, key=lambda point: point.written_at, reverse=True)


@dataclass(frozen=True)
class StartOptions:
    """How `resume` and `upgrade` start a job; unset, as it last ran."""

    config: str | None = None
    parallelism: int | None = None
    # Without it Flink refuses a restore point that holds state the job would drop.
    allow_non_restored_state: bool = False
    code: Path | None = None  # a zip of `devstack.package`; default the current code


# Flink's words when a restore point holds state of an operator the new job does not have.
_DROPPED_STATE = re.compile(
    r"Cannot map checkpoint/savepoint state for operator \S+ to the new program[^.]*\."
)


def failure_summary(stacktrace: str) -> str:
    """The line of a Flink stack trace that says why: its deepest `Caused by`, else its first."""
    lines = [line.strip() for line in stacktrace.splitlines() if line.strip()]
    causes = [line.removeprefix("Caused by: ") for line in lines if line.startswith("Caused by:")]
    return (causes[-1] if causes else lines[0] if lines else "no reason given")[:1000]


def refusal(job: str, point: str, text: str) -> BethosError | None:
    """When Flink's answer `text` says that the restore point holds state the new job would
    drop: that, in plain words; else None."""
    dropped = _DROPPED_STATE.search(text)
    if dropped is None:
        return None
    return BethosError(
        f"Flink refused to start {job} from {point}: it holds state that the new job would drop "
        f"({dropped.group(0)}). The restore point is kept: start {job} as it was with "
        f"`bethos resume {job} --config <its old config>`, or drop that state with "
        "--allow-non-restored-state"
    )


def task_statuses(detail: dict[str, object]) -> list[str]:
    """The status of each task (job vertex) in a job's details from the REST API."""
    vertices = detail.get("vertices")
    if not isinstance(vertices, list):
        return []
    return [str(v.get("status")) for v in vertices if isinstance(v, dict)]


def started(detail: dict[str, object]) -> bool:
    """A job runs and every task of it runs or has finished. A bounded source (the merger's
    bootstrap from the latest topic) finishes, and one that had finished before a savepoint
    is FINISHED at once when the job is restored from it."""
    tasks = task_statuses(detail)
    return (
        detail.get("state") == "RUNNING"
        and "RUNNING" in tasks
        and all(status in ("RUNNING", "FINISHED") for status in tasks)
    )


def await_started(stack: Stack, job: str, job_id: str, point: str, timeout_s: float = 180) -> None:
    """Wait until every task of a job started from `point` runs or has finished (a bounded
    source). `flink run -d` returns once the job is accepted (a restore point that Flink
    refuses at once fails `flink run` itself); a job that fails afterwards, or never runs, is
    raised here with Flink's reason."""
    deadline = time.monotonic() + timeout_s
    while True:
        detail = stack.flink.job(job_id)
        state = detail.get("state")
        if started(detail):
            return
        if state in ("FAILED", "CANCELED", "FINISHED"):
            trace = stack.flink.job_failure(job_id)
            raise refusal(job, point, trace) or BethosError(
                f"{job} ({job_id}) did not start from {point}: {state}, "
                f"{failure_summary(trace)}; `bethos resume {job}` tries again"
            )
        if time.monotonic() > deadline:
            raise BethosError(
                f"{job} ({job_id}) does not run {timeout_s:.0f}s after its start from {point} "
                f"(state {state}, tasks {sorted(set(task_statuses(detail)))}); "
                "see the Flink dashboard"
            )
        time.sleep(0.5)


def _submit_from(stack: Stack, job: str, point: str, options: StartOptions) -> str:
    """Submit `job` from the restore point `point` and wait until it runs (`await_started`)."""
    last = jobs.submission(stack, job)
    config = options.config or (str(last["config"]) if last.get("config") else None)
    parallelism = options.parallelism
    if parallelism is None and isinstance(last.get("parallelism"), int):
        parallelism = int(last["parallelism"])  # type: ignore[call-overload]
    env = last.get("env")
    extra_env = {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {}
    try:
        job_id = jobs.submit(
            stack,
            job,
            config,
            savepoint=point,
            parallelism=parallelism,
            extra_env=extra_env,
            allow_non_restored_state=options.allow_non_restored_state,
            code=options.code,
        )
    except BethosError as exc:  # `flink run` itself may already report Flink's refusal
        raise refusal(job, point, str(exc)) or exc from None
    await_started(stack, job, job_id, point)
    return job_id


def resume_job(
    stack: Stack, job: str, options: StartOptions = StartOptions(), progress: Progress = print
) -> tuple[RestorePoint, str]:
    """Start `job` from its newest savepoint or retained checkpoint; returns that point and
    the new Flink job id."""
    _require_known(job)
    if running_job_id(stack, job) is not None:
        raise BethosError(f"{job} runs already: `bethos upgrade {job}` restarts it")
    points = restore_points(stack, job)
    if not points:
        raise BethosError(
            f"no savepoint or retained checkpoint of {job} under {stack.flink.state / 'flink'}; "
            f"`bethos submit {job}` starts it without state"
        )
    progress(f"starting {job} from its newest {points[0]} ...")
    return points[0], _submit_from(stack, job, str(points[0].path), options)


@dataclass(frozen=True)
class Upgrade:
    savepoint: str
    job_id: str
    restarted: dict[str, str]  # the other jobs: name -> new job id


def upgrade_job(
    stack: Stack, job: str, options: StartOptions = StartOptions(), progress: Progress = print
) -> Upgrade:
    """Stop `job` with a savepoint and start the current code (or `options.code`) from it
    (see the module)."""
    _require_known(job)
    if running_job_id(stack, job) is None:
        raise BethosError(f"no job named {job!r} runs: `bethos resume {job}` starts it")
    progress(f"stopping {job} with a savepoint ...")
    savepoint = stop_job(stack, job)
    assert savepoint is not None
    progress(f"{job}: savepoint {savepoint}")
    others: dict[str, str] = {}
    for name, _ in jobs.running_jobs(stack):
        if name in jobs.JOBS and name != job:
            progress(f"stopping {name} with a savepoint (it shares the TaskManagers) ...")
            point = stop_job(stack, name)
            assert point is not None
            others[name] = point
    stack.flink.restart_taskmanagers(progress)
    progress(f"starting {job} from {savepoint} with the current code ...")
    refused: BethosError | None = None
    try:
        job_id = _submit_from(stack, job, savepoint, options)
    except BethosError as exc:
        refused = exc  # the other jobs are started again all the same
    restarted = {}
    for name, point in others.items():
        progress(f"starting {name} from {point} ...")
        restarted[name] = _submit_from(stack, name, point, StartOptions(code=options.code))
    if refused is not None:
        raise refused
    return Upgrade(savepoint, job_id, restarted)
