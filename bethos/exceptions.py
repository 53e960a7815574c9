"""The one root exception of bethos and the errors that carry data."""

from __future__ import annotations


class BethosError(Exception):
    """Root of every error bethos raises on purpose."""


class ConfigError(BethosError):
    """A configuration file or value is invalid; the message names the key."""


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
