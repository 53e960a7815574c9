"""The settings models: the sections (Kafka, topics, InfluxDB, Flink), the jobs' settings
(`EtlSettings`, `MergerSettings`, on their base `JobSettings`) and their rules across keys.
The `latest_merger` section is the one of the strategy it names, looked up in
`bethos.strategy_registry`: its keys every strategy shares are `MergerOptions` here, each
strategy's own settings and rules are in `bethos/strategies`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    SerializeAsAny,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bethos.config.kafka_security import (
    SECURITY_PROPERTIES,
    ClientProperties,
    KafkaSecurity,
    is_sensitive,
    java_client_properties,
    python_client_properties,
)
from bethos.config.sources import _LOAD, EnvironmentSource, YamlSource
from bethos.durations import format_duration_ms as _ms
from bethos.record_limits import RecordLimits
from bethos.sections import (
    Broken,
    CheckedSection,
    DurationMs,
    OneOf,
    PositiveDurationMs,
    Rule,
    Section,
)
from bethos.strategy_registry import DEFAULT, STRATEGIES, names
from bethos.urls import mask_url, url_password

_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_BROKER = re.compile(
    r"(?:[A-Za-z][A-Za-z0-9+.-]*://)?(?:\[[0-9A-Fa-f:.]+\]|[^\s:/,\[\]]+):([0-9]{1,5})"
)
DEFAULT_BROKERS = "localhost:19091,localhost:19092,localhost:19093"
# Flink refuses a shorter checkpoint interval (CheckpointConfig.MINIMAL_CHECKPOINT_TIME).
MIN_CHECKPOINT_INTERVAL_MS = 10
# A job's checkpoint interval when `flink.checkpoint_interval` is unset; with exactly-once
# delivery the merger checkpoints at a tenth of its flush interval within these bounds
# (`MergerSettings.checkpoint_interval_ms`).
DEFAULT_CHECKPOINT_INTERVAL_MS = 10_000
MIN_DERIVED_CHECKPOINT_INTERVAL_MS = 2_000


def is_topic_name(name: str) -> bool:
    return _TOPIC.fullmatch(name) is not None and name not in (".", "..")


def _topic_name(value: str) -> str:
    if not is_topic_name(value):
        raise ValueError(
            f"not a Kafka topic name: {value!r} (1 to 249 letters, digits, '.', '_' or '-')"
        )
    return value


TopicName = Annotated[str, AfterValidator(_topic_name)]


# -- the models ----------------------------------------------------------------------------------


class KafkaSettings(CheckedSection):
    # `host:port` entries separated by commas; KAFKA_BROKERS or KAFKA_BROKER_1..N override it.
    brokers: str = DEFAULT_BROKERS
    # How the clients authenticate and trust the brokers; the password from KAFKA_SASL_PASSWORD.
    security: KafkaSecurity = Field(default_factory=KafkaSecurity)
    # Extra client properties, passed unchanged to both clients (the jobs' Java client and the
    # tooling's librdkafka): no security key (kafka.security sets those) and no secret.
    properties: dict[str, str] = Field(default_factory=dict)

    @field_validator("brokers")
    @classmethod
    def _brokers_are_host_port(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",")]
        bad = [entry for entry in entries if not _valid_broker(entry)]
        if bad:
            raise ValueError(
                f"not host:port: {', '.join(repr(entry) for entry in bad)} "
                "(brokers are host:port entries separated by commas)"
            )
        return ",".join(entries)

    def _properties_hold_no_secret(self) -> Iterator[Broken]:
        for key in self.properties:
            if key == "bootstrap.servers":
                yield Broken(
                    ("properties", key),
                    "set by kafka.brokers (or KAFKA_BROKERS / KAFKA_BROKER_1..N): remove it here",
                )
            elif is_sensitive(key):
                yield Broken(
                    ("properties", key),
                    "secrets come only from the environment (the SASL password from "
                    "KAFKA_SASL_PASSWORD), never from a file",
                )
            elif key in SECURITY_PROPERTIES:
                yield Broken(
                    ("properties", key),
                    "set by kafka.security (protocol, mechanism, username, ca_file), which "
                    "gives each client its own keys: remove it here",
                )

    rules: ClassVar[tuple[Rule, ...]] = (_properties_hold_no_secret,)

    def java_client_properties(self) -> ClientProperties:
        """The jobs' Java client properties, the secret included (never log the result)."""
        return ClientProperties(
            {"bootstrap.servers": self.brokers, **self.properties}
        ) | java_client_properties(self.security)

    def python_client_properties(self) -> ClientProperties:
        """librdkafka's properties, the secret included (never log the result)."""
        return ClientProperties(
            {"bootstrap.servers": self.brokers, **self.properties}
        ) | python_client_properties(self.security)


