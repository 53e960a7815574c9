"""The one root exception of bethos and the errors that carry data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class BethosError(Exception):
    """Root of every error bethos raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration: where (a dotted key path, empty when the problem is
    not about one key, and the file's line when known) and what."""

    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class ConfigError(BethosError):
    """A configuration file or value is invalid. It carries every problem found, not only the
    first (`problems`, each naming its key), and the file they are in (`source`); `str()` lists
    them all, one line each: `source[:line]: key: message`."""

    def __init__(
        self,
        message: str | None = None,
        *,
        problems: Iterable[ConfigProblem] = (),
        source: str | None = None,
    ) -> None:
        self.problems = tuple(problems)
        if message is not None:
            self.problems = (ConfigProblem("", message), *self.problems)
        self.source = source
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [_located(self.source, problem) + str(problem) for problem in self.problems]


def _located(source: str | None, problem: ConfigProblem) -> str:
    if source is None:
        return f"line {problem.line}: " if problem.line is not None else ""
    return f"{source}:{problem.line}: " if problem.line is not None else f"{source}: "


class RecordError(BethosError):
    """An input record cannot be used. `reason` is the dead-letter reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class DeadLettered(BethosError):
    """A record the merger's intake refused, already counted and logged: its message `key` and
    `letter` (the dead letter's JSON, `bethos.deadletter`) go to the dead-letter output."""

    def __init__(self, reason: str, key: str, letter: str) -> None:
        super().__init__(f"dead-lettered: {reason}")
        self.reason = reason
        self.key = key
        self.letter = letter


class SourceError(BethosError):
    """A read from InfluxDB failed; the window it belonged to is retried."""


class TruncatedError(SourceError):
    """InfluxDB returned a cut result (a result or series still `partial` at the end): the
    window is split and each part read again."""


class ProgressFileError(BethosError):
    """The ETL's progress file (`checkpoint_path`) exists but cannot be used; the message names
    it."""


class StoreError(BethosError):
    """A latest-store operation failed; the message names the store and never holds a password."""


class KafkaUnreachable(BethosError):
    """No Kafka broker answered in time; the message names the brokers and the security used,
    never a password."""


class KafkaRefused(KafkaUnreachable):
    """The brokers refused the client: a failed login (SASL) or TLS handshake. `reason` is the
    brokers' own, which holds no password."""

    def __init__(self, brokers: str, security: str, reason: str) -> None:
        super().__init__(
            f"Kafka at {brokers} refused the connection ({security}): {reason}. Check "
            "kafka.security in the settings and the password in KAFKA_SASL_PASSWORD"
        )
        self.brokers = brokers
        self.security = security
        self.reason = reason
