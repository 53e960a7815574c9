"""The one form of a job's submission with bethos's code shipped alongside (`flink_run_args`,
which `flink run` and the Kubernetes manifests' PythonDriver both take), and the one-shot
service of docker-compose.yml: wait for the TaskManagers, create the topics, submit the jobs.

Run in the image as `python -m devstack.deploy.submit JOB...` with PYTHONPATH=CODE_DIR."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence

from bethos.config import MergerSettings, load_settings
from bethos.exceptions import BethosError
from devstack.deploy.image import CODE_DIR, FLINK_HOME
from devstack.stack.flink import FLINK_REST_PORT
from devstack.stack.health import http_json, wait_until
from devstack.stack.jobs import DEFAULT_CONFIGS, JOBS

JOBMANAGER = "jobmanager"
# The config whose Kafka and topic settings the topic creation takes, as `bethos topics create`.
TOPICS_CONFIG = DEFAULT_CONFIGS["latest_merger"]
ACTIVE = ("RUNNING", "CREATED", "INITIALIZING", "RESTARTING")


def flink_run_args(job: str, code_dir: str = CODE_DIR, config: str | None = None) -> list[str]:
    """What follows `flink run [-d] [-s SAVEPOINT]` to start `job`: bethos's code in `code_dir`
    travels with the job (`-pyfs`), the entry point and its config come from there too. The
    same list is the PythonDriver's `args` in the Kubernetes manifests."""
    if job not in JOBS:
        raise BethosError(f"unknown job {job!r}; valid: {', '.join(JOBS)}")
    config_path = config or f"{code_dir}/{DEFAULT_CONFIGS[job]}"
    return ["-pyfs", code_dir, "-py", f"{code_dir}/{JOBS[job]}", "--config", config_path]


def run_commands(jobs: Sequence[str]) -> list[list[str]]:
    """The `flink run` command lines of the one-shot service, detached, one per job."""
    return [[f"{FLINK_HOME}/bin/flink", "run", "-d", *flink_run_args(job)] for job in jobs]


def _taskmanagers(rest: str) -> int:
    overview = http_json(f"{rest}/overview")
    return int(overview.get("taskmanagers", 0)) if isinstance(overview, dict) else 0


def _active_jobs(rest: str) -> list[str]:
    overview = http_json(f"{rest}/jobs/overview")
    jobs = overview.get("jobs", []) if isinstance(overview, dict) else []
    return [str(job.get("name")) for job in jobs if job.get("state") in ACTIVE]


def _create_topics() -> None:
    from connectors.kafka.admin import create_topics

    settings = load_settings(MergerSettings, f"{CODE_DIR}/{TOPICS_CONFIG}")
    for name, outcome in create_topics(settings.kafka, settings.topics).items():
        print(f"topic {name}: {outcome}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("jobs", nargs="+", choices=list(JOBS))
    parser.add_argument("--rest", default=f"http://{JOBMANAGER}:{FLINK_REST_PORT}")
    parser.add_argument("--taskmanagers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    try:
        wait_until(
            lambda: _taskmanagers(args.rest) >= args.taskmanagers,
            args.timeout,
            f"{args.taskmanagers} TaskManager(s) registered at {args.rest}",
            None,
        )
        _create_topics()
        active = _active_jobs(args.rest)
        if active:
            print(f"the cluster already runs {', '.join(active)}: submitting nothing", flush=True)
            return 0
        for command in run_commands(args.jobs):
            print("$ " + " ".join(command), flush=True)
            subprocess.run(command, check=True)
    except (BethosError, subprocess.CalledProcessError) as exc:
        print(f"submit: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