def _valid_broker(entry: str) -> bool:
    match = _BROKER.fullmatch(entry)
    return match is not None and 0 < int(match.group(1)) < 65_536


class TopicSettings(CheckedSection):
    aggregated: TopicName = "sensor-service.dispatch.telemetry-aggregated"
    latest: TopicName = "sensor-service.dispatch.telemetry-latest-compacted"
    dlq: TopicName = "sensor-service.dispatch.telemetry-dlq"
    partitions: int = Field(default=3, ge=1)

    def _topics_differ(self) -> Iterator[Broken]:
        # The merger reads `aggregated` and writes `latest` and `dlq`: a shared topic feeds a
        # job's output back into its input.
        seen: dict[str, str] = {}
        for key in ("aggregated", "latest", "dlq"):
            name = getattr(self, key)
            if name in seen:
                yield Broken(
                    (key,), f"the same topic as topics.{seen[name]} ({name!r}); each must differ"
                )
            seen.setdefault(name, key)

    rules: ClassVar[tuple[Rule, ...]] = (_topics_differ,)


class InfluxSettings(CheckedSection):
    url: str = "http://localhost:8086"
    database: str = Field(default="telemetry", min_length=1)
    username: str = ""
    password: SecretStr | None = None
    ca_file: str | None = None
    measurement: str = Field(default="telemetry", min_length=1)
    pod_tag: str = Field(default="pod", min_length=1)
    vin_tag: str = Field(default="vin", min_length=1)
    layout: Literal["wide", "narrow"] = "wide"
    # Narrow layout only: the tag naming the resource and the field holding its value; the
    # resource is mapped to a signal name by the `resource_map_path` file. A resource missing
    # from the map is either kept under its raw name or dead-lettered (`unmapped_resource`).
    resource_tag: str = Field(default="resource", min_length=1)
    value_field: str = Field(default="value", min_length=1)
    unmapped: Literal["keep", "drop"] = "drop"
    # The pods to poll: at least one, each named once.
    pods: list[str]
    timeout: PositiveDurationMs = 30_000
    # Queries one subtask of the ETL keeps running at once (each for a different pod): while
    # InfluxDB serves one, the job parses and emits another.
    concurrent_reads: int = Field(default=2, ge=1, le=64)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            shown = mask_url(value)
            raise ValueError(f"not an http(s) URL: {shown!r} (e.g. http://localhost:8086)")
        return value

    def _url_without_password(self) -> Iterator[Broken]:
        for message in url_password(self.url, "INFLUXDB_PASSWORD or INFLUXDB_TOKEN"):
            yield Broken(("url",), message)

    def _pods_named_once(self) -> Iterator[Broken]:
        if not self.pods:
            yield Broken(("pods",), "at least one pod is required")
        first: dict[str, int] = {}
        for index, pod in enumerate(self.pods):
            if not pod.strip():
                yield Broken(("pods", index), "a pod name cannot be empty")
            elif pod in first:
                yield Broken(
                    ("pods", index), f"pod {pod!r} is listed twice (first at index {first[pod]})"
                )
            first.setdefault(pod, index)

    rules: ClassVar[tuple[Rule, ...]] = (_pods_named_once, _url_without_password)


# What a Kafka producer sends at most by default (`max.request.size`), and what a broker takes.
KAFKA_MESSAGE_LIMIT = 1_048_576


class LimitSettings(Section):
    """Bounds on a VIN's latest record (`bethos.record_limits`): what would break one is refused
    into the dead-letter topic instead of failing the sink."""

    max_signals_per_vin: int = Field(default=10_000, ge=1)
    max_value_bytes: int = Field(default=65_536, ge=1)
    # Under the latest topic's max.message.bytes and the producer's max.request.size (1 MiB),
    # with room for the message's key and headers.
    max_record_bytes: int = Field(default=1_000_000, ge=1_024, le=KAFKA_MESSAGE_LIMIT - 4_096)

    def build(self) -> RecordLimits:
        return RecordLimits(self.max_signals_per_vin, self.max_value_bytes, self.max_record_bytes)


