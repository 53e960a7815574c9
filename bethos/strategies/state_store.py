"""`state_store`: flushes write to a store (Redis or memory); a separate publisher job emits what
changed to the `latest` topic."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from bethos.sections import DurationMs, Section
from bethos.strategies.base import MergerOptions


class StateStoreSettings(Section):
    backend: Literal["redis", "memory"] = "redis"
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "bethos:latest"
    # VINs per pipelined (one round trip, atomic) write.
    batch_size: int = Field(default=2_000, ge=1, le=5_000)
    linger: DurationMs = 200
    # How often the publisher reads the store.
    publish_interval: DurationMs = 120_000
    password: SecretStr | None = None


class StateStore(MergerOptions):
    strategy: Literal["state_store"] = "state_store"
    state_store: StateStoreSettings = Field(default_factory=StateStoreSettings)
