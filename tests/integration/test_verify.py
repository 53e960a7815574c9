"""verify against the real InfluxDB and Kafka: its ground truth does not come from the ETL, so
a latest topic that the ETL got wrong is reported, value by value."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Producer

from bethos.config import EtlSettings
from bethos.record import Signal, encode_latest
from devstack.cli import data
from devstack.cli.main import main as bethos_main
from devstack.verify import Difference
from tests.integration.helpers import point, write_points

pytestmark = pytest.mark.integration

T = 1_700_000_000_000


def publish_latest(settings: EtlSettings, records: dict[str, dict[str, Signal]]) -> None:
    """Latest records as the merger would write them."""
    producer = Producer({"bootstrap.servers": settings.kafka.brokers})
    for vin, signals in records.items():
        value = encode_latest(vin, signals, "p", T, T)
        producer.produce(settings.topics.latest, key=vin.encode(), value=value)
    assert producer.flush(30) == 0


def test_verify_reports_what_the_etl_got_wrong(
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    etl_config, _ = pipeline_configs
    pod_a, _, pod_c = etl_settings.influxdb.pods  # pod_c has quotes in its name
    write_points(
        etl_settings,
        [
            point(etl_settings, pod_a, "V1", {"speed": 1.5, "gear": "D"}, T),
            point(etl_settings, pod_a, "V1", {"speed": 2.5}, T + 1_000),
            point(etl_settings, pod_c, "V2", {"rpm": 900, "gear": "P"}, T + 2_000),
            # a pod the ETL is not configured for does not count
            point(etl_settings, f"elsewhere-{pod_a}", "V1", {"speed": 99.5}, T + 5_000),
        ],
    )
    truth = {
        "V1": {"speed": Signal(2.5, T + 1_000), "gear": Signal("D", T)},
        "V2": {"rpm": Signal(900, T + 2_000), "gear": Signal("P", T + 2_000)},
    }
    assert data.ground_truth(etl_settings) == truth

    # An ETL that kept a series' oldest value instead of its newest, and lost a field.
    publish_latest(
        etl_settings,
        {
            "V1": {"speed": Signal(1.5, T), "gear": Signal("D", T)},
            "V2": {"gear": Signal("P", T + 2_000)},
        },
    )
    assert data.verify(etl_settings) == (
        2,
        4,
        [
            Difference("V1", "speed", f"2.5 @ {T + 1_000}", f"1.5 @ {T}"),
            Difference("V2", "rpm", f"900 @ {T + 2_000}", "(missing)"),
        ],
    )
    capsys.readouterr()
    assert bethos_main(["verify", "--config", str(etl_config)]) == 1
    out = capsys.readouterr().out
    assert "verify: FAILED, 2 difference(s) over 2 VINs" in out
    rows = [line.split() for line in out.splitlines()]
    assert ["V1", "speed", "2.5", "@", str(T + 1_000), "1.5", "@", str(T)] in rows

    # Once the latest topic holds the newest values, verify passes.
    publish_latest(etl_settings, truth)
    assert data.verify(etl_settings)[2] == []
    assert bethos_main(["verify", "--config", str(etl_config)]) == 0
