"""What every settings section shares: frozen, no unknown keys, durations in milliseconds."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict

from bethos.durations import parse_duration_ms
from bethos.exceptions import ConfigError


def _duration(value: str | int) -> int:
    try:
        return parse_duration_ms(value)
    except ConfigError as exc:  # pydantic reports ValueErrors with the key's location
        raise ValueError(str(exc)) from None


DurationMs = Annotated[int, BeforeValidator(_duration)]


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
