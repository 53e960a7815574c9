"""Settings: one YAML file per pipeline, `${VAR}` / `${VAR:default}` from the environment.

The environment is read here and nowhere else. Secrets (InfluxDB password or token, Kafka SASL
password) come only from the environment and are `SecretStr`, which never prints.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError

from bethos.exceptions import ConfigError
from bethos.sections import DurationMs, Section
from bethos.strategies import REGISTRY, StrategySettings
from bethos.strategies.inline import Inline
from bethos.strategies.log_compacted import LogCompacted

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")
DEFAULT_BROKERS = "localhost:19091,localhost:19092,localhost:19093"
STRATEGIES = tuple(REGISTRY)


class KafkaSettings(Section):
    brokers: str = DEFAULT_BROKERS
    # Extra client properties (security.protocol, sasl.mechanism, ssl.*) pass through unchanged.
    properties: dict[str, str] = Field(default_factory=dict)
    sasl_password: SecretStr | None = None

    def client_properties(self) -> dict[str, str]:
        """Properties for a Kafka client, the secret included (never log the result)."""
        props = {"bootstrap.servers": self.brokers, **self.properties}
        if self.sasl_password is not None:
            props["sasl.password"] = self.sasl_password.get_secret_value()
        return props


class TopicSettings(Section):
    aggregated: str = "sensor-service.dispatch.telemetry-aggregated"
    latest: str = "sensor-service.dispatch.telemetry-latest-compacted"
    dlq: str = "sensor-service.dispatch.telemetry-dlq"
    partitions: int = Field(default=3, ge=1)


class InfluxSettings(Section):
    url: str = "http://localhost:8086"
    database: str = "telemetry"
    username: str = ""
    password: SecretStr | None = None
    ca_file: str | None = None
    measurement: str = "telemetry"
    pod_tag: str = "pod"
    vin_tag: str = "vin"
    layout: Literal["wide", "narrow"] = "wide"
    # Narrow layout only: the tag naming the resource and the field holding its value; the
    # resource is mapped to a signal name by the `resource_map_path` file. A resource missing
    # from the map is either kept under its raw name or dead-lettered (`unmapped_resource`).
    resource_tag: str = Field(default="resource", min_length=1)
    value_field: str = Field(default="value", min_length=1)
    unmapped: Literal["keep", "drop"] = "drop"
    pods: list[str] = Field(min_length=1)
    timeout: DurationMs = 30_000
    # Queries one subtask of the ETL keeps running at once (each for a different pod): while
    # InfluxDB serves one, the job parses and emits another.
    concurrent_reads: int = Field(default=2, ge=1, le=64)


class FlinkSettings(Section):
    parallelism: int = Field(default=1, ge=1)
    checkpoint_interval: DurationMs = 10_000
    rest_port: int = 8081


class EtlSettings(Section):
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    influxdb: InfluxSettings
    flink: FlinkSettings = Field(default_factory=FlinkSettings)
    poll_interval: DurationMs = 10_000
    chunk_duration: DurationMs = 10_000
    lookback: DurationMs = 30_000
    # Points need a moment to become visible in InfluxDB; windows end this long before now.
    ingest_delay: DurationMs = 2_000
    # Where a pod with no saved progress starts: this long before now, or at `start_at`
    # (epoch ms) when that is set.
    backfill: DurationMs = 3_600_000
    start_at: int | None = Field(default=None, ge=0)
    # One poll reads at most this much time, so a catch-up is made of bounded queries.
    max_window: DurationMs = 600_000
    batch_size: int = Field(default=10_000, ge=1)
    resource_map_path: str | None = None
    retry_max_attempts: int = Field(default=5, ge=1)
    retry_initial_interval: DurationMs = 500
    retry_max_interval: DurationMs = 10_000
    checkpoint_path: str | None = None


class MergerSettings(Section):
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    flink: FlinkSettings = Field(default_factory=FlinkSettings)
    latest_merger: StrategySettings = Field(default_factory=LogCompacted)
    consumer_group: str = "bethos-latest-merger"
    start_from_oldest: bool = True


def expand_env(text: str, environ: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is None:
            raise ConfigError(f"environment variable {name} is not set and has no default")
        return default

    return _VAR.sub(replace, text)


def brokers_from_env(environ: Mapping[str, str]) -> str | None:
    """`KAFKA_BROKERS`, or `KAFKA_BROKER_1..N` joined; None when neither is set."""
    if environ.get("KAFKA_BROKERS"):
        return environ["KAFKA_BROKERS"]
    numbered = []
    index = 1
    while environ.get(f"KAFKA_BROKER_{index}"):
        numbered.append(environ[f"KAFKA_BROKER_{index}"])
        index += 1
    return ",".join(numbered) or None


def _inject_environment(doc: dict[str, Any], environ: Mapping[str, str]) -> None:
    kafka = doc.setdefault("kafka", {}) or {}
    doc["kafka"] = kafka
    for section, key in (("kafka", "sasl_password"), ("influxdb", "password")):
        if isinstance(doc.get(section), dict) and key in doc[section]:
            raise ConfigError(f"{section}.{key}: secrets come only from the environment")
    merger = doc.get("latest_merger")
    store = merger.get("state_store") if isinstance(merger, dict) else None
    if isinstance(store, dict):
        if "password" in store:
            raise ConfigError(
                "latest_merger.state_store.password: secrets come only from the environment"
            )
        if environ.get("REDIS_PASSWORD"):
            store["password"] = environ["REDIS_PASSWORD"]
    if "brokers" not in kafka:
        kafka["brokers"] = brokers_from_env(environ) or DEFAULT_BROKERS
    if environ.get("KAFKA_SASL_PASSWORD"):
        kafka["sasl_password"] = environ["KAFKA_SASL_PASSWORD"]
    influx = doc.get("influxdb")
    if isinstance(influx, dict):
        secret = environ.get("INFLUXDB_TOKEN") or environ.get("INFLUXDB_PASSWORD")
        if secret:
            influx["password"] = secret


M = TypeVar("M", bound=BaseModel)


def parse_settings(model: type[M], doc: Any, source: str, environ: Mapping[str, str]) -> M:
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    _inject_environment(doc, environ)
    try:
        settings = model.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        # A discriminated union puts the strategy's name in the path: latest_merger.inline.inline.x
        loc = [str(part) for part in first["loc"]]
        if len(loc) > 1 and loc[0] == "latest_merger" and loc[1] in REGISTRY:
            del loc[1]
        key = ".".join(loc) or "(top level)"
        raise ConfigError(f"{source}: {key}: {first['msg']}") from None
    if (
        isinstance(settings, EtlSettings)
        and settings.influxdb.layout == "narrow"
        and not settings.resource_map_path
    ):
        raise ConfigError(
            f"{source}: resource_map_path: required when influxdb.layout is 'narrow' "
            "(the file mapping resources to signal names)"
        )
    if isinstance(settings, MergerSettings):
        strategy = settings.latest_merger.strategy
        if strategy not in STRATEGIES:
            raise ConfigError(
                f"{source}: latest_merger.strategy: unknown {strategy!r}; "
                f"valid: {', '.join(STRATEGIES)}"
            )
        options = settings.latest_merger
        if (
            isinstance(options, Inline)
            and options.inline.sink == "file"
            and not options.inline.path
        ):
            raise ConfigError(
                f"{source}: latest_merger.inline.path: required when inline.sink is 'file'"
            )
    return settings


def load_settings(model: type[M], path: str | Path, environ: Mapping[str, str] | None = None) -> M:
    env = os.environ if environ is None else environ
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        doc = yaml.safe_load(expand_env(text, env))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    return parse_settings(model, doc, str(path), env)
