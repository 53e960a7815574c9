"""librdkafka clients whose failure to connect names the cause."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError
from pydantic import SecretStr

from bethos.config import KafkaSecurity, KafkaSettings
from bethos.exceptions import KafkaRefused, KafkaUnreachable
from connectors.kafka import clients

KAFKA = KafkaSettings(
    brokers="127.0.0.1:1",
    security=KafkaSecurity.model_validate(
        {
            "protocol": "SASL_SSL",
            "mechanism": "SCRAM-SHA-512",
            "username": "bethos",
            "password": SecretStr("hunter2"),
        }
    ),
)


def test_refusals_keep_the_first_refusal_only() -> None:
    refusals = clients.Refusals()
    refusals(KafkaError(KafkaError._TRANSPORT, "connection refused"))
    assert refusals.first is None
    clients.check(refusals, KAFKA)  # a transport failure is no refusal
    refusals(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: bad"))
    refusals(KafkaError(KafkaError._SSL, "later"))
    assert refusals.first == "SASL authentication error: bad"
    with pytest.raises(KafkaRefused) as info:
        clients.check(refusals, KAFKA)
    assert str(info.value) == (
        "Kafka at 127.0.0.1:1 refused the connection (SASL_SSL, SCRAM-SHA-512 as bethos): "
        "SASL authentication error: bad. Check kafka.security in the settings and the "
        "password in KAFKA_SASL_PASSWORD"
    )


def test_the_client_configuration_holds_the_callback_and_the_extras() -> None:
    config, refusals = clients.config(KAFKA, {"group.id": "g"})
    assert config["error_cb"] is refusals
    assert config["group.id"] == "g"
    assert config["sasl.username"] == "bethos"


def test_no_broker_answering_is_said_in_time() -> None:
    plain = KafkaSettings(brokers="127.0.0.1:1")
    admin, refusals = clients.admin_client(plain)
    started = time.monotonic()
    with pytest.raises(
        KafkaUnreachable,
        match=r"no Kafka broker at 127\.0\.0\.1:1 answered within 2s \(PLAINTEXT\)",
    ):
        clients.metadata(admin, refusals, plain, timeout=2)
    assert time.monotonic() - started < 10
