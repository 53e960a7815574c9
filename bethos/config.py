"""Settings: one YAML file per job, checked whole at load (SPEC section 5).

Why pydantic-settings: the settings are pydantic models already, and pydantic-settings is the
library, maintained with pydantic, that stacks *sources* (a file, the environment) under such a
model in a stated order and validates the merged values once, so that every error comes out of
one validation. The hand-written loader it replaces ran a regex over the YAML text, which let an
environment value inject keys. Its own sources do not fit as they are: its YAML source keeps the
last of two duplicate keys silently and knows no `${VAR}`, and its environment source maps every
field to a variable; so both sources here are small subclasses of its source classes.

How the sources stack, highest first (`JobSettings.settings_customise_sources`):

1. `EnvironmentSource`: the variables that SPEC section 5 names, and only those:

   =========================================================  ==================================
   `KAFKA_BROKERS`, else `KAFKA_BROKER_1..N` joined by commas  `kafka.brokers`
   `KAFKA_SASL_PASSWORD`                                       `kafka.sasl_password`
   `INFLUXDB_TOKEN`, else `INFLUXDB_PASSWORD` (ETL)            `influxdb.password`
   `REDIS_PASSWORD` (strategy `state_store`)                   `latest_merger.state_store.password`
   =========================================================  ==================================

   Secrets come from here only (as `SecretStr`); a secret key in the file is an error.
2. `YamlSource`: the job's file, parsed strictly (a duplicate key is an error with its path and
   line), then `${VAR}` and `${VAR:default}` replaced inside string values. The replacement
   comes after parsing, so a value from the environment is always one scalar (it cannot add
   keys) and a `${X}` in a comment is never seen.
3. The models' defaults.

Sources merge section by section: `KAFKA_BROKERS` replaces `kafka.brokers` and keeps the file's
other `kafka` keys. Both sources read the `environ` mapping given to `load_settings` (the entry
points pass `os.environ`, tests their own), nowhere else. The merged values are validated once;
the rules across keys are model validators (`CheckedSection`), and `ConfigError` lists every
problem of every stage, each with its key path and, when known, its line.

pydantic-settings' hook is a classmethod, so the file and the environment of one load reach the
sources through a context variable, set while `load_settings` or `parse_settings` builds the
model. A job model built any other way (`EtlSettings(...)`, `model_validate`) reads nothing but
its input: its only source is then its arguments.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bethos.durations import format_duration_ms as _ms
from bethos.exceptions import ConfigError, ConfigProblem
from bethos.sections import (
    RULE_ERROR,
    Broken,
    CheckedSection,
    DurationMs,
    PositiveDurationMs,
    Rule,
    Section,
    model_at,
)
from bethos.strategies import REGISTRY, StrategySettings
from bethos.strategies.base import MergerOptions
from bethos.strategies.inline import Inline
from bethos.strategies.log_compacted import LogCompacted
from bethos.strategies.state_store import StateStore
from bethos.strategies.window_stream import WindowStream

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")
_NUMBERED_BROKER = re.compile(r"KAFKA_BROKER_([0-9]+)")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_BROKER = re.compile(
    r"(?:[A-Za-z][A-Za-z0-9+.-]*://)?(?:\[[0-9A-Fa-f:.]+\]|[^\s:/,\[\]]+):([0-9]{1,5})"
)
DEFAULT_BROKERS = "localhost:19091,localhost:19092,localhost:19093"
STRATEGIES = tuple(REGISTRY)
# Flink refuses a shorter checkpoint interval (CheckpointConfig.MINIMAL_CHECKPOINT_TIME).
MIN_CHECKPOINT_INTERVAL_MS = 10
MASK = "**********"

KeyPath = tuple[str, ...]
"""A key path, each part as text (list indexes too)."""


def _dotted(path: Iterable[object]) -> str:
    return ".".join(str(part) for part in path)


def mask_url(text: str) -> str:
    """`text` with the password of a URL in it masked (`redis://user:**********@host`)."""
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return text
    if not password:
        return text
    return parts._replace(netloc=parts.netloc.replace(f":{password}@", f":{MASK}@", 1)).geturl()


def _url_password(url: str, variables: str) -> Iterator[str]:
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        yield f"holds a password: secrets come only from the environment ({variables})"


def _is_topic_name(name: str) -> bool:
    return _TOPIC.fullmatch(name) is not None and name not in (".", "..")


def _topic_name(value: str) -> str:
    if not _is_topic_name(value):
        raise ValueError(
            f"not a Kafka topic name: {value!r} (1 to 249 letters, digits, '.', '_' or '-')"
        )
    return value


TopicName = Annotated[str, AfterValidator(_topic_name)]


# -- the models ----------------------------------------------------------------------------------


class KafkaSettings(CheckedSection):
    # `host:port` entries separated by commas; KAFKA_BROKERS or KAFKA_BROKER_1..N override it.
    brokers: str = DEFAULT_BROKERS
    # Extra client properties (security.protocol, sasl.mechanism, ssl.*) pass through unchanged.
    properties: dict[str, str] = Field(default_factory=dict)
    sasl_password: SecretStr | None = None

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
            elif _is_secret_property(key):
                yield Broken(
                    ("properties", key),
                    "secrets come only from the environment (the SASL password from "
                    "KAFKA_SASL_PASSWORD), never from a file",
                )

    rules: ClassVar[tuple[Rule, ...]] = (_properties_hold_no_secret,)

    def client_properties(self) -> dict[str, str]:
        """Properties for a Kafka client, the secret included (never log the result)."""
        props = {"bootstrap.servers": self.brokers, **self.properties}
        if self.sasl_password is not None:
            props["sasl.password"] = self.sasl_password.get_secret_value()
        return props


def _valid_broker(entry: str) -> bool:
    match = _BROKER.fullmatch(entry)
    return match is not None and 0 < int(match.group(1)) < 65_536


def _is_secret_property(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in ("password", "secret", "jaas"))


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
        for message in _url_password(self.url, "INFLUXDB_PASSWORD or INFLUXDB_TOKEN"):
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


class FlinkSettings(Section):
    parallelism: int = Field(default=1, ge=1)
    checkpoint_interval: DurationMs = 10_000
    rest_port: int = Field(default=8081, ge=1, le=65_535)

    @field_validator("checkpoint_interval")
    @classmethod
    def _flink_minimum(cls, value: int) -> int:
        if value < MIN_CHECKPOINT_INTERVAL_MS:
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


def _strategy_key(options: MergerOptions, *keys: str) -> tuple[str, ...]:
    # Tagged like pydantic's own errors inside the union; the tag is dropped when reported.
    return ("latest_merger", options.strategy, *keys)


class MergerSettings(JobSettings):
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    flink: FlinkSettings = Field(default_factory=FlinkSettings)
    latest_merger: StrategySettings = Field(default_factory=LogCompacted)
    consumer_group: str = Field(default="bethos-latest-merger", min_length=1)
    start_from_oldest: bool = True

    # The strategies' own sections belong to bethos/strategies; the rules that keep a job from
    # failing after it started, and those that need the topics, are checked here.
    def _flush_timing(self) -> Iterator[Broken]:
        options = self.latest_merger
        if options.flush_interval <= 0:
            yield Broken(_strategy_key(options, "flush_interval"), "must be more than 0")
        if options.vin_ttl is not None and options.vin_ttl <= 0:
            yield Broken(_strategy_key(options, "vin_ttl"), "must be more than 0 when set")

    def _inline_file_has_a_path(self) -> Iterator[Broken]:
        options = self.latest_merger
        if (
            isinstance(options, Inline)
            and options.inline.sink == "file"
            and not options.inline.path
        ):
            yield Broken(
                _strategy_key(options, "inline", "path"), "required when inline.sink is 'file'"
            )

    def _inline_kafka_topic(self) -> Iterator[Broken]:
        options = self.latest_merger
        if not isinstance(options, Inline) or options.inline.sink != "kafka":
            return
        inline, where = options.inline, _strategy_key(options, "inline", "topic")
        topic = inline.topic or self.topics.latest
        if inline.topic is not None and not _is_topic_name(topic):
            yield Broken(where, f"not a Kafka topic name: {topic!r}")
        elif topic in (self.topics.aggregated, self.topics.dlq):
            yield Broken(
                where,
                f"{topic!r} is an input of the merger (topics.aggregated) or its dead-letter "
                "topic: writing the latest records there feeds them back",
            )
        elif inline.batch_size > 1 and topic == self.topics.latest:
            yield Broken(
                where,
                f"required, and not topics.latest, when inline.batch_size is above 1 (it is "
                f"{inline.batch_size}): a batch holds several VINs, so it has no key; the "
                "compacted latest topic refuses keyless messages, and keyed batches would be "
                "compacted away. Name another topic",
            )

    def _state_store_timing(self) -> Iterator[Broken]:
        options = self.latest_merger
        if not isinstance(options, StateStore):
            return
        store = options.state_store
        url_key = _strategy_key(options, "state_store", "redis_url")
        for message in _url_password(store.redis_url, "REDIS_PASSWORD"):
            yield Broken(url_key, message)
        if store.publish_interval <= 0:
            yield Broken(
                _strategy_key(options, "state_store", "publish_interval"), "must be more than 0"
            )
        if store.backend == "redis" and urlsplit(store.redis_url).scheme not in (
            "redis",
            "rediss",
            "unix",
        ):
            yield Broken(
                url_key,
                f"not a Redis URL: {mask_url(store.redis_url)!r} "
                "(redis://host:port/db, rediss:// or unix://)",
            )

    def _window_timing(self) -> Iterator[Broken]:
        options = self.latest_merger
        if not isinstance(options, WindowStream):
            return
        if options.window.size <= 0:
            yield Broken(_strategy_key(options, "window", "size"), "must be more than 0")
        if options.window.idleness <= 0:
            yield Broken(
                _strategy_key(options, "window", "idleness"),
                "must be more than 0 (Flink's idleness detection refuses 0)",
            )

    rules: ClassVar[tuple[Rule, ...]] = (
        _flush_timing,
        _inline_file_has_a_path,
        _inline_kafka_topic,
        _state_store_timing,
        _window_timing,
    )


# -- the environment -----------------------------------------------------------------------------


def expand_env(text: str, environ: Mapping[str, str]) -> str:
    """`text` with `${VAR}` and `${VAR:default}` replaced; ConfigError names a missing VAR."""
    expanded, missing, _ = _expand(text, environ)
    if missing:
        raise ConfigError(
            f"environment variable {', '.join(missing)} is not set and has no default"
        )
    return expanded


def _expand(text: str, environ: Mapping[str, str]) -> tuple[str, list[str], list[str]]:
    """The expanded text, the variables missing, and the variables used. One pass: a value from
    the environment is not expanded again."""
    missing: list[str] = []
    used: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        used.append(name)
        if name in environ:
            return environ[name]
        if default is None:
            missing.append(name)
            return match.group(0)
        return default

    return _VAR.sub(replace, text), missing, used


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


# (key path, variables in the order tried) of each secret; the first one set wins.
_SECRETS: tuple[tuple[KeyPath, tuple[str, ...]], ...] = (
    (("kafka", "sasl_password"), ("KAFKA_SASL_PASSWORD",)),
    (("influxdb", "password"), ("INFLUXDB_TOKEN", "INFLUXDB_PASSWORD")),
    (("latest_merger", "state_store", "password"), ("REDIS_PASSWORD",)),
)


# -- one load ------------------------------------------------------------------------------------


@dataclass
class YamlDocument:
    """A parsed YAML file: its values, the line of each key path, and its duplicate keys."""

    values: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)


@dataclass
class _Load:
    document: YamlDocument
    environ: Mapping[str, str]
    problems: list[ConfigProblem] = field(default_factory=list)
    # Key path -> where its value came from when not written in the file as it is.
    origins: dict[KeyPath, str] = field(default_factory=dict)
    # Key paths whose `${VAR}` is not set: reported once, not again by validation.
    unset: set[KeyPath] = field(default_factory=set)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of the key path, or of the nearest key above it that the file has."""
        for end in range(len(path), 0, -1):
            line = self.document.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def problem(self, path: KeyPath, message: str) -> None:
        self.problems.append(ConfigProblem(_dotted(path), message, self.line_of(path)))


