"""`inline`: the same merge, emitted straight to stdout, a JSON-lines file or a Kafka topic."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bethos.sections import DurationMs, Section
from bethos.strategies.base import MergerOptions


class InlineSettings(Section):
    sink: Literal["stdout", "file", "kafka"] = "stdout"
    path: str | None = None
    # The Kafka topic; the `latest` topic when not set.
    topic: str | None = None
    # VINs per message: above 1, a message is a JSON array of latest records.
    batch_size: int = Field(default=1, ge=1, le=10_000)
    # How long a partial batch waits for more VINs.
    linger: DurationMs = 200


class Inline(MergerOptions):
    strategy: Literal["inline"] = "inline"
    inline: InlineSettings = Field(default_factory=InlineSettings)
