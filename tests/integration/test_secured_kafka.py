"""The pipeline against a real broker that takes only SASL SCRAM logins, over TLS and without:
topics, ETL, merger and verify work; a wrong password fails clearly; the password shows
nowhere (logs, CLI output, the job's configuration and plan over REST, exception text)."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from bethos.config import EtlSettings, MergerSettings, load_settings
from bethos.exceptions import KafkaRefused
from connectors.kafka.admin import create_topics
from devstack import paths
from devstack.cli import data
from devstack.cli.main import main as bethos_main
from devstack.stack import FLINK_REST_PORT, INFLUXDB_PORT, Stack, http_json
from devstack.stack.secured_kafka import SecuredBroker
from tests import stack_lock
from tests.integration.helpers import wait_for, wait_until

pytestmark = pytest.mark.integration

# Unique, so that finding it anywhere is a leak; the quotes, backslash and semicolon test the
# quoting of the JAAS line inside an SQL literal.
TOKEN = uuid.uuid4().hex
PASSWORD = f"p\"w'{TOKEN}\\; x"
WRONG_TOKEN = uuid.uuid4().hex
WRONG = f"wrong-{WRONG_TOKEN}"
USER = "bethos"
REST = f"http://127.0.0.1:{FLINK_REST_PORT}"


@pytest.fixture(scope="module")
def broker() -> Iterator[SecuredBroker]:
    """The secured broker, in one state directory: one module at a time runs it."""
    with stack_lock.resource("secured_kafka"):
        yield from _broker()


def _broker() -> Iterator[SecuredBroker]:
    state = Path(f"{paths.state_dir()}-kafka-secured")
    shutil.rmtree(state, ignore_errors=True)
    secured = SecuredBroker(state)
    try:
        secured.start()
        secured.add_user(USER, PASSWORD)
        yield secured
    finally:
        secured.stop()
    assert not secured.running()
    shutil.rmtree(state, ignore_errors=True)


def security(broker: SecuredBroker, protocol: str, mechanism: str) -> dict[str, object]:
    section: dict[str, object] = {"protocol": protocol, "mechanism": mechanism, "username": USER}
    if protocol == "SASL_SSL":
        section["ca_file"] = str(broker.ca_file)
    return {"brokers": broker.bootstrap(protocol), "security": section}


@pytest.fixture
def configs(stack: Stack, broker: SecuredBroker, unique: str, tmp_path: Path) -> tuple[Path, Path]:
    """The ETL over SASL_SSL with SCRAM-SHA-512, the merger over SASL_PLAINTEXT with
    SCRAM-SHA-256, on topics, a database and a group of their own."""
    topics = {
        "aggregated": f"secured-{unique}.aggregated",
        "latest": f"secured-{unique}.latest",
        "dlq": f"secured-{unique}.dlq",
        "partitions": 2,
    }
    etl = {
        "kafka": security(broker, "SASL_SSL", "SCRAM-SHA-512"),
        "topics": topics,
        "influxdb": {
            "url": f"http://127.0.0.1:{INFLUXDB_PORT}",
            "database": f"secured_{unique}",
            "pods": [f"pod-a-{unique}", f"pod-b-{unique}"],
        },
        "poll_interval": "2s",
        "chunk_duration": "10s",
        "lookback": "10s",
        "backfill": "15m",
    }
    merger = {
        "kafka": security(broker, "SASL_PLAINTEXT", "SCRAM-SHA-256"),
        "topics": topics,
        "latest_merger": {"flush_interval": "3s"},
        "consumer_group": f"secured-{unique}",
        "flink": {"checkpoint_interval": "2s"},
    }
    etl_path, merger_path = tmp_path / "etl.yaml", tmp_path / "merger.yaml"
    etl_path.write_text(yaml.safe_dump(etl))
    merger_path.write_text(yaml.safe_dump(merger))
    return etl_path, merger_path


def rest_texts(job_id: str) -> dict[str, str]:
    """What Flink's REST API shows of a job: its configuration, plan and exceptions, and the
    cluster's configuration."""
    pages = [
        f"/jobs/{job_id}",
        f"/jobs/{job_id}/config",
        f"/jobs/{job_id}/plan",
        f"/jobs/{job_id}/exceptions",
        f"/jobs/{job_id}/checkpoints/config",
        "/jobmanager/config",
    ]
    return {page: str(http_json(REST + page, timeout=10)) for page in pages}


def log_texts(*directories: Path) -> dict[str, str]:
    return {
        str(path): path.read_text(errors="replace")
        for directory in directories
        for path in sorted(directory.rglob("*"))
        if path.is_file() and (path.suffix in (".log", ".out") or "log" in path.name)
    }


