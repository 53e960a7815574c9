"""The settings sources of one load: the job's YAML file (`${VAR}` replaced after parsing, secret
keys refused) and the environment variables of the settings (docs/CONTRACT.md); both read the load's
`environ` mapping, nowhere else. How they stack is in the package docstring (`bethos.config`).

The load being built (`_Load`: the parsed file, the environment, the problems found) reaches the
sources through the context variable `_LOAD`, which `load_settings` and `parse_settings` set
(`bethos.config.loading`) and `JobSettings.settings_customise_sources` reads
(`bethos.config.models`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource

from bethos.exceptions import ConfigError, ConfigProblem
from bethos.strategy_registry import STRATEGIES

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")
_NUMBERED_BROKER = re.compile(r"KAFKA_BROKER_([0-9]+)")

KeyPath = tuple[str, ...]
"""A key path, each part as text (list indexes too)."""


def _dotted(path: Iterable[object]) -> str:
    return ".".join(str(part) for part in path)


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


# (key path, variables in the order tried, the strategy it belongs to) of each secret; the first
# variable set wins. A strategy's secret is taken only when the file picks that strategy.
_SECRETS: tuple[tuple[KeyPath, tuple[str, ...], str | None], ...] = (
    (("kafka", "security", "password"), ("KAFKA_SASL_PASSWORD",), None),
    (("influxdb", "password"), ("INFLUXDB_TOKEN", "INFLUXDB_PASSWORD"), None),
    *(
        (("latest_merger", *path), variables, strategy.name)
        for strategy in STRATEGIES.values()
        for path, variables in strategy.secrets
    ),
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
        for path, variables, _ in _SECRETS:
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
    """The settings' environment variables (see the package docstring), from the load's mapping."""

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
        for path, variables, strategy in _SECRETS:
            if path[0] not in fields or not self._picks(strategy):
                continue
            for variable in variables:
                if environ.get(variable):
                    self._put(path, environ[variable], variable)
                    break

    def _picks(self, strategy: str | None) -> bool:
        if strategy is None:
            return True
        merger = self._file.get("latest_merger")
        return isinstance(merger, dict) and merger.get("strategy") == strategy

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
