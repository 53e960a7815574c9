"""The job graphs compile without any broker (PyFlink's own test_compiling habit)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bethos.config import EtlSettings, MergerSettings, load_settings

ROOT = Path(__file__).resolve().parents[4]


def plan_of(build, settings) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    env, statements = build(settings)
    statements.attach_as_datastream()
    return json.loads(env.get_execution_plan())  # type: ignore[no-any-return]


def operator_names(plan: dict[str, Any]) -> str:
    nodes = plan["nodes"]
    return " | ".join(f"{node['type']}:{node['pact']}:{node['contents']}" for node in nodes)


@pytest.mark.timeout(300)
def test_merger_and_etl_graphs_compile() -> None:
    from bethos.flink import etl, merger

    merger_plan = operator_names(
        plan_of(merger.build, load_settings(MergerSettings, ROOT / "config/latest_merger.yaml", {}))
    )
    assert "merge per VIN" in merger_plan
    assert "latest_out" in merger_plan and "dead_letters_out" in merger_plan

    etl_plan = operator_names(
        plan_of(etl.build, load_settings(EtlSettings, ROOT / "config/etl.yaml", {}))
    )
    assert "poll InfluxDB per pod" in etl_plan
    assert "aggregated_out" in etl_plan


def merger_settings(strategy: str, **options: Any) -> MergerSettings:
    doc = {"latest_merger": {"strategy": strategy, **options}}
    return MergerSettings.model_validate(doc)


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("strategy", "options", "expected"),
    [
        ("state_store", {}, ["write to the redis store", "latest_in"]),
        ("window_stream", {}, ["tumbling windows of 120000 ms per VIN", "latest_out", "decode"]),
        (
            "inline",
            {"inline": {"sink": "kafka", "batch_size": 50, "topic": "latest-batches"}},
            ["batches of 50", "inline_out"],
        ),
        ("inline", {"inline": {"sink": "file", "path": "/tmp/x.jsonl"}}, ["write to file"]),
        ("log_compacted", {"bootstrap_from_latest": False}, ["merge per VIN"]),
    ],
)
def test_every_strategy_compiles(
    strategy: str, options: dict[str, Any], expected: list[str]
) -> None:
    from bethos.flink import merger

    plan = operator_names(plan_of(merger.build, merger_settings(strategy, **options)))
    for name in expected:
        assert name in plan, plan
    assert "dead_letters_out" in plan
    if options.get("bootstrap_from_latest") is False:
        assert "latest_in" not in plan


@pytest.mark.timeout(300)
def test_publisher_graph_compiles() -> None:
    from bethos.flink import state_store as publisher

    settings = load_settings(MergerSettings, ROOT / "config/state_store.yaml", {})
    plan = operator_names(plan_of(publisher.build, settings))
    assert "publish the redis store" in plan and "latest_out" in plan
