"""Kafka security (`kafka.security`) and its two adapters, one per client.

The jobs talk to Kafka through Flink's Kafka connector, a Java client configured by the SQL
tables' `properties.*` options (`connectors/kafka/tables.py`); the Python tooling (topic
creation, verify, status) through librdkafka (confluent-kafka). They name the same settings
differently, and each refuses or ignores the other's keys:

==================  ========================================  ==========================
setting             Java client                               librdkafka
==================  ========================================  ==========================
protocol            `security.protocol`                       `security.protocol`
mechanism           `sasl.mechanism`                          `sasl.mechanism`
username, password  `sasl.jaas.config` (a login module line)  `sasl.username`,
                                                              `sasl.password`
ca_file (PEM)       `ssl.truststore.type` PEM and             `ssl.ca.location`
                    `ssl.truststore.certificates` (the file's
                    certificates themselves)
==================  ========================================  ==========================

The Java client gets the CA's certificates rather than the file's path: the path is read where
the job is submitted, while the client runs on the TaskManagers, which may not have the file.

The password comes only from the environment (`KAFKA_SASL_PASSWORD`, see `bethos.config`), is a
`SecretStr`, and the adapters return `ClientProperties`, whose `repr()` masks it. Flink masks
option values whose key holds `password` or `jaas.config` wherever it prints table options.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, SecretStr

from bethos.exceptions import ConfigError
from bethos.sections import Broken, CheckedSection, Rule
from bethos.urls import MASK


def _empty_is_unset(value: object) -> object:
    # `${KAFKA_SASL_MECHANISM:}` in a file gives "" when the variable is not set.
    return None if value == "" else value


Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
Optional = BeforeValidator(_empty_is_unset)

PASSWORD_VARIABLE = "KAFKA_SASL_PASSWORD"

SHADED_KAFKA = "org.apache.flink.kafka.shaded."
"""Where `flink-sql-connector-kafka` relocates the Kafka client's classes: a login module in
`sasl.jaas.config` must be named as the jar holds it."""

_LOGIN_MODULES: dict[str, str] = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}

SECURITY_PROPERTIES = frozenset(
    {
        "security.protocol",
        "sasl.mechanism",
        "sasl.mechanisms",
        "sasl.username",
        "sasl.password",
        "sasl.jaas.config",
        "ssl.ca.location",
        "ssl.ca.pem",
        "ssl.truststore.location",
        "ssl.truststore.type",
        "ssl.truststore.certificates",
    }
)
"""Client properties that `kafka.security` sets: a pass-through `kafka.properties` entry must
not set them too."""

_SENSITIVE = ("password", "secret", "jaas", "ssl.key.pem", "ssl.keystore.key")


def is_sensitive(key: str) -> bool:
    """Whether a client property holds a secret (its value is never shown)."""
    lowered = key.lower()
    return any(word in lowered for word in _SENSITIVE)


class ClientProperties(dict[str, str]):
    """A Kafka client's properties, secrets included: pass it to the client, never print it.
    `repr()` and `str()` mask the secret values; `|` keeps the type."""

    def __repr__(self) -> str:
        shown = {key: MASK if is_sensitive(key) else value for key, value in self.items()}
        return f"{type(self).__name__}({shown!r})"

    __str__ = __repr__

    def __or__(self, other: Mapping[str, str]) -> ClientProperties:  # type: ignore[override]
        return ClientProperties({**self, **other})


def _is_sasl(protocol: str) -> bool:
    return protocol.startswith("SASL_")


def _is_tls(protocol: str) -> bool:
    return protocol in ("SSL", "SASL_SSL")


class KafkaSecurity(CheckedSection):
    """How the clients authenticate to the brokers and trust them."""

    protocol: Protocol = "PLAINTEXT"
    # SASL only (SASL_PLAINTEXT, SASL_SSL): the mechanism and the user; the password comes
    # from KAFKA_SASL_PASSWORD only.
    mechanism: Annotated[Mechanism | None, Optional] = None
    username: Annotated[str | None, Optional] = None
    password: SecretStr | None = None
    # TLS only (SSL, SASL_SSL): a PEM file of the certificates that sign the brokers'
    # certificates; without it, the system's trusted CAs.
    ca_file: Annotated[str | None, Optional] = None

    def _sasl_is_complete(self) -> Iterator[Broken]:
        protocol = self.protocol
        if _is_sasl(protocol):
            if self.mechanism is None:
                yield Broken(
                    ("mechanism",),
                    f"required when protocol is {protocol}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                )
            if not self.username:
                yield Broken(("username",), f"required when protocol is {protocol}")
            if self.password is None or not self.password.get_secret_value():
                yield Broken(
                    ("password",),
                    f"required when protocol is {protocol}: set the environment variable "
                    f"{PASSWORD_VARIABLE}",
                )
            return
        sasl_only = "only used with SASL_PLAINTEXT or SASL_SSL"
        if self.mechanism is not None:
            yield Broken(("mechanism",), f"{sasl_only}; protocol is {protocol}")
        if self.username:
            yield Broken(("username",), f"{sasl_only}; protocol is {protocol}")
        if self.password is not None:
            yield Broken(
                ("password",),
                f"{PASSWORD_VARIABLE} is set but protocol is {protocol}, which sends no "
                "password: set kafka.security.protocol to SASL_PLAINTEXT or SASL_SSL, or unset "
                f"{PASSWORD_VARIABLE}",
            )

    def _ca_file_is_for_tls(self) -> Iterator[Broken]:
        if self.ca_file is None:
            return
        if not _is_tls(self.protocol):
            yield Broken(
                ("ca_file",), f"only used with SSL or SASL_SSL; protocol is {self.protocol}"
            )
            return
        try:
            read_certificates(self.ca_file)
        except ConfigError as exc:
            yield Broken(("ca_file",), str(exc))

    rules: ClassVar[tuple[Rule, ...]] = (_sasl_is_complete, _ca_file_is_for_tls)

    def describe(self) -> str:
        """One line, no secret: `SASL_SSL, SCRAM-SHA-512 as bethos`."""
        if not _is_sasl(self.protocol):
            return self.protocol
        return f"{self.protocol}, {self.mechanism} as {self.username}"


_BEGIN = "-----BEGIN CERTIFICATE-----"


def read_certificates(path: str) -> str:
    """The PEM certificates of a CA file; ConfigError says why the file cannot serve."""
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not ASCII text"
        raise ConfigError(f"cannot read the CA file {path}: {reason}") from None
    if _BEGIN not in text:
        raise ConfigError(f"{path} holds no PEM certificate ({_BEGIN} ... lines)")
    return text


def _jaas_quoted(value: str) -> str:
    # The JAAS parser reads a double-quoted string with backslash escapes.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def java_client_properties(
    security: KafkaSecurity, kafka_package: str = SHADED_KAFKA
) -> ClientProperties:
    """The Java client's security properties (none for PLAINTEXT). `kafka_package` prefixes the
    login module's class: the relocation of the connector jar, or "" for an unrelocated
    kafka-clients jar."""
    props = ClientProperties()
    if security.protocol == "PLAINTEXT":
        return props
    props["security.protocol"] = security.protocol
    if _is_sasl(security.protocol) and security.mechanism is not None:
        password = "" if security.password is None else security.password.get_secret_value()
        module = kafka_package + _LOGIN_MODULES[security.mechanism]
        props["sasl.mechanism"] = security.mechanism
        props["sasl.jaas.config"] = (
            f"{module} required username={_jaas_quoted(security.username or '')} "
            f"password={_jaas_quoted(password)};"
        )
    if _is_tls(security.protocol) and security.ca_file is not None:
        props["ssl.truststore.type"] = "PEM"
        props["ssl.truststore.certificates"] = read_certificates(security.ca_file)
    return props


def python_client_properties(security: KafkaSecurity) -> ClientProperties:
    """librdkafka's security properties (none for PLAINTEXT)."""
    props = ClientProperties()
    if security.protocol == "PLAINTEXT":
        return props
    props["security.protocol"] = security.protocol
    if _is_sasl(security.protocol) and security.mechanism is not None:
        props["sasl.mechanism"] = security.mechanism
        props["sasl.username"] = security.username or ""
        if security.password is not None:
            props["sasl.password"] = security.password.get_secret_value()
    if _is_tls(security.protocol) and security.ca_file is not None:
        props["ssl.ca.location"] = security.ca_file
    return props
