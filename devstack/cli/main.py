"""The `bethos` command: the local stack, topics, test data, jobs, verify and the demo.

Each group of commands is a module with its own parser setup (`add_commands`) and handlers:
`config` (`config check|show`), `local_stack` (`up`, `down`, `status`, `topics`), `data`
(`generate`, `verify`, `show`), `job_control` (`submit`, `stop`, `resume`, `upgrade`,
`package`), `chaos_runs` (`chaos`), `benchmarks` (`bench`), `demo` (`demo`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

from bethos.config import DEFAULT_BROKERS
from bethos.exceptions import BethosError
from devstack.cli import benchmarks, chaos_runs, config, data, demo, job_control, local_stack
from devstack.stack import Stack

DESCRIPTION = "The `bethos` command: the local stack, topics, test data, jobs, verify and the demo."
# In the order `bethos --help` lists them.
COMMAND_GROUPS = (config, local_stack, data, job_control, chaos_runs, benchmarks, demo)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="bethos", description=DESCRIPTION)
    sub = root.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_commands(sub)
    return root


@contextlib.contextmanager
def _local_stack_brokers(args: argparse.Namespace) -> Iterator[None]:
    """Without KAFKA_BROKERS or KAFKA_BROKER_1..N, a command talks to the brokers of the local
    stack when it runs other than the default three (`bethos up --brokers 1`): for the length
    of the command only, so that no later settings in this process inherit it."""
    if os.environ.get("KAFKA_BROKERS") or os.environ.get("KAFKA_BROKER_1"):
        yield
        return
    brokers = Stack(brokers=getattr(args, "brokers", None)).bootstrap_servers()
    if brokers == DEFAULT_BROKERS:
        yield
        return
    os.environ["KAFKA_BROKERS"] = brokers
    try:
        yield
    finally:
        os.environ.pop("KAFKA_BROKERS", None)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with _local_stack_brokers(args):
        try:
            return int(args.func(args))
        except BethosError as exc:
            print(f"bethos: error: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
