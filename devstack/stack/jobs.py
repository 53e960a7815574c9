"""Submitting and stopping the jobs on the local Flink cluster through Flink's own CLI, the way
a user does on any cluster: `flink run -pyfs <the code's zip> -py jobs/<job>.py --config FILE`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from bethos.exceptions import BethosError
from devstack import paths
from devstack.package import build_package
from devstack.stack import flink_client
from devstack.stack.local import Stack

# The job's name in Flink (its dashboard, REST API and metrics) and its entry point.
JOBS = {
    "etl": "jobs/etl.py",
    "latest_merger": "jobs/latest_merger.py",
    "state_store_publisher": "jobs/state_store_publisher.py",
}
DEFAULT_CONFIGS = {
    "etl": "config/etl.yaml",
    "latest_merger": "config/latest_merger.yaml",
    "state_store_publisher": "config/state_store.yaml",
}
_JOB_ID = re.compile(r"JobID ([0-9a-f]{32})")
_SAVEPOINT = re.compile(r"Savepoint completed\. Path: (\S+)")


def _flink(stack: Stack, *args: str, extra_env: dict[str, str] | None = None) -> str:
    stack.write_flink_conf()
    env = stack.flink_env()
    env.update(extra_env or {})
    warm = os.environ.get(flink_client.ENV_VAR)
    if warm and flink_client.available(Path(warm)):
        returncode, output = flink_client.run(Path(warm), list(args), env)
    else:
        result = subprocess.run(
            [stack.flink_bin("flink"), *args],
            env=env,
            # Not the repository: the job must find bethos in the zip it brings, nowhere else.
            cwd=stack.state,
            capture_output=True,
            text=True,
        )
        returncode, output = result.returncode, result.stdout + result.stderr
    if returncode != 0:
        lines = [line for line in output.splitlines() if not line.lstrip().startswith("at ")]
        raise BethosError(f"flink {args[0]} failed:\n" + "\n".join(lines[-25:]))
    return output


def package(stack: Stack) -> Path:
    """The zip of the current code (built once per change of the code)."""
    return build_package(stack.state / "packages")


def run_args(
    job: str,
    code: Path,
    config: Path,
    savepoint: str | None = None,
    parallelism: int | None = None,
    allow_non_restored_state: bool = False,
) -> list[str]:
    """The arguments of `flink run` for a job: what a user types on any cluster."""
    args = ["-d"]
    if savepoint:
        args += ["-s", savepoint]
        if allow_non_restored_state:
            args.append("--allowNonRestoredState")
    if parallelism:
        args += ["-p", str(parallelism)]
    script = paths.PROJECT_ROOT / JOBS[job]
    return [*args, "-pyfs", str(code), "-py", str(script), "--config", str(config)]


def submit(
    stack: Stack,
    job: str,
    config: str | None = None,
    savepoint: str | None = None,
    parallelism: int | None = None,
    extra_env: dict[str, str] | None = None,
    allow_non_restored_state: bool = False,
    code: Path | None = None,
) -> str:
    """Start a job detached with the current code (or the zip `code`); returns its Flink job
    id. Without `allow_non_restored_state`, Flink refuses a savepoint that holds state the job
    drops."""
    if job not in JOBS:
        raise BethosError(f"unknown job {job!r}; valid: {', '.join(JOBS)}")
    config_path = Path(config).resolve() if config else paths.PROJECT_ROOT / DEFAULT_CONFIGS[job]
    env = dict(extra_env or {})
    args = run_args(
        job, code or package(stack), config_path, savepoint, parallelism, allow_non_restored_state
    )
    job_id = _job_id(_flink(stack, "run", *args, extra_env=env))
    record_submission(
        stack, job, job_id, config_path, parallelism, extra_env or {}, restored=bool(savepoint)
    )
    return job_id


def run_script(stack: Stack, script: Path, run_args: list[str], extra_env: dict[str, str]) -> str:
    """`flink run -d [run_args] -pyfs <code> -py script`; returns the Flink job id."""
    output = _flink(
        stack,
        "run",
        "-d",
        *run_args,
        "-pyfs",
        str(package(stack)),
        "-py",
        str(script),
        extra_env=extra_env,
    )
    return _job_id(output)


def _job_id(output: str) -> str:
    match = _JOB_ID.search(output)
    if match is None:
        raise BethosError(f"flink run printed no job id:\n{output[-2000:]}")
    return match.group(1)


# -- what each named job ran with, for `resume` and `upgrade` ---------------------------------


def _record_file(stack: Stack, job: str) -> Path:
    # Beside the cluster that ran it: the tests run a second one on the same stack.
    return stack.flink.state / "jobs" / f"{job}.json"


def submission(stack: Stack, job: str) -> dict[str, object]:
    """The last submission of `job` on this stack: config, parallelism, environment and every
    Flink job id it has had (their retained checkpoints are restore points)."""
    try:
        record = json.loads(_record_file(stack, job).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _secret(key: str) -> bool:
    return any(word in key.upper() for word in ("PASSWORD", "SECRET", "TOKEN"))


def record_submission(
    stack: Stack,
    job: str,
    job_id: str,
    config: Path,
    parallelism: int | None,
    extra_env: dict[str, str],
    restored: bool = False,
) -> None:
    """Record a submission. A job started from a savepoint or checkpoint continues the history
    of job ids whose points `resume` may restore; one started without state begins a new one:
    the checkpoints of an earlier run (perhaps on other topics) are not its own."""
    previous = submission(stack, job) if restored else {}
    # What resume and upgrade repeat; secrets come from the user's environment, never a file.
    kept_env = {key: value for key, value in extra_env.items() if not _secret(key)}
    history = [str(jid) for jid in previous.get("job_ids", []) if isinstance(jid, str)]  # type: ignore[attr-defined]
    record = {
        "config": str(config),
        "parallelism": parallelism,
        "env": kept_env,
        "job_ids": [*history, job_id],
    }
    target = _record_file(stack, job)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=2))


def stop(stack: Stack, job_id: str, savepoint_dir: str | None = None) -> str | None:
    """Stop with a savepoint (returns its path), or cancel when no directory is given."""
    if savepoint_dir is None:
        _flink(stack, "cancel", job_id)
        return None
    os.makedirs(savepoint_dir, exist_ok=True)
    output = _flink(stack, "stop", "--type", "canonical", "--savepointPath", savepoint_dir, job_id)
    match = _SAVEPOINT.search(output)
    if match is None:
        raise BethosError(f"no savepoint path in flink's answer:\n{output[-2000:]}")
    return match.group(1)


def running_jobs(stack: Stack) -> list[tuple[str, str]]:
    """(name, job id) of every job that is not finished."""
    return [
        (str(job["name"]), str(job["jid"]))
        for job in stack.jobs()
        if job.get("state") in ("RUNNING", "CREATED", "INITIALIZING", "RESTARTING")
    ]