_LOAD: ContextVar[_Load | None] = ContextVar("bethos_settings_load", default=None)


class YamlSource(InitSettingsSource):
    """The job's YAML file, `${VAR}` / `${VAR:default}` replaced in string values (after
    parsing), secret keys refused."""

    def __init__(self, settings_cls: type[BaseSettings], load: _Load) -> None:
        values = _substitute(load.document.values, (), load, set())
        for path, variables in _SECRETS:
            if _pop(values, path):
                load.problem(
                    path,
                    f"secrets come only from the environment ({' or '.join(variables)}), "
                    "never from a file",
                )
        self.values: dict[str, Any] = values
        super().__init__(settings_cls, values)


def _substitute(value: Any, path: KeyPath, load: _Load, seen: set[int]) -> Any:
    if isinstance(value, str):
        expanded, missing, used = _expand(value, load.environ)
        for name in missing:
            load.problem(path, f"environment variable {name} is not set and has no default")
            load.unset.add(path)
        if used:
            load.origins[path] = ", ".join(f"${{{name}}}" for name in used)
        if _VAR.sub("", value).find("${") >= 0:
            load.problem(
                path, f"malformed ${{...}} in {value!r} (use ${{NAME}} or ${{NAME:default}})"
            )
        return expanded
    if isinstance(value, dict | list):
        if id(value) in seen:  # an alias of a structure containing itself
            return value
        seen = seen | {id(value)}
        if isinstance(value, dict):  # keys as text: YAML reads `1:` or `on:` as other types
            return {
                str(key): _substitute(item, (*path, str(key)), load, seen)
                for key, item in value.items()
            }
        return [_substitute(item, (*path, str(i)), load, seen) for i, item in enumerate(value)]
    return value


