"""`bethos up`, `bethos down`, `bethos status` and `bethos topics create`: the local stack, what
runs on it, and its topics."""

from __future__ import annotations

import argparse
import contextlib
import json
import time

from rich.console import Console
from rich.live import Live

from bethos.config import MergerSettings, load_settings
from bethos.exceptions import BethosError
from connectors.kafka.admin import create_topics
from devstack import paths
from devstack.cli import progress
from devstack.stack import PROMETHEUS_PORT, Stack, jobs


def cmd_up(args: argparse.Namespace) -> int:
    with progress.steps() as say:
        stack = Stack(brokers=args.brokers, monitoring=args.monitoring)
        stack.up(progress=say)
    print(f"stack is up; Flink dashboard: http://localhost:{stack.flink.ports.rest}")
    if args.monitoring:
        print(f"Prometheus: http://localhost:{PROMETHEUS_PORT} (docs/MONITORING.md)")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    with progress.steps() as say:
        Stack().down(progress=say, purge=args.purge)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from devstack.status import rich_tables, snapshot

    merger = load_settings(MergerSettings, args.config or jobs.DEFAULT_CONFIGS["latest_merger"])
    consumers = [(merger.kafka, merger.consumer_group, merger.topics.aggregated)]
    stack = Stack()

    def take() -> snapshot.Status:
        services = [snapshot.ServiceLine(s.name, s.running, s.detail) for s in stack.status()]
        silent_from = (merger.kafka, merger.topics.latest, args.most_silent)
        return snapshot.collect(
            services, consumers, args.all, silent_from, rest_url=stack.flink.rest_url
        )

    current = take()
    if args.watch is None:
        if args.json:
            print(json.dumps(current.to_json()))
        else:
            Console().print(rich_tables.render(current))
        return 0 if all(s.running for s in current.services) else 1
    if args.watch <= 0:
        raise BethosError(f"--watch takes a positive number of seconds, not {args.watch}")
    with contextlib.suppress(KeyboardInterrupt):
        if args.json:  # one JSON document per line, one line per refresh
            while True:
                print(json.dumps(current.to_json()), flush=True)
                time.sleep(args.watch)
                current = take()
        with Live(rich_tables.render(current), auto_refresh=False) as live:
            while True:
                time.sleep(args.watch)
                current = take()
                live.update(rich_tables.render(current), refresh=True)
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    settings = load_settings(MergerSettings, args.config or jobs.DEFAULT_CONFIGS["latest_merger"])
    with progress.console.status(f"creating topics on {settings.kafka.brokers} ..."):
        outcomes = create_topics(settings.kafka, settings.topics)
    for name, outcome in outcomes.items():
        print(f"{name}: {outcome}")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`up`, `down`, `status`, `topics create`."""
    up = sub.add_parser("up", help="start the local stack on loopback, installing nothing")
    up.add_argument(
        "--brokers",
        type=int,
        choices=(1, 2, 3),
        default=None,
        help="Kafka brokers (default 3; 1 for small machines and tests)",
    )
    up.add_argument(
        "--monitoring",
        action="store_true",
        help=f"also start Prometheus on 127.0.0.1:{PROMETHEUS_PORT} with the alert rules",
    )
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop exactly what `up` started")
    down.add_argument(
        "--purge",
        action="store_true",
        help=f"also delete {paths.state_dir()}, if `bethos up` made it (else exit 2)",
    )
    down.set_defaults(func=cmd_down)
    status = sub.add_parser(
        "status",
        help="each service; per job its state, uptime, restarts, checkpoint age, pod lag, "
        "VINs held, flush age and Kafka consumer lag",
    )
    status.add_argument("--json", action="store_true", help="one JSON document (for scripts)")
    status.add_argument(
        "--most-silent",
        type=int,
        default=5,
        metavar="N",
        help="name the N VINs of the latest topic whose newest reading is oldest (0: skip; "
        "reads the topic whole)",
    )
    status.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=2.0,
        default=None,
        metavar="SECONDS",
        help="refresh every SECONDS (default 2) until Ctrl-C",
    )
    status.add_argument("--all", action="store_true", help="also the jobs that are over")
    status.add_argument(
        "--config",
        help="the merger's config: its consumer group and aggregated topic give the consumer "
        "lag (default config/latest_merger.yaml)",
    )
    status.set_defaults(func=cmd_status)

    topics = sub.add_parser("topics", help="topic administration")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    create = topics_sub.add_parser("create", help="create the topics (idempotent)")
    create.add_argument("--config")
    create.set_defaults(func=cmd_topics)