def cli(monkeypatch: pytest.MonkeyPatch, brokers: str, *argv: str) -> int:
    """`bethos ARGV` with KAFKA_BROKERS naming the secured listener the config names (else the
    CLI could point it at a local stack's brokers); unset again afterwards, so that a job
    submitted later keeps its config's brokers."""
    with monkeypatch.context() as patch:
        patch.setenv("KAFKA_BROKERS", brokers)
        return bethos_main(list(argv))


def assert_nowhere(token: str, texts: dict[str, str]) -> None:
    leaks = [name for name, text in texts.items() if token in text]
    assert leaks == [], f"the password shows in {leaks}"


def test_secured_topics_etl_merger_verify_and_no_password_anywhere(
    stack: Stack,
    broker: SecuredBroker,
    configs: tuple[Path, Path],
    submit: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    etl_config, merger_config = configs
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", PASSWORD)

    plain, tls = broker.bootstrap("SASL_PLAINTEXT"), broker.bootstrap("SASL_SSL")
    assert cli(monkeypatch, plain, "topics", "create", "--config", str(merger_config)) == 0
    assert cli(monkeypatch, tls, "config", "show", "etl", "--config", str(etl_config)) == 0
    assert cli(monkeypatch, plain, "config", "check", str(merger_config)) == 0
    settings = load_settings(EtlSettings, etl_config)
    assert data.generate(settings, vins=10, rounds=6, round_interval_ms=10_000) == 60

    etl_id = submit("etl", etl_config)
    merger_id = submit("latest_merger", merger_config)
    assert wait_for(lambda: data.verify(settings)[2], timeout=240) == []
    assert cli(monkeypatch, tls, "verify", "--config", str(etl_config)) == 0
    out = capsys.readouterr()
    assert "secured-" in out.out and "verify: OK, 10 VINs" in out.out

    texts = {"cli stdout": out.out, "cli stderr": out.err}
    texts |= {f"etl {k}": v for k, v in rest_texts(etl_id).items()}
    texts |= {f"merger {k}": v for k, v in rest_texts(merger_id).items()}
    logs = log_texts(stack.log_dir, broker.dir / "logs")
    texts |= logs
    assert_nowhere(TOKEN, texts)
    # The scan read the Kafka clients' configuration lines: the JAAS line is there, hidden.
    assert any("sasl.jaas.config = [hidden]" in text for text in logs.values())
    assert any("security.protocol = SASL_SSL" in text for text in logs.values())
    assert any("security.protocol = SASL_PLAINTEXT" in text for text in logs.values())


def test_a_wrong_password_is_refused_clearly(
    stack: Stack,
    broker: SecuredBroker,
    configs: tuple[Path, Path],
    submit: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    etl_config, merger_config = configs
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", WRONG)
    settings = load_settings(MergerSettings, merger_config)

    started = time.monotonic()
    with pytest.raises(KafkaRefused) as refused:
        create_topics(settings.kafka, settings.topics)
    assert time.monotonic() - started < 15
    message = str(refused.value)
    assert f"Kafka at {broker.bootstrap('SASL_PLAINTEXT')} refused the connection" in message
    assert f"SASL_PLAINTEXT, SCRAM-SHA-256 as {USER}" in message
    assert "Authentication failed" in message and "KAFKA_SASL_PASSWORD" in message

    plain, tls = broker.bootstrap("SASL_PLAINTEXT"), broker.bootstrap("SASL_SSL")
    assert cli(monkeypatch, plain, "topics", "create", "--config", str(merger_config)) == 2
    assert cli(monkeypatch, tls, "show", "--config", str(etl_config)) == 2
    out = capsys.readouterr()
    assert out.err.count("bethos: error: Kafka at") == 2, out.err
    assert "SASL_SSL, SCRAM-SHA-512 as bethos" in out.err

    # The job: the merger's source cannot log in; the failure says so.
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", PASSWORD)
    assert cli(monkeypatch, plain, "topics", "create", "--config", str(merger_config)) == 0
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", WRONG)
    job_id = submit("latest_merger", merger_config)

    def root_exception() -> str:
        answer = http_json(f"{REST}/jobs/{job_id}/exceptions", timeout=10)
        history = answer.get("exceptionHistory", {}) if isinstance(answer, dict) else {}
        entries = history.get("entries", []) if isinstance(history, dict) else []
        return "\n".join(str(entry.get("stacktrace", "")) for entry in entries)

    wait_until(lambda: "Authentication failed" in root_exception(), timeout=90)
    failure = root_exception()
    assert "SaslAuthenticationException" in failure
    assert "Authentication failed during authentication due to invalid credentials" in failure
    texts = {"cli": out.out + out.err, "refused": message, "exception": failure}
    texts |= rest_texts(job_id) | log_texts(stack.log_dir)
    assert_nowhere(WRONG_TOKEN, texts)
    assert_nowhere(TOKEN, texts)
