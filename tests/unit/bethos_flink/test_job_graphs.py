"""The job graphs compile without any broker (PyFlink's own test_compiling habit)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bethos.config import EtlSettings, MergerSettings, load_settings

ROOT = Path(__file__).resolve().parents[3]


def plan_of(build, settings, uids: set[str] | None = None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    env, statements = build(settings)
    statements.attach_as_datastream()
    if uids is not None:
        uids.update(uids_of(env))
    return json.loads(env.get_execution_plan())  # type: ignore[no-any-return]


# Operators that hold no state, so a savepoint needs no uid for them: Python's own helper
# operators and the planner's conversion of a table into a stream.
STATELESS = re.compile(
    r"Map|_stream_key_by_map_operator|tick every pod|SinkConversion\[\d+\]"
    r"|Extract-Timestamp|Timestamps/Watermarks|Remove-Timestamp"
)


def uids_of(env: Any) -> set[str]:
    """The uids of the graph's operators (savepoints are matched by them); fails for an
    operator without one that may hold state."""
    graph = env._j_stream_execution_environment.getStreamGraph(False)
    found, unnamed = set(), []
    for node in graph.getStreamNodes().toArray():
        uid, name = node.getTransformationUID(), node.getOperatorName()
        if uid:
            found.add(str(uid))
        elif not STATELESS.fullmatch(name):
            unnamed.append(name)
    assert unnamed == [], f"operators without a uid: {unnamed}"
    return found


def sql_uids(*tables: str) -> set[str]:
    """The uids of the planner's operators for these tables that hold state (`planner_uids`)."""
    return {
        f"{table}_source" if table.endswith("_in") or table == "ticks" else f"{table}_sink"
        for table in tables
    }


def operator_names(plan: dict[str, Any]) -> str:
    nodes = plan["nodes"]
    return " | ".join(f"{node['type']}:{node['pact']}:{node['contents']}" for node in nodes)


@pytest.mark.timeout(300)
def test_merger_and_etl_graphs_compile() -> None:
    from bethos_flink import etl_graph, merger_graph

    found: set[str] = set()
    merger_plan = operator_names(
        plan_of(
            merger_graph.build,
            load_settings(MergerSettings, ROOT / "config/latest_merger.yaml", {}),
            found,
        )
    )
    assert sql_uids("aggregated_in", "latest_in", "latest_out", "dead_letters_out") <= found
    assert "merge per VIN" in merger_plan
    assert "latest_out" in merger_plan and "dead_letters_out" in merger_plan

    found = set()
    etl_plan = operator_names(
        plan_of(etl_graph.build, load_settings(EtlSettings, ROOT / "config/etl.yaml", {}), found)
    )
    assert {
        "influxdb-pod-poller",
        *sql_uids("ticks", "aggregated_out", "dead_letters_out"),
    } <= found
    assert "poll InfluxDB per pod" in etl_plan
    assert "aggregated_out" in etl_plan


@pytest.mark.timeout(300)
def test_with_a_progress_file_the_etl_journals_through_a_file_sink(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bethos_flink import etl_graph

    seen: list[EtlSettings] = []

    class Spy(etl_graph.PodPollFunction):
        def __init__(self, settings: EtlSettings) -> None:
            seen.append(settings)
            super().__init__(settings)

    monkeypatch.setattr(etl_graph, "PodPollFunction", Spy)
    monkeypatch.chdir(tmp_path)
    settings = load_settings(EtlSettings, ROOT / "config/etl.yaml", {}).model_copy(
        update={"checkpoint_path": "state/progress.json"}
    )
    found: set[str] = set()
    plan = operator_names(plan_of(etl_graph.build, settings, found))
    assert "progress file, once Kafka acknowledged" in plan
    assert {"influxdb-pod-poller", etl_graph.PROGRESS_JOURNAL_UID} <= found
    # Resolved where the job is built: the workers run elsewhere.
    assert [s.checkpoint_path for s in seen] == [str(tmp_path / "state" / "progress.json")]


def merger_settings(strategy: str, **options: Any) -> MergerSettings:
    doc = {"latest_merger": {"strategy": strategy, **options}}
    return MergerSettings.model_validate(doc)


MERGE = "latest-merger-merge"


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("strategy", "options", "expected", "uids"),
    [
        (
            "state_store",
            {},
            ["write to the redis store", "latest_in"],
            {MERGE, "latest-merger-store-writer", *sql_uids("aggregated_in", "latest_in")},
        ),
        (
            "window_stream",
            {},
            ["tumbling windows of 120000 ms per VIN", "latest_out", "decode"],
            {"latest-merger-window-decode", "latest-merger-window-merge", *sql_uids("latest_out")},
        ),
        (
            "inline",
            {"inline": {"sink": "kafka", "batch_size": 50, "topic": "batches"}},
            ["batches of 50", "inline_out"],
            {MERGE, "latest-merger-inline-batcher", *sql_uids("inline_out")},
        ),
        (
            "inline",
            {"inline": {"sink": "file", "path": "/tmp/x.jsonl"}},
            ["write to file"],
            {MERGE, "latest-merger-inline-lines"},
        ),
        (
            "log_compacted",
            {"bootstrap_from_latest": False},
            ["merge per VIN"],
            {MERGE, *sql_uids("aggregated_in", "latest_out")},
        ),
    ],
)
def test_every_strategy_compiles(
    strategy: str, options: dict[str, Any], expected: list[str], uids: set[str]
) -> None:
    from bethos_flink import merger_graph

    found: set[str] = set()
    plan = operator_names(plan_of(merger_graph.build, merger_settings(strategy, **options), found))
    for name in expected:
        assert name in plan, plan
    assert "dead_letters_out" in plan
    if options.get("bootstrap_from_latest") is False:
        assert "latest_in" not in plan
    assert uids <= found
    assert sql_uids("aggregated_in", "dead_letters_out") <= found


@pytest.mark.timeout(300)
def test_publisher_graph_compiles() -> None:
    from bethos_flink.strategies.state_store import build_publisher

    settings = load_settings(MergerSettings, ROOT / "config/state_store.yaml", {})
    found: set[str] = set()
    plan = operator_names(plan_of(build_publisher, settings, found))
    assert "publish the redis store" in plan and "latest_out" in plan
    assert "tick each of 16 shards" in plan
    uids = {"state-store-publisher", "state-store-publisher-shard-ticks"}
    assert {*uids, *sql_uids("ticks", "latest_out")} <= found


@pytest.mark.parametrize(
    ("flink", "backend", "compressed", "incremental"),
    [
        ({}, "hashmap", True, "false"),
        ({"state_backend": "rocksdb", "snapshot_compression": False}, "rocksdb", False, "true"),
    ],
)
def test_the_state_backend_and_snapshot_compression_reach_the_job(
    flink: dict[str, object], backend: str, compressed: bool, incremental: str
) -> None:
    from bethos.config import FlinkSettings
    from bethos_flink.environment import create_environments

    env, _ = create_environments(FlinkSettings(max_parallelism=256, **flink), 10_000)
    config = env.get_config()
    assert config.is_use_snapshot_compression() is compressed
    assert config.get_max_parallelism() == 256
    job = dict(env._j_stream_execution_environment.getConfiguration().toMap())
    assert job["state.backend.type"] == backend
    assert job.get("execution.checkpointing.incremental", "false") == incremental
