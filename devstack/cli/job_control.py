"""`bethos submit`, `stop`, `resume`, `upgrade` and `package`: the jobs on the Flink cluster,
by name, and the code they bring."""

from __future__ import annotations

import argparse
from pathlib import Path

from devstack import paths
from devstack.cli import progress
from devstack.package import build_package
from devstack.stack import Stack, jobs, lifecycle


def cmd_submit(args: argparse.Namespace) -> int:
    job_id = jobs.submit(Stack(), args.job, args.config, args.savepoint, args.parallelism)
    print(job_id)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    with progress.console.status(f"stopping {args.job} ..."):
        savepoint = lifecycle.stop_job(Stack(), args.job, cancel=args.cancel)
    if savepoint is None:
        print(
            f"cancelled {args.job}: only its retained checkpoints keep its state "
            f"(`bethos resume {args.job}` starts from the newest)"
        )
    else:
        print(f"stopped {args.job}; savepoint: {savepoint}")
    return 0


def _start_options(args: argparse.Namespace) -> lifecycle.StartOptions:
    return lifecycle.StartOptions(args.config, args.parallelism, args.allow_non_restored_state)


def cmd_resume(args: argparse.Namespace) -> int:
    with progress.steps() as tell:
        point, job_id = lifecycle.resume_job(Stack(), args.job, _start_options(args), tell)
    print(f"{args.job} runs as {job_id}, restored from its {point}")
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    with progress.steps() as tell:
        done = lifecycle.upgrade_job(Stack(), args.job, _start_options(args), tell)
    print(f"{args.job} runs the current code as {done.job_id}, restored from {done.savepoint}")
    for name, job_id in done.restarted.items():
        print(f"{name} restarted from its savepoint as {job_id}")
    return 0


def cmd_package(args: argparse.Namespace) -> int:
    code = build_package(Path(args.output).resolve())  # commands that run from anywhere
    print(code)
    if not args.quiet:
        print(
            "\nrun the jobs on any Flink cluster (its Python: apache-flink and the dependencies):"
        )
        for job in jobs.JOBS:
            config = paths.PROJECT_ROOT / jobs.DEFAULT_CONFIGS[job]
            print("  flink run " + " ".join(jobs.run_args(job, code, config)))
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`submit`, `stop`, `resume`, `upgrade`, `package`."""
    submit = sub.add_parser("submit", help="start a job on the Flink cluster")
    submit.add_argument("job", choices=sorted(jobs.JOBS))
    submit.add_argument("--config")
    submit.add_argument("--savepoint", help="resume from this savepoint")
    submit.add_argument("--parallelism", type=int)
    submit.set_defaults(func=cmd_submit)
    stop = sub.add_parser("stop", help="stop a job with a savepoint and print its path")
    stop.add_argument("job", choices=sorted(jobs.JOBS))
    stop.add_argument(
        "--cancel",
        action="store_true",
        help="cancel instead: only the retained checkpoints keep the state",
    )
    stop.set_defaults(func=cmd_stop)
    for name, func, text in (
        (
            "resume",
            cmd_resume,
            "start a job from its newest savepoint or retained checkpoint (after a stop, a "
            "cancel or a JobManager crash)",
        ),
        (
            "upgrade",
            cmd_upgrade,
            "stop a job with a savepoint and start the current code from it (fresh "
            "TaskManagers; the other jobs restart from savepoints too)",
        ),
    ):
        verb = sub.add_parser(name, help=text)
        verb.add_argument("job", choices=sorted(jobs.JOBS))
        verb.add_argument("--config", help="default: the config it last ran with")
        verb.add_argument("--parallelism", type=int, help="default: as it last ran")
        verb.add_argument(
            "--allow-non-restored-state",
            action="store_true",
            help="start even if the job drops state the restore point holds",
        )
        verb.set_defaults(func=func)
    pack = sub.add_parser(
        "package", help="build the zip of the code every job brings (`flink run -pyfs`)"
    )
    pack.add_argument("--output", default="dist", help="folder for the zip (default dist/)")
    pack.add_argument("--quiet", action="store_true", help="print only the zip's path")
    pack.set_defaults(func=cmd_package)
