"""librdkafka clients made from the settings, whose failures to connect say why.

librdkafka retries a refused login or a failed TLS handshake in the background and reports it
only through its error callback; a call such as `list_topics` then just times out with
"Broker transport failure". `Refusals` is that callback: it keeps what the brokers refused, and
`metadata` asks for the cluster's metadata in short steps, raising `KafkaRefused` with the
brokers' reason as soon as one arrives.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata

from bethos.config import KafkaSettings
from bethos.exceptions import KafkaRefused, KafkaUnreachable

# Codes of a connection the brokers refuse: a login (SASL) or a TLS handshake that failed.
_REFUSED = {
    KafkaError._AUTHENTICATION,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError._SSL,
}


class Refusals:
    """librdkafka's `error_cb`: keeps the first refusal it reports."""

    def __init__(self) -> None:
        self.first: str | None = None

    def __call__(self, error: KafkaError) -> None:
        if error.code() in _REFUSED and self.first is None:
            self.first = error.str()


def config(
    kafka: KafkaSettings, extra: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], Refusals]:
    """A client's configuration (the secret included: never print it) and its refusals."""
    refusals = Refusals()
    return {**kafka.python_client_properties(), **(extra or {}), "error_cb": refusals}, refusals


def admin_client(kafka: KafkaSettings) -> tuple[AdminClient, Refusals]:
    settings, refusals = config(kafka)
    return AdminClient(settings), refusals


def consumer(kafka: KafkaSettings, extra: Mapping[str, Any]) -> tuple[Consumer, Refusals]:
    settings, refusals = config(kafka, extra)
    return Consumer(settings), refusals


def metadata(
    client: AdminClient | Consumer,
    refusals: Refusals,
    kafka: KafkaSettings,
    topic: str | None = None,
    timeout: float = 30.0,
) -> ClusterMetadata:
    """The cluster's metadata (of one topic, if named); KafkaRefused as soon as the brokers
    refuse the client, KafkaUnreachable when none answers within `timeout` seconds. Call it
    before a consumer is assigned partitions."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            return client.list_topics(topic, timeout=max(0.1, min(1.0, remaining)))
        except KafkaException as exc:
            # librdkafka hands errors to `error_cb` only inside poll(); a consumer is not
            # assigned yet here, so its poll serves callbacks and returns no message.
            client.poll(0)
            check(refusals, kafka)
            if time.monotonic() >= deadline:
                raise KafkaUnreachable(
                    f"no Kafka broker at {kafka.brokers} answered within {timeout:g}s "
                    f"({kafka.security.describe()}): {exc.args[0].str()}"
                ) from None


def check(refusals: Refusals, kafka: KafkaSettings) -> None:
    """Raise KafkaRefused if the brokers refused the client."""
    if refusals.first is not None:
        raise KafkaRefused(kafka.brokers, kafka.security.describe(), refusals.first)