class FlinkSettings(Section):
    # Unset: Flink's own (`flink run -p N`, else the cluster's `parallelism.default`).
    parallelism: int | None = Field(default=None, ge=1)
    # Unset: the job's own default (`EtlSettings` / `MergerSettings.checkpoint_interval_ms`).
    checkpoint_interval: DurationMs | None = None
    rest_port: int = Field(default=8081, ge=1, le=65_535)
    # The key groups keyed state is split into: the most subtasks a keyed operator can ever run
    # at. Fixed once savepoints exist (Flink restores none taken with another). 128 is what
    # Flink chose itself for these jobs before it was set, so their savepoints restore.
    max_parallelism: int = Field(default=128, ge=1, le=32_768)
    # hashmap: state on the JVM heap, fastest while it fits; rocksdb: on local disk, with
    # incremental checkpoints, for state beyond the TaskManager's memory.
    state_backend: Literal["hashmap", "rocksdb"] = "hashmap"
    # Snappy over each key group of a checkpoint or savepoint of the hashmap backend (Flink's
    # one codec for it; RocksDB compresses its files itself). Snapshots taken with or without
    # it restore either way: Flink records it in each snapshot.
    snapshot_compression: bool = True

    @field_validator("checkpoint_interval")
    @classmethod
    def _flink_minimum(cls, value: int | None) -> int | None:
        if value is not None and value < MIN_CHECKPOINT_INTERVAL_MS:
            raise ValueError(f"must be at least {MIN_CHECKPOINT_INTERVAL_MS}ms, Flink's minimum")
        return value


class JobSettings(BaseSettings, CheckedSection):
    """A job's settings, loaded by `load_settings` from its file and the environment."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", case_sensitive=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        load = _LOAD.get()
        if load is None:  # built in code: the values given, nothing from outside
            return (init_settings,)
        file = YamlSource(settings_cls, load)
        return (init_settings, EnvironmentSource(settings_cls, load, file.values), file)


class EtlSettings(JobSettings):
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    influxdb: InfluxSettings
    flink: FlinkSettings = Field(default_factory=FlinkSettings)
    poll_interval: PositiveDurationMs = 10_000
    chunk_duration: PositiveDurationMs = 10_000
    # Each poll re-reads this much before the pod's progress (late points); at most max_window.
    lookback: DurationMs = 30_000
    # Points need a moment to become visible in InfluxDB; windows end this long before now.
    ingest_delay: DurationMs = 2_000
    # Where a pod with no saved progress starts: this long before now, or at `start_at`
    # (epoch ms) when that is set.
    backfill: DurationMs = 3_600_000
    start_at: int | None = Field(default=None, ge=0)
    # One poll reads at most this much time, so a catch-up is made of bounded queries.
    max_window: PositiveDurationMs = 600_000
    batch_size: int = Field(
        default=10_000,
        ge=1,
        description=(
            "Rows per piece of InfluxDB's streamed (chunked) response: sent as the `chunk_size` "
            "query parameter, so it bounds what one piece holds in memory. It does not bound a "
            "query (`chunk_duration` does) nor group records for Kafka."
        ),
    )
    resource_map_path: str | None = None
    retry_max_attempts: int = Field(default=5, ge=1)
    retry_initial_interval: PositiveDurationMs = 500
    retry_max_interval: PositiveDurationMs = 10_000
    checkpoint_path: str | None = None
    # Every reconcile_interval (0: never) each pod's last reconcile_window is counted in
    # InfluxDB per chunk_duration bucket; buckets that grew since they were read (points
    # written later than the lookback) are read again.
    reconcile_interval: DurationMs = 300_000
    reconcile_window: PositiveDurationMs = 3_600_000

    def _lookback_within_max_window(self) -> Iterator[Broken]:
        if self.lookback > self.max_window:
            yield Broken(
                ("lookback",),
                f"{_ms(self.lookback)} is more than max_window ({_ms(self.max_window)}): a poll "
                "reads at most max_window past the progress, so it would re-read more than it "
                "moves on",
            )

    def _retry_intervals_in_order(self) -> Iterator[Broken]:
        if self.retry_initial_interval > self.retry_max_interval:
            yield Broken(
                ("retry_initial_interval",),
                f"{_ms(self.retry_initial_interval)} is more than retry_max_interval "
                f"({_ms(self.retry_max_interval)})",
            )

    def _narrow_layout_has_a_map(self) -> Iterator[Broken]:
        if self.influxdb.layout == "narrow" and not self.resource_map_path:
            yield Broken(
                ("resource_map_path",),
                "required when influxdb.layout is 'narrow' (the file mapping resources to "
                "signal names)",
            )

    rules: ClassVar[tuple[Rule, ...]] = (
        _lookback_within_max_window,
        _retry_intervals_in_order,
        _narrow_layout_has_a_map,
    )

    @property
    def checkpoint_interval_ms(self) -> int:
        """`flink.checkpoint_interval`, else 10 s."""
        interval = self.flink.checkpoint_interval
        return DEFAULT_CHECKPOINT_INTERVAL_MS if interval is None else interval


class MergerOptions(CheckedSection):
    """The `latest_merger` section: the strategy's name (`strategy`), the flush and the keys
    below; each strategy (`bethos/strategies`) adds its own section, its rules and a `build()`
    returning its logic."""

    strategy: str
    flush_interval: DurationMs = 120_000
    emit: Literal["changed", "all"] = "changed"
    # Spread the per-VIN flushes over the interval instead of one burst.
    stagger: bool = True
    # A VIN with no reading for this long is emitted once as a tombstone and forgotten.
    vin_ttl: DurationMs | None = None
    # A merger starting without state first loads the `latest` topic.
    bootstrap_from_latest: bool = True
    # How the latest topic is written: in Kafka transactions committed with each checkpoint
    # (a `read_committed` reader never sees a VIN's values go back after a restore; records
    # appear up to one checkpoint interval later), or at least once (at once; a restore may
    # publish a VIN's older values again).
    delivery: Literal["exactly_once", "at_least_once"] = "exactly_once"
    # The census counts the VINs whose newest reading is at least this old, per threshold.
    silence_thresholds: tuple[DurationMs, ...] = (600_000, 3_600_000, 86_400_000)

    # A zero interval or time to live would fail the job after it started.
    def _flush_timing(self) -> Iterator[Broken]:
        if self.flush_interval <= 0:
            yield Broken(("flush_interval",), "must be more than 0")
        if self.vin_ttl is not None and self.vin_ttl <= 0:
            yield Broken(("vin_ttl",), "must be more than 0 when set")
        thresholds = self.silence_thresholds
        if any(t <= 0 for t in thresholds) or list(thresholds) != sorted(set(thresholds)):
            yield Broken(("silence_thresholds",), "must be more than 0, ascending, each once")
        if len(thresholds) > 8:
            yield Broken(("silence_thresholds",), "at most 8 thresholds")

    rules: ClassVar[tuple[Rule, ...]] = (_flush_timing,)

    def build(self) -> object:
        """The strategy's logic, free of Flink (each strategy narrows the type)."""
        raise NotImplementedError(f"strategy {self.strategy!r} has no build()")

    def topic_problems(self, topics: TopicSettings) -> Iterator[Broken]:
        """The strategy's rules that need the `topics` section, at key paths inside this one
        (`MergerSettings` checks them)."""
        return iter(())


