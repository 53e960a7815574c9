from __future__ import annotations

import re
from pathlib import Path

import pytest

from bethos.config import (
    DEFAULT_BROKERS,
    EtlSettings,
    MergerSettings,
    brokers_from_env,
    expand_env,
    load_settings,
)
from bethos.durations import parse_duration_ms
from bethos.exceptions import ConfigError

ROOT = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_project_configs_load_with_defaults() -> None:
    etl = load_settings(EtlSettings, ROOT / "config" / "etl.yaml", environ={})
    merger = load_settings(MergerSettings, ROOT / "config" / "latest_merger.yaml", environ={})
    assert etl.poll_interval == 10_000
    assert etl.kafka.brokers == DEFAULT_BROKERS
    assert merger.latest_merger.strategy == "log_compacted"
    assert merger.latest_merger.flush_interval == 120_000
    assert merger.topics.latest == "sensor-service.dispatch.telemetry-latest-compacted"


def test_env_substitution_with_and_without_default() -> None:
    assert expand_env("a ${X} ${Y:dflt} ${Z:}", {"X": "1"}) == "a 1 dflt "
    with pytest.raises(ConfigError, match="MISSING"):
        expand_env("${MISSING}", {})


def test_brokers_from_env_numbered_and_joined() -> None:
    assert brokers_from_env({"KAFKA_BROKERS": "h:1"}) == "h:1"
    assert brokers_from_env({"KAFKA_BROKER_1": "a:1", "KAFKA_BROKER_2": "b:2"}) == "a:1,b:2"
    assert brokers_from_env({}) is None


def test_a_bad_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "influxdb: {pods: [a]}\npoll_interval: soon\n")
    with pytest.raises(ConfigError, match="poll_interval"):
        load_settings(EtlSettings, path, environ={})
    path = write(tmp_path, "influxdb: {pods: [a], podz: 1}\n")
    with pytest.raises(ConfigError, match=r"influxdb\.podz"):
        load_settings(EtlSettings, path, environ={})


def test_an_unknown_strategy_lists_the_valid_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "latest_merger: {strategy: fastest}\n")
    with pytest.raises(
        ConfigError, match="'log_compacted', 'inline', 'state_store', 'window_stream'"
    ):
        load_settings(MergerSettings, path, environ={})


def test_secrets_come_from_the_environment_only(tmp_path: Path) -> None:
    path = write(tmp_path, "influxdb: {pods: [a], password: hunter2}\n")
    with pytest.raises(ConfigError, match="environment"):
        load_settings(EtlSettings, path, environ={})
    path = write(tmp_path, "influxdb: {pods: [a], username: u}\n")
    settings = load_settings(EtlSettings, path, environ={"INFLUXDB_PASSWORD": "hunter2"})
    assert settings.influxdb.password is not None
    assert settings.influxdb.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)


def test_durations() -> None:
    assert parse_duration_ms("500ms") == 500
    assert parse_duration_ms("10s") == 10_000
    assert parse_duration_ms("2m") == 120_000
    assert parse_duration_ms("1h") == 3_600_000
    assert parse_duration_ms(250) == 250
    for bad in ("ten", "-1s", "1w", True):
        with pytest.raises(ConfigError):
            parse_duration_ms(bad)  # type: ignore[arg-type]


def test_strategy_sections_and_their_checks(tmp_path: Path) -> None:
    store = load_settings(MergerSettings, ROOT / "config" / "state_store.yaml", environ={})
    assert store.latest_merger.strategy == "state_store"
    assert store.latest_merger.state_store.key_prefix == "bethos:latest"
    with_secret = load_settings(
        MergerSettings, ROOT / "config" / "state_store.yaml", environ={"REDIS_PASSWORD": "pw"}
    )
    secret = with_secret.latest_merger.state_store.password
    assert secret is not None and secret.get_secret_value() == "pw"
    assert "pw" not in repr(with_secret)
    path = write(tmp_path, "latest_merger:\n  state_store:\n    password: x\n")
    with pytest.raises(ConfigError, match=re.escape("state_store.password: secrets come only")):
        load_settings(MergerSettings, path, environ={})
    path = write(tmp_path, "latest_merger:\n  strategy: inline\n  inline:\n    sink: file\n")
    with pytest.raises(ConfigError, match=re.escape("inline.path: required")):
        load_settings(MergerSettings, path, environ={})
    path = write(tmp_path, "latest_merger:\n  strategy: inline\n  inline:\n    batch_size: 0\n")
    with pytest.raises(ConfigError, match=re.escape("latest_merger.inline.batch_size")):
        load_settings(MergerSettings, path, environ={})
    path = write(tmp_path, "latest_merger:\n  strategy: window_stream\n  window:\n    size: soon\n")
    with pytest.raises(ConfigError, match=re.escape("latest_merger.window.size")):
        load_settings(MergerSettings, path, environ={})
