"""Reconcile passes against the real InfluxDB and the running ETL: InfluxDB's own counts agree
with what a read counts, and points written minutes after their own time reach the latest topic."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import yaml

from bethos.config import EtlSettings, load_settings
from bethos.fetch_result import Tally, Window
from bethos.record import Signal
from bethos.resource_map import ResourceMap
from connectors.influxdb.client import InfluxClient
from connectors.influxdb.writer import Point
from devstack.cli import data
from devstack.stack import Stack
from devstack.verify import compare
from tests.integration.helpers import (
    events,
    merged_aggregated,
    point,
    read_checked,
    wait_for,
    wait_until,
    write_points,
)

pytestmark = pytest.mark.integration

BUCKET_MS = 10_000


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.mark.parametrize("layout", ["wide", "narrow"])
def test_influxdbs_counts_agree_with_what_a_read_counts(
    etl_settings: EtlSettings, layout: str
) -> None:
    influx = etl_settings.influxdb.model_copy(update={"layout": layout})
    pod, other = influx.pods[0], influx.pods[1]
    start = now_ms() // BUCKET_MS * BUCKET_MS - 120_000
    tags = {influx.pod_tag: pod}
    if layout == "wide":
        points = [
            Point(influx.measurement, {**tags, influx.vin_tag: f"V{i % 7}"}, fields, start + ts)
            for i, (ts, fields) in enumerate(
                (i * 1_537, {"speed": float(i), "gear": i % 5} if i % 3 else {"speed": 1.0})
                for i in range(60)
            )
        ]
        # A point without a VIN is rejected by the read, and still counted: InfluxDB counts it.
        points.append(Point(influx.measurement, tags, {"speed": 9.0}, start + 5_000))
    else:
        points = [
            Point(
                influx.measurement,
                {**tags, influx.vin_tag: f"V{i % 7}", influx.resource_tag: f"r{i % 3}"},
                {influx.value_field: float(i)},
                start + i * 1_537,
            )
            for i in range(60)
        ]
    points.append(
        Point(influx.measurement, {influx.pod_tag: other, influx.vin_tag: "V1"}, {"x": 1.0}, start)
    )
    write_points(etl_settings.model_copy(update={"influxdb": influx}), points)

    resource_map = ResourceMap({"r0": "a", "r1": "b"}) if layout == "narrow" else None
    client = InfluxClient(influx, resource_map=resource_map)
    try:
        window = Window(start + 3_000, start + 95_000)
        server = client.count_buckets(pod, window, BUCKET_MS)
        read = client.fetch_window(pod, window, Tally(BUCKET_MS, window.start))
        since_later = client.fetch_window(pod, window, Tally(BUCKET_MS, start + 40_000))
    finally:
        client.close()
    inside = [
        p for p in points if p.tags[influx.pod_tag] == pod and window.start <= p.ts_ms < window.end
    ]
    assert sum(server.values()) == sum(len(p.fields) for p in inside)
    assert read.counts == server
    assert all(bucket % BUCKET_MS == 0 for bucket in server)
    assert since_later.counts == {b: c for b, c in server.items() if b >= start + 40_000}


def test_points_written_minutes_after_their_time_reach_the_latest_topic(
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    submit: Callable[..., str],
) -> None:
    etl_config, merger_config = pipeline_configs
    doc = yaml.safe_load(etl_config.read_text())
    reconcile_s, flush_s = 10, 3  # flush: the merger's flush_interval in pipeline_configs
    doc.update(reconcile_interval=f"{reconcile_s}s", reconcile_window="15m")
    config = etl_config.with_name("etl-reconcile.yaml")
    config.write_text(yaml.safe_dump(doc))
    settings = load_settings(EtlSettings, config)
    pods = settings.influxdb.pods
    write_points(settings, [point(settings, pods[0], "VIN-ON-TIME", {"speed": 1.0}, now_ms())])
    submit("etl", config)
    submit("latest_merger", merger_config)
    assert wait_for(lambda: data.verify(settings)[2], timeout=120) == []
    # Let a pass run once on what the ETL has read, so the next one is a full interval away.
    wait_until(lambda: bool(passes(stack, pods)), timeout=60)
    assert passes(stack, pods)

    # A vehicle offline for minutes uploads its buffer: times 2 to 10 minutes old, far past the
    # 10 s lookback. Some are newer than what the topic holds (they win), some older (they
    # must not regress the topic).
    now = now_ms()
    late = [
        point(settings, pods[i % len(pods)], f"VIN-LATE-{i % 4}", {"speed": float(i)}, now - ago)
        for i, ago in enumerate(range(120_000, 600_001, 30_000))
    ]
    late.append(point(settings, pods[0], "VIN-ON-TIME", {"speed": 0.5}, now - 300_000))
    write_points(settings, late)
    written_at = time.monotonic()
    # One reconcile interval plus one flush, and the slack of a loaded machine.
    assert wait_for(lambda: data.verify(settings)[2], timeout=reconcile_s + flush_s + 20) == []
    print(f"late points in the latest topic after {time.monotonic() - written_at:.1f} s")
    found = [p for p in passes(stack, pods) if int(p["late"]) > 0]
    assert sum(int(p["late"]) for p in found) == len(late)


def passes(stack: Stack, pods: list[str]) -> list[dict[str, str]]:
    return [fields for fields in events(stack, "reconcile") if fields["pod"] in pods]


def test_the_narrow_layout_end_to_end_through_influxdb_with_late_points(
    pipeline_configs: tuple[Path, Path],
    submit: Callable[..., str],
    tmp_path: Path,
) -> None:
    """Narrow points (one value field, a resource tag mapped to the signal) read by the running
    ETL from the real InfluxDB: mapped resources become signals, an unmapped one is a dead
    letter, and a point written minutes late is found by a reconcile pass."""
    resource_map = tmp_path / "resources.yaml"
    resource_map.write_text('vehicle.speed: speed_kmh\n"0x2F": fuel_level_pct\n')
    doc = yaml.safe_load(pipeline_configs[0].read_text())
    doc["influxdb"].update(layout="narrow", resource_tag="resource", value_field="value")
    doc.update(resource_map_path=str(resource_map), reconcile_interval="5s")
    config = pipeline_configs[0].with_name("etl-narrow.yaml")
    config.write_text(yaml.safe_dump(doc))
    settings = load_settings(EtlSettings, config)
    influx, pods = settings.influxdb, settings.influxdb.pods

    def narrow(vin: str, resource: str, value: float, ts: int) -> Point:
        tags = {influx.pod_tag: pods[0], influx.vin_tag: vin, influx.resource_tag: resource}
        return Point(influx.measurement, tags, {"value": value}, ts)

    now = now_ms()
    write_points(
        settings,
        [
            narrow("N1", "vehicle.speed", 10.0, now - 3_000),
            narrow("N1", "vehicle.speed", 11.0, now - 2_000),
            narrow("N1", "0x2F", 55.5, now - 2_500),
            narrow("N2", "vehicle.speed", 20.0, now - 1_000),
            narrow("N2", "engine.secret", 1.0, now - 1_000),  # not in the map
        ],
    )
    submit("etl", config)
    expected = {
        "N1": {"speed_kmh": Signal(11.0, now - 2_000), "fuel_level_pct": Signal(55.5, now - 2_500)},
        "N2": {"speed_kmh": Signal(20.0, now - 1_000)},
    }
    assert wait_for(lambda: compare(expected, merged_aggregated(settings)), timeout=90) == []
    # Written now with a time four minutes back: past the 10 s lookback.
    write_points(settings, [narrow("N3", "0x2F", 7.0, now - 240_000)])
    expected["N3"] = {"fuel_level_pct": Signal(7.0, now - 240_000)}
    assert wait_for(lambda: compare(expected, merged_aggregated(settings)), timeout=60) == []
    dead = read_checked("dead_letter", settings.kafka, settings.topics.dlq)
    letters = [orjson.loads(v) for _, v in dead]
    # Once, though every lookback and the reconcile pass read its row again.
    assert [letter["reason"] for letter in letters] == ["unmapped_resource"]
    assert "engine.secret" in letters[0]["original"]