def _strategy_model(name: str) -> type[Any] | None:
    strategy = STRATEGIES.get(name)
    return None if strategy is None else strategy.settings()


def _default_strategy() -> MergerOptions:
    options: MergerOptions = STRATEGIES[DEFAULT].settings()()
    return options


_STRATEGY = OneOf("strategy", DEFAULT, _strategy_model, names)
StrategySection = Annotated[
    SerializeAsAny[MergerOptions], BeforeValidator(_STRATEGY.validate), _STRATEGY
]
"""The `latest_merger` section, validated by the model of the strategy it names (the registry's
`DEFAULT` when it names none): code narrows it with isinstance."""


class MergerSettings(JobSettings):
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    flink: FlinkSettings = Field(default_factory=FlinkSettings)
    latest_merger: StrategySection = Field(default_factory=_default_strategy)
    consumer_group: str = Field(default="bethos-latest-merger", min_length=1)
    start_from_oldest: bool = True
    limits: LimitSettings = Field(default_factory=LimitSettings)

    # Each strategy checks its own keys (bethos/strategies); the rules that need another
    # section, the topics, are the strategy's `topic_problems`, checked here.
    def _strategy_topics(self) -> Iterator[Broken]:
        for broken in self.latest_merger.topic_problems(self.topics):
            yield Broken(("latest_merger", *broken.loc), broken.message)

    rules: ClassVar[tuple[Rule, ...]] = (_strategy_topics,)

    @property
    def checkpoint_interval_ms(self) -> int:
        """`flink.checkpoint_interval`; unset, 10 s, or with `delivery: exactly_once` a tenth of
        the flush interval between 2 s and 10 s. An exactly-once record becomes visible at the
        checkpoint after its flush, so the checkpoint interval adds to the flush interval in a
        reader's delay: a tenth keeps that addition small for short flush intervals, and the
        shipped 2-minute flush keeps checkpoints every 10 s."""
        interval = self.flink.checkpoint_interval
        if interval is not None:
            return interval
        if self.latest_merger.delivery != "exactly_once":
            return DEFAULT_CHECKPOINT_INTERVAL_MS
        tenth = self.latest_merger.flush_interval // 10
        return min(DEFAULT_CHECKPOINT_INTERVAL_MS, max(MIN_DERIVED_CHECKPOINT_INTERVAL_MS, tenth))

    def transactional_id_prefix(self, writer: str) -> str | None:
        """With `delivery: exactly_once`, the prefix of the transactional ids of one of this
        merger's Kafka writers (`latest`, `publisher`, `inline`): stable across restarts and
        savepoints, and unique per merger through its consumer group. None: at least once."""
        if self.latest_merger.delivery != "exactly_once":
            return None
        return f"bethos-{self.consumer_group}-{writer}"
