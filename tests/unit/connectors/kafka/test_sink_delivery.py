from __future__ import annotations

from bethos.config import KafkaSettings, MergerSettings
from connectors.kafka.tables import (
    COORDINATOR_WAIT_MS,
    TRANSACTION_TIMEOUT_MS,
    append_sink_ddl,
    source_table_ddl,
    upsert_sink_ddl,
)


def test_a_sink_with_a_transactional_id_prefix_writes_exactly_once() -> None:
    kafka = KafkaSettings()
    exactly = upsert_sink_ddl("latest_out", "latest", kafka, "bethos-g-latest")
    assert "'sink.delivery-guarantee' = 'exactly-once'" in exactly
    assert "'sink.transactional-id-prefix' = 'bethos-g-latest'" in exactly
    # Within the brokers' default transaction.max.timeout.ms (15 min).
    assert f"'properties.transaction.timeout.ms' = '{TRANSACTION_TIMEOUT_MS}'" in exactly
    assert TRANSACTION_TIMEOUT_MS <= 900_000
    # Longer than the producer's default 60 s, shorter than Flink's task.cancellation.timeout.
    assert f"'properties.max.block.ms' = '{COORDINATOR_WAIT_MS}'" in exactly
    assert 60_000 < COORDINATOR_WAIT_MS < 180_000
    for plain in (upsert_sink_ddl("t", "x", kafka), append_sink_ddl("t", "x", kafka)):
        assert "'sink.delivery-guarantee' = 'at-least-once'" in plain
        assert "transactional" not in plain and "max.block.ms" not in plain


def test_sources_read_only_committed_records() -> None:
    ddl = source_table_ddl("aggregated_in", "agg", KafkaSettings(), "group", True)
    assert "'properties.isolation.level' = 'read_committed'" in ddl


def test_the_merger_writes_exactly_once_by_default_with_prefixes_of_its_own() -> None:
    settings = MergerSettings.model_validate(
        {"latest_merger": {"strategy": "log_compacted"}, "consumer_group": "fleet-a"}
    )
    assert settings.transactional_id_prefix("latest") == "bethos-fleet-a-latest"
    assert settings.transactional_id_prefix("publisher") == "bethos-fleet-a-publisher"
    once = MergerSettings.model_validate(
        {"latest_merger": {"strategy": "log_compacted", "delivery": "at_least_once"}}
    )
    assert once.transactional_id_prefix("latest") is None