def _pop(values: Any, path: KeyPath) -> bool:
    """Remove the key path from nested dicts; True if it was there."""
    *parents, last = path
    for key in parents:
        values = values.get(key) if isinstance(values, dict) else None
    if isinstance(values, dict) and last in values:
        del values[last]
        return True
    return False


class EnvironmentSource(PydanticBaseSettingsSource):
    """The variables of SPEC section 5 (see the module docstring), from the load's mapping."""

    def __init__(
        self, settings_cls: type[BaseSettings], load: _Load, file_values: Mapping[str, Any]
    ) -> None:
        super().__init__(settings_cls)
        self._load = load
        self._file = file_values
        self._values: dict[str, Any] = {}
        environ = load.environ
        brokers = brokers_from_env(environ)
        if environ.get("KAFKA_BROKERS"):
            self._put(("kafka", "brokers"), brokers, "KAFKA_BROKERS")
        elif brokers is not None:
            count = brokers.count(",") + 1
            self._put(("kafka", "brokers"), brokers, f"KAFKA_BROKER_1..{count}")
        self._check_broker_numbers()
        fields = settings_cls.model_fields
        for path, variables in _SECRETS:
            if path[0] not in fields or not self._applies(path):
                continue
            for variable in variables:
                if environ.get(variable):
                    self._put(path, environ[variable], variable)
                    break

    def _applies(self, path: KeyPath) -> bool:
        if path[0] != "latest_merger":
            return True
        merger = self._file.get("latest_merger")
        return isinstance(merger, dict) and merger.get("strategy") == "state_store"

    def _put(self, path: KeyPath, value: Any, variable: str) -> None:
        # Only into sections that the file leaves out or writes as a mapping: a file's
        # `kafka: 5` stays its own error instead of being replaced.
        file: Any = self._file
        target = self._values
        for key in path[:-1]:
            file = file.get(key) if isinstance(file, dict) else None
            if file is not None and not isinstance(file, dict):
                return
            target = target.setdefault(key, {})
        target[path[-1]] = value
        self._load.origins[path] = variable

    def _check_broker_numbers(self) -> None:
        environ = self._load.environ
        if environ.get("KAFKA_BROKERS"):
            return
        numbers = sorted(
            int(match.group(1))
            for name, value in environ.items()
            if value and (match := _NUMBERED_BROKER.fullmatch(name))
        )
        if numbers and numbers != list(range(1, len(numbers) + 1)):
            names = ", ".join(f"KAFKA_BROKER_{number}" for number in numbers)
            self._load.problems.append(
                ConfigProblem(
                    "kafka.brokers",
                    f"KAFKA_BROKER_1..N must be numbered from 1 without a gap; set: {names}",
                )
            )

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return (
            self._values.get(field_name),
            field_name,
            isinstance(self._values.get(field_name), dict),
        )

    def __call__(self) -> dict[str, Any]:
        return self._values


