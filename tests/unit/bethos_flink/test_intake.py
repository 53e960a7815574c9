"""The merger's intake: a record, or `DeadLettered` carrying the dead letter (no JVM needed)."""

from __future__ import annotations

import logging

import orjson
import pytest

from bethos.exceptions import DeadLettered
from bethos_flink.rows import KEYLESS, Intake
from tests.data.bad_records import BAD_RECORDS, GOOD_RECORDS, NOW
from tests.unit.bethos_flink.harness import Metrics


def intake(keyed_by_message: bool = False) -> tuple[Intake, Metrics]:
    metrics = Metrics()
    log = logging.getLogger("test.intake")
    return Intake(metrics, log, "latest_merger", keyed_by_message), metrics


def test_a_good_message_is_its_record() -> None:
    reader, metrics = intake()
    for raw in GOOD_RECORDS:
        vin = orjson.loads(raw)["vin"]
        assert reader.read(vin, raw, "t", 0, 1, NOW).vin == vin
        assert reader.read(KEYLESS, raw, "t", 0, 1, NOW).vin == vin
    assert metrics.counters["dead_lettered"].count == 0


@pytest.mark.parametrize(("name", "raw", "reason"), BAD_RECORDS, ids=[c[0] for c in BAD_RECORDS])
def test_a_bad_message_raises_its_dead_letter(name: str, raw: bytes | None, reason: str) -> None:
    reader, metrics = intake()
    with pytest.raises(DeadLettered) as refused:
        reader.read(f"bad-{name}", raw, "aggregated", 2, 40, NOW)
    assert (refused.value.reason, refused.value.key) == (reason, f"bad-{name}")
    letter = orjson.loads(refused.value.letter)
    assert letter["reason"] == reason
    assert letter["origin"] == {"topic": "aggregated", "partition": 2, "offset": 40}
    assert metrics.counters["dead_lettered"].count == 1
    assert metrics.counters["skipped"].count == (1 if reason == "empty_id" else 0)


def test_a_keyless_bad_message_keeps_the_keyless_marker(caplog: pytest.LogCaptureFixture) -> None:
    reader, _ = intake()
    caplog.set_level(logging.INFO)
    empty_id = next(raw for _, raw, reason in BAD_RECORDS if reason == "empty_id")
    with pytest.raises(DeadLettered) as refused:
        reader.read(KEYLESS, empty_id, "aggregated", 0, 7, NOW)
    # The dead-letter sink turns the marker back into a null key.
    assert refused.value.key == KEYLESS
    assert "[latest_merger] event=skip reason=empty_id" in caplog.text


def test_the_keyed_merge_dead_letters_a_keyless_message() -> None:
    # Its state is keyed by the message key: keyless records of several VINs would share one.
    reader, metrics = intake(keyed_by_message=True)
    raw = GOOD_RECORDS[0]
    assert reader.read(orjson.loads(raw)["vin"], raw, "t", 0, 1, NOW).vin
    with pytest.raises(DeadLettered) as refused:
        reader.read(KEYLESS, raw, "aggregated", 1, 7, NOW)
    assert (refused.value.reason, refused.value.key) == ("missing_key", KEYLESS)
    letter = orjson.loads(refused.value.letter)
    assert letter["origin"] == {"topic": "aggregated", "partition": 1, "offset": 7}
    assert orjson.loads(letter["original"]) == orjson.loads(raw)
    assert metrics.counters["dead_lettered"].count == 1


@pytest.mark.parametrize(("name", "raw", "reason"), BAD_RECORDS, ids=[c[0] for c in BAD_RECORDS])
def test_a_bad_message_is_one_skip_or_error_line(
    name: str, raw: bytes | None, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    reader, _ = intake()
    caplog.set_level(logging.INFO)
    with pytest.raises(DeadLettered):
        reader.read(f"bad-{name}", raw, "aggregated", 2, 40, NOW)
    event = "skip" if reason == "empty_id" else "error"
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"[latest_merger] event={event} reason={reason} ")
    assert "topic=aggregated partition=2 offset=40" in line
