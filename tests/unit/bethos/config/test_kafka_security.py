"""`kafka.security` and its adapters to the Java client's and librdkafka's properties."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from bethos.config import KafkaSettings, MergerSettings, load_settings
from bethos.config.kafka_security import (
    SHADED_KAFKA,
    KafkaSecurity,
    java_client_properties,
    python_client_properties,
)
from bethos.exceptions import ConfigError
from connectors.kafka.tables import source_table_ddl, upsert_sink_ddl

PASSWORD = "pa\"ss\\wo'rd; x"
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def sasl(protocol: str = "SASL_PLAINTEXT", mechanism: str = "SCRAM-SHA-512") -> KafkaSecurity:
    return KafkaSecurity.model_validate(
        {
            "protocol": protocol,
            "mechanism": mechanism,
            "username": "bethos",
            "password": SecretStr(PASSWORD),
        }
    )


def test_plaintext_adds_no_property() -> None:
    assert java_client_properties(KafkaSecurity()) == {}
    assert python_client_properties(KafkaSecurity()) == {}
    assert KafkaSettings(brokers="h:1").java_client_properties() == {"bootstrap.servers": "h:1"}


@pytest.mark.parametrize(
    ("mechanism", "module"),
    [
        ("SCRAM-SHA-512", "org.apache.kafka.common.security.scram.ScramLoginModule"),
        ("SCRAM-SHA-256", "org.apache.kafka.common.security.scram.ScramLoginModule"),
        ("PLAIN", "org.apache.kafka.common.security.plain.PlainLoginModule"),
    ],
)
def test_the_java_client_gets_a_jaas_line_with_the_relocated_module(
    mechanism: str, module: str
) -> None:
    props = java_client_properties(sasl(mechanism=mechanism))
    assert props == {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        # The JAAS parser reads backslash escapes inside double quotes.
        "sasl.jaas.config": f"{SHADED_KAFKA}{module} required "
        'username="bethos" password="pa\\"ss\\\\wo\'rd; x";',
    }
    unrelocated = java_client_properties(sasl(mechanism=mechanism), kafka_package="")
    assert unrelocated["sasl.jaas.config"].startswith(f"{module} required ")


def test_librdkafka_gets_its_own_keys() -> None:
    assert python_client_properties(sasl("SASL_SSL")) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "bethos",
        "sasl.password": PASSWORD,
    }


def test_a_ca_file_is_a_location_for_librdkafka_and_pem_certificates_for_java(
    tmp_path: Path,
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(CA)
    security = KafkaSecurity(protocol="SSL", ca_file=str(ca))
    assert python_client_properties(security) == {
        "security.protocol": "SSL",
        "ssl.ca.location": str(ca),
    }
    # The certificates themselves: the TaskManagers need not have the file.
    assert java_client_properties(security) == {
        "security.protocol": "SSL",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.certificates": CA,
    }


def test_the_properties_never_print_the_password() -> None:
    kafka = KafkaSettings(brokers="h:1", security=sasl())
    for props in (kafka.java_client_properties(), kafka.python_client_properties()):
        unescaped = "wo'rd; x"  # a part of the password that both clients get as it is
        assert any(unescaped in value for value in props.values())
        for text in (repr(props), str(props), f"{props}", repr(props | {"group.id": "g"})):
            assert unescaped not in text and "**********" in text
    for text in (repr(kafka), str(kafka), kafka.model_dump_json()):
        assert PASSWORD not in text


def test_the_sql_tables_carry_the_java_properties_quoted() -> None:
    kafka = KafkaSettings(brokers="h:1", security=sasl())
    ddl = source_table_ddl("t", "topic", kafka, "g", from_earliest=True)
    assert "'properties.security.protocol' = 'SASL_PLAINTEXT'" in ddl
    assert "'properties.sasl.mechanism' = 'SCRAM-SHA-512'" in ddl
    # The SQL literal doubles the quote the password holds.
    assert "password=\"pa\\\"ss\\\\wo''rd; x\";'" in ddl
    assert "'properties.sasl.password'" not in ddl
    assert "'properties.sasl.jaas.config'" in upsert_sink_ddl("o", "topic", kafka)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return path


SASL_FILE = "kafka:\n  security: {protocol: SASL_SSL, mechanism: SCRAM-SHA-256, username: u}\n"


def test_the_password_comes_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings(
        MergerSettings, write(tmp_path, SASL_FILE), {"KAFKA_SASL_PASSWORD": "from-env"}
    )
    security = settings.kafka.security
    assert security.password is not None
    assert security.password.get_secret_value() == "from-env"
    assert security.describe() == "SASL_SSL, SCRAM-SHA-256 as u"


def problems(path: Path, environ: dict[str, str]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        load_settings(MergerSettings, path, environ)
    return [(problem.key, problem.message) for problem in info.value.problems]


def test_sasl_without_a_password_says_which_variable(tmp_path: Path) -> None:
    assert problems(write(tmp_path, SASL_FILE), {}) == [
        (
            "kafka.security.password",
            "required when protocol is SASL_SSL: set the environment variable KAFKA_SASL_PASSWORD",
        )
    ]


def test_sasl_without_mechanism_and_user(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka: {security: {protocol: SASL_PLAINTEXT}}\n")
    found = problems(path, {"KAFKA_SASL_PASSWORD": "pw"})
    assert [key for key, _ in found] == ["kafka.security.mechanism", "kafka.security.username"]


def test_a_password_without_sasl_is_an_error_not_ignored(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "consumer_group: g\n"), {"KAFKA_SASL_PASSWORD": "pw"})
    assert len(found) == 1
    key, message = found[0]
    assert key == "kafka.security.password"
    assert "protocol is PLAINTEXT" in message and "pw" not in message


def test_a_password_in_the_file_is_refused_and_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, SASL_FILE.replace("username: u", "username: u, password: in-file"))
    found = problems(path, {})
    assert ("kafka.security.password", "required") not in found
    assert any(
        key == "kafka.security.password" and "only from the environment" in message
        for key, message in found
    )
    assert all("in-file" not in message for _, message in found)


def test_variables_left_empty_leave_the_keys_unset(tmp_path: Path) -> None:
    text = (
        "kafka:\n  security:\n    protocol: ${P:PLAINTEXT}\n"
        '    mechanism: "${M:}"\n    username: "${U:}"\n    ca_file: "${C:}"\n'
    )
    settings = load_settings(MergerSettings, write(tmp_path, text), {})
    assert settings.kafka.security == KafkaSecurity()


def test_a_ca_file_that_is_no_pem(tmp_path: Path) -> None:
    ca = tmp_path / "ca.txt"
    ca.write_text("not a certificate\n")
    path = write(tmp_path, f"kafka: {{security: {{protocol: SSL, ca_file: {ca}}}}}\n")
    assert problems(path, {}) == [
        (
            "kafka.security.ca_file",
            f"{ca} holds no PEM certificate (-----BEGIN CERTIFICATE----- ... lines)",
        )
    ]
