"""generate -> ETL -> merge -> verify, on the real Kafka, InfluxDB and Flink."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from bethos.config import EtlSettings
from connectors.kafka.reader import read_topic
from devstack.cli import data
from devstack.cli.main import main as bethos_main
from devstack.stack import flink_client
from devstack.verify import Difference
from tests.integration.helpers import assert_schema_valid, read_checked, wait_for

pytestmark = pytest.mark.integration


def wait_for_verify(settings: EtlSettings, timeout: float = 240) -> list[Difference]:
    return wait_for(lambda: data.verify(settings)[2], timeout)


def test_generate_etl_merge_verify(
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Submitted by bin/flink, as users do, not by the tests' warm client (tests/integration/
    # conftest.py): the one path of devstack's `flink` commands the other tests skip.
    monkeypatch.delenv(flink_client.ENV_VAR, raising=False)
    etl_config, merger_config = pipeline_configs
    written = data.generate(etl_settings, vins=10, rounds=6, round_interval_ms=10_000)
    assert written == 60
    truth = data.ground_truth(etl_settings)
    assert len(truth) == 10

    # Before anything ran, verify must fail: the latest topic is empty.
    assert bethos_main(["verify", "--config", str(etl_config)]) == 1

    submit("etl", etl_config)
    submit("latest_merger", merger_config)
    assert wait_for_verify(etl_settings) == []
    assert bethos_main(["verify", "--config", str(etl_config)]) == 0

    # Newer points written while the jobs run reach the latest topic too.
    data.generate(etl_settings, vins=10, rounds=2, round_interval_ms=1_000, seed=99)
    assert wait_for_verify(etl_settings) == []

    # Every latest record is valid by its JSON Schema (docs/CONTRACT.md), with the rules beyond
    # it: key, vin and data.id agree, updated_at is the newest signal time.
    for key, value in read_topic(etl_settings.kafka, etl_settings.topics.latest):
        assert key is not None and value is not None
        assert_schema_valid("latest", value)
        doc = orjson.loads(value)
        assert doc["vin"] == key.decode() == doc["data"]["id"]
        assert doc["schema"] == 1
        assert doc["updated_at"] == max(s["ts"] for s in doc["data"]["signals"].values())
    # And so is every aggregated record the ETL wrote, keyed by its VIN.
    aggregated = read_topic(etl_settings.kafka, etl_settings.topics.aggregated)
    assert aggregated
    for key, value in aggregated:
        assert_schema_valid("aggregated", value)
        assert key is not None and value is not None
        assert orjson.loads(value)["vin"] == key.decode()


def test_bad_records_go_to_the_dead_letter_topic_and_good_ones_merge(
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
) -> None:
    _, merger_config = pipeline_configs
    topics = etl_settings.topics
    producer = Producer({"bootstrap.servers": etl_settings.kafka.brokers})
    good = {
        "schema": 1,
        "vin": "GOOD1",
        "data": {"id": "GOOD1", "signals": {"speed": {"value": 1.5, "ts": 1000}}},
        "pod": "p",
        "received_at": 1000,
        "produced_at": 1000,
    }
    empty_id = dict(good, data={"id": "", "signals": {}})
    producer.produce(topics.aggregated, key=b"GOOD1", value=orjson.dumps(good))
    producer.produce(topics.aggregated, key=b"X", value=b"{not json")
    producer.produce(topics.aggregated, key=b"GOOD1", value=orjson.dumps(empty_id))
    producer.flush(30)
    submit("latest_merger", merger_config)

    deadline = time.monotonic() + 180
    latest: list[tuple[bytes | None, bytes | None]] = []
    dead: list[tuple[bytes | None, bytes | None]] = []
    while time.monotonic() < deadline and (not latest or len(dead) < 2):
        time.sleep(3)
        latest = read_checked("latest", etl_settings.kafka, topics.latest)
        dead = read_checked("dead_letter", etl_settings.kafka, topics.dlq)
    assert [key for key, _ in latest] == [b"GOOD1"]
    reasons = sorted(orjson.loads(value or b"{}")["reason"] for _, value in dead)
    assert reasons == ["empty_id", "invalid_json"]
