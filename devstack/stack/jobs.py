"""Submitting and stopping the jobs on the local Flink cluster through Flink's own CLI."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from bethos import paths
from bethos.exceptions import BethosError
from devstack.stack.local import Stack

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
    result = subprocess.run(
        [stack.flink_bin("flink"), *args],
        env=env,
        cwd=paths.PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        lines = [line for line in output.splitlines() if not line.lstrip().startswith("at ")]
        raise BethosError(f"flink {args[0]} failed:\n" + "\n".join(lines[-25:]))
    return output


def submit(
    stack: Stack,
    job: str,
    config: str | None = None,
    savepoint: str | None = None,
    parallelism: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> str:
    """Start a job detached; returns its Flink job id."""
    if job not in JOBS:
        raise BethosError(f"unknown job {job!r}; valid: {', '.join(JOBS)}")
    config_path = Path(config or DEFAULT_CONFIGS[job]).resolve()
    args: list[str] = []
    if savepoint:
        args += ["-s", savepoint]
    if parallelism:
        args += ["-p", str(parallelism)]
    env = dict(extra_env or {})
    env["BETHOS_CONFIG"] = str(config_path)
    if parallelism:
        env["BETHOS_PARALLELISM"] = str(parallelism)
    return run_script(stack, paths.PROJECT_ROOT / JOBS[job], args, env)


def run_script(stack: Stack, script: Path, run_args: list[str], extra_env: dict[str, str]) -> str:
    """`flink run -d [run_args] -py script`; returns the Flink job id."""
    output = _flink(stack, "run", "-d", *run_args, "-py", str(script), extra_env=extra_env)
    match = _JOB_ID.search(output)
    if match is None:
        raise BethosError(f"flink run printed no job id:\n{output[-2000:]}")
    return match.group(1)


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
