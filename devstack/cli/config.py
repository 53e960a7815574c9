"""`bethos config check FILE` and `bethos config show JOB`: a job's settings, checked or shown.

`check` validates a file for the job its content names (an `influxdb` section: the ETL; else the
latest merger; `--job` decides otherwise) and lists every problem with its key path and line,
exiting 1; a valid file prints `ok` and a one-line summary. `show` prints the effective
settings of a job (its file, the environment applied, defaults filled in) with every secret
masked. Both read the environment of the command, as the job would.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from bethos.config import MASK, EtlSettings, JobSettings, MergerSettings, load_settings, mask_url
from bethos.durations import format_duration_ms
from bethos.exceptions import ConfigError, ConfigProblem
from bethos.sections import DURATIONS_AS_TEXT
from bethos.source.layout import resource_map_for
from bethos.strategies.state_store import StateStore
from devstack import paths


def _etl_needs(settings: Any) -> list[ConfigProblem]:
    """The narrow layout's resource map must load (relative paths: the working directory)."""
    try:
        resource_map_for(settings)
    except ConfigError as exc:
        return [ConfigProblem("resource_map_path", str(exc))]
    return []


def _publisher_needs(settings: Any) -> list[ConfigProblem]:
    strategy = settings.latest_merger.strategy
    if isinstance(settings.latest_merger, StateStore):
        return []
    return [
        ConfigProblem(
            "latest_merger.strategy", f"the publisher serves 'state_store', not {strategy!r}"
        )
    ]


def _nothing(settings: Any) -> list[ConfigProblem]:
    return []


@dataclass(frozen=True)
class Job:
    model: type[JobSettings]
    default_file: str
    """The file the job reads when given none, relative to the project."""
    needs: Callable[[Any], list[ConfigProblem]]
    """What the job checks at start beyond its settings model."""


JOBS: dict[str, Job] = {
    "etl": Job(EtlSettings, "config/etl.yaml", _etl_needs),
    "latest_merger": Job(MergerSettings, "config/latest_merger.yaml", _nothing),
    "state_store_publisher": Job(MergerSettings, "config/state_store.yaml", _publisher_needs),
}


def job_of(path: str | Path) -> str:
    """The job a file is for, from its content: an `influxdb` section means the ETL."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return "latest_merger"  # loading reports why the file cannot be read
    return "etl" if isinstance(doc, dict) and "influxdb" in doc else "latest_merger"


def load(job: str, path: str | Path, environ: Mapping[str, str]) -> JobSettings:
    """The job's settings from the file; ConfigError lists every problem."""
    spec = JOBS[job]
    settings = load_settings(spec.model, path, environ)
    problems = spec.needs(settings)
    if problems:
        raise ConfigError(problems=problems, source=str(path))
    return settings


def check(path: str, job: str | None, environ: Mapping[str, str], console: Console) -> int:
    job = job or job_of(path)
    try:
        settings = load(job, path, environ)
    except ConfigError as exc:
        print_problems(exc, f"{path} ({job})", console)
        return 1
    console.print(
        f"ok  {path} ({job}): {summary(settings)}", markup=False, highlight=False, soft_wrap=True
    )
    return 0


def show(
    job: str, path: str | None, environ: Mapping[str, str], form: str, console: Console
) -> int:
    source = path or str(paths.PROJECT_ROOT / JOBS[job].default_file)
    try:
        settings = load(job, source, environ)
    except ConfigError as exc:
        print_problems(exc, f"{source} ({job})", console)
        return 1
    values = masked(settings.model_dump(mode="json", context=DURATIONS_AS_TEXT))
    if isinstance(settings, EtlSettings | MergerSettings):
        # Unset, the interval is the job's own default (a merger's follows its flush): shown
        # as the job will run with it.
        values["flink"]["checkpoint_interval"] = format_duration_ms(settings.checkpoint_interval_ms)
    if form == "json":
        text = json.dumps(values, indent=2)
    else:
        header = f"# {job}: {source}, environment applied, secrets masked\n"
        text = header + yaml.safe_dump(values, sort_keys=False, allow_unicode=True).rstrip()
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    return 0


def masked(value: Any, key: str = "") -> Any:
    """The dumped settings with every secret masked: secret keys (their `SecretStr` values dump
    masked already) and the password of a URL."""
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    if value is not None and any(word in key.lower() for word in ("password", "secret")):
        return MASK
    return mask_url(value) if isinstance(value, str) else value


def summary(settings: JobSettings) -> str:
    ms = format_duration_ms
    if isinstance(settings, EtlSettings):
        influx = settings.influxdb
        return (
            f"{len(influx.pods)} pod(s) ({', '.join(influx.pods)}), {influx.layout} layout, "
            f"poll every {ms(settings.poll_interval)} in chunks of "
            f"{ms(settings.chunk_duration)}, checkpoint every "
            f"{ms(settings.checkpoint_interval_ms)}, into {settings.topics.aggregated} "
            f"at {settings.kafka.brokers} ({settings.kafka.security.describe()})"
        )
    if isinstance(settings, MergerSettings):
        options = settings.latest_merger
        return (
            f"strategy {options.strategy}, flush every {ms(options.flush_interval)}, "
            f"checkpoint every {ms(settings.checkpoint_interval_ms)}, "
            f"{settings.topics.aggregated} -> {settings.topics.latest} at "
            f"{settings.kafka.brokers} ({settings.kafka.security.describe()}), "
            f"group {settings.consumer_group}"
        )
    return type(settings).__name__


def print_problems(error: ConfigError, what: str, console: Console) -> None:
    """Every problem: a table on a terminal, one `file:line: key: message` line otherwise."""
    count = len(error.problems)
    plural = "" if count == 1 else "s"
    console.print(f"{what}: {count} problem{plural}", markup=False, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        for line in error.lines():
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(show_lines=False, header_style="bold")
    table.add_column("line", justify="right", style="dim")
    table.add_column("key", style="cyan", overflow="fold")
    table.add_column("problem", overflow="fold")
    for problem in error.problems:
        line = "" if problem.line is None else str(problem.line)
        table.add_row(line, problem.key or "-", problem.message)
    console.print(table)


def cmd_check(args: argparse.Namespace) -> int:
    return check(args.file, args.job, os.environ, Console())


def cmd_show(args: argparse.Namespace) -> int:
    return show(args.job, args.config, os.environ, args.format, Console())


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`bethos config check|show`."""
    config = sub.add_parser("config", help="check a settings file, or show a job's settings")
    verbs = config.add_subparsers(dest="config_command", required=True)
    check_verb = verbs.add_parser(
        "check", help="validate a file and list every problem; exit 1 if there is one"
    )
    check_verb.add_argument("file")
    check_verb.add_argument(
        "--job",
        choices=sorted(JOBS),
        help="the job the file is for (default: etl if it has an influxdb section, "
        "else latest_merger)",
    )
    check_verb.set_defaults(func=cmd_check)
    show_verb = verbs.add_parser(
        "show", help="print a job's effective settings (file and environment), secrets masked"
    )
    show_verb.add_argument("job", choices=sorted(JOBS))
    show_verb.add_argument(
        "--config", help="the settings file (default: the job's own, e.g. config/etl.yaml)"
    )
    show_verb.add_argument("--format", choices=("yaml", "json"), default="yaml")
    show_verb.set_defaults(func=cmd_show)
