"""Bounded latest records against the real broker: a VIN whose latest record would outgrow the
limits (and the broker's message limit) is kept within them, what is left out is dead-lettered,
the job never restarts, and every other VIN is emitted."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import yaml

from bethos.config import EtlSettings, MergerSettings, load_settings
from bethos.merge_rule import VinState
from bethos.record import AggregatedRecord, Signal, encode_aggregated
from bethos.record_limits import RECORD_TOO_LARGE, TOO_MANY_SIGNALS, merge_bounded
from devstack.cli import data
from devstack.stack import FLINK_REST_PORT
from devstack.verify import compare
from tests.integration.helpers import read_checked, wait_for, wait_until
from tests.integration.test_merger import produce, records_for

pytestmark = pytest.mark.integration


def rest(path: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{FLINK_REST_PORT}{path}", timeout=10) as answer:
        return orjson.loads(answer.read())  # type: ignore[no-any-return]


def test_a_vin_past_the_limits_is_bounded_and_every_other_vin_emitted(
    pipeline_configs: tuple[Path, Path], etl_settings: EtlSettings, submit: Callable[..., str]
) -> None:
    doc = yaml.safe_load(pipeline_configs[1].read_text())
    doc["limits"] = {"max_signals_per_vin": 5_000}
    config = pipeline_configs[1].with_name("merger-limits.yaml")
    config.write_text(yaml.safe_dump(doc))
    limits = load_settings(MergerSettings, config).limits.build()
    assert limits.max_record_bytes == 1_000_000  # the default, under the broker's 1 MiB

    others = records_for(30, "a", 1_000_000, received_at=1)
    # Five records of about 250 kB each: together over the broker's message limit.
    big = [
        AggregatedRecord(
            "BIG", {f"b{k}_{i:03d}": Signal(f"{k}" * 600, 2_000 + k) for i in range(400)}, "p", k, 0
        )
        for k in range(5)
    ]
    # Three records of 2000 new signals each: 1000 too many.
    many = [
        AggregatedRecord(
            "MANY", {f"m{k}_{i:04d}": Signal(float(i), 3_000) for i in range(2_000)}, "p", k, 0
        )
        for k in range(3)
    ]
    records = others[:15] + big + many + others[15:]
    produce(etl_settings, [(r.vin.encode(), encode_aggregated(r)) for r in records])
    job_id = submit("latest_merger", config)

    expected: dict[str, VinState] = {}
    refused: dict[str, set[str]] = {}
    for record in records:
        _, kept_out = merge_bounded(expected.setdefault(record.vin, VinState()), record, limits)
        for part in kept_out:
            refused.setdefault(part.reason, set()).update(f"{record.vin}/{n}" for n in part.signals)
    assert len(expected["BIG"].signals) < 2_000 and len(expected["MANY"].signals) == 5_000
    truth = {vin: state.latest_signals() for vin, state in expected.items()}
    assert wait_for(lambda: compare(truth, data.latest_records(etl_settings)), timeout=120) == []

    def dead_letters() -> list[dict[str, object]]:
        dead = read_checked("dead_letter", etl_settings.kafka, etl_settings.topics.dlq)
        return [orjson.loads(v) for _, v in dead]

    wait_until(lambda: len(dead_letters()) >= 2, timeout=30)
    letters: dict[str, set[str]] = {}
    for letter in dead_letters():
        original = orjson.loads(str(letter["original"]))
        names = {f"{original['vin']}/{name}" for name in original["data"]["signals"]}
        letters.setdefault(str(letter["reason"]), set()).update(names)
    assert letters == refused
    assert set(refused) == {RECORD_TOO_LARGE, TOO_MANY_SIGNALS}

    job = rest(f"/jobs/{job_id}")
    assert job["state"] == "RUNNING"
    history = rest(f"/jobs/{job_id}/exceptions")["exceptionHistory"]
    assert history["entries"] == []  # type: ignore[index]