# -- loading -------------------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: str | Path) -> YamlDocument:
    """Parse a YAML file strictly: a duplicate key is a problem (with its path and line). An
    unreadable file or invalid YAML raises ConfigError."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8: {exc.reason}", source=source) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        document = YamlDocument(None)
        if node is not None:
            _index(node, (), document, set())
            document.values = loader.construct_document(node)
        return document
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            problems=[ConfigProblem("", f"invalid YAML: {what}", line)], source=source
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", source=source) from None
    finally:
        loader.dispose()


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _index(node: yaml.Node, path: KeyPath, document: YamlDocument, seen: set[int]) -> None:
    """Record the line of every key path and report duplicate keys."""
    if id(node) in seen:
        return
    seen = seen | {id(node)}
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key, line = str(key_node.value), key_node.start_mark.line + 1
            here = (*path, key)
            if key in first:
                document.problems.append(
                    ConfigProblem(
                        _dotted(here), f"duplicate key (first at line {first[key]})", line
                    )
                )
            else:
                first[key] = line
                document.lines[here] = line
            _index(value_node, here, document, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            here = (*path, str(index))
            document.lines.setdefault(here, item.start_mark.line + 1)
            _index(item, here, document, seen)


def parse_settings(model: type[M], doc: Any, source: str, environ: Mapping[str, str]) -> M:
    """Settings from a parsed document (`${VAR}` replaced here) and the environment mapping."""
    return _load(model, YamlDocument(doc), source, environ)


def load_settings(model: type[M], path: str | Path, environ: Mapping[str, str] | None = None) -> M:
    """Settings from a YAML file and the environment (`os.environ` unless given)."""
    document = read_yaml(path)
    return _load(model, document, str(path), os.environ if environ is None else environ)


def _load(model: type[M], document: YamlDocument, source: str, environ: Mapping[str, str]) -> M:
    if not issubclass(model, JobSettings):
        raise TypeError(f"{model.__name__} is not a job's settings (JobSettings)")
    if not isinstance(document.values, dict):
        found = "the file is empty" if document.values is None else type(document.values).__name__
        raise ConfigError(
            problems=[
                *document.problems,
                ConfigProblem("", f"the top level must be a mapping of keys (found {found})"),
            ],
            source=source,
        )
    load = _Load(document, environ)
    token = _LOAD.set(load)
    errors: list[Any] = []
    settings = None
    try:
        settings = model()
    except ValidationError as exc:
        errors = exc.errors()
    finally:
        _LOAD.reset(token)
    problems = [*document.problems, *load.problems]
    for error in errors:
        problem = _problem(model, error, load)
        if problem is not None:
            problems.append(problem)
    if problems or settings is None:
        # In the file's order; problems of the environment (no line) last.
        problems.sort(key=lambda p: (p.line is None, p.line or 0))
        raise ConfigError(problems=problems, source=source)
    return settings


def _problem(model: type[BaseModel], error: Any, load: _Load) -> ConfigProblem | None:
    """The problem of a pydantic error; None when a source reported it already."""
    loc = [str(part) for part in error["loc"]]
    # A discriminated union puts the strategy's name in the path: latest_merger.inline.inline.x
    if len(loc) > 1 and loc[0] == "latest_merger" and loc[1] in REGISTRY:
        del loc[1]
    if any(tuple(loc[: len(unset)]) == unset for unset in load.unset):
        return None
    kind, value = error["type"], error["input"]
    secret = bool(loc) and _is_secret_property(loc[-1])
    if kind == "union_tag_invalid":
        tag = value.get("strategy") if isinstance(value, dict) else value
        loc.append("strategy")
        message = f"unknown strategy {tag!r}; valid: {', '.join(map(repr, STRATEGIES))}"
    elif kind == "extra_forbidden":
        message = "unknown key" + _did_you_mean(model, error["loc"])
    elif kind == "missing":
        message = "required"
    else:
        message = error["msg"].removeprefix("Value error, ")
        shown: object = mask_url(value) if isinstance(value, str) else value
        if not isinstance(shown, str | int | float | bool):
            shown = None
        said = repr(shown) in message
        if kind != RULE_ERROR and shown is not None and not secret and not said:
            message += f" (got {shown!r})"
    path = tuple(loc)
    origin = load.origins.get(path)
    if origin is not None and kind not in ("extra_forbidden", RULE_ERROR):
        message += f" (from {origin})"
    # A value from an environment variable has no line in the file.
    from_variable = origin is not None and not origin.startswith("${")
    return ConfigProblem(_dotted(path), message, None if from_variable else load.line_of(path))


def _did_you_mean(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """A close key of the section that holds an unknown key, if there is one."""
    section = model_at(model, loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), list(section.model_fields) if section else [])
    return f" (did you mean {close[0]!r}?)" if close else ""
