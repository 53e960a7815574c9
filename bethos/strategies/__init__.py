"""Latest-merger strategies (SPEC section 4), chosen by name from one registry.

A strategy is a settings model (its `strategy` field, a literal, is its name) in a module of
its own; adding one means one module here and one line in `REGISTRY`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from bethos.strategies.base import MergerOptions
from bethos.strategies.inline import Inline
from bethos.strategies.log_compacted import LogCompacted
from bethos.strategies.state_store import StateStore
from bethos.strategies.window_stream import WindowStream

REGISTRY: dict[str, type[MergerOptions]] = {
    "log_compacted": LogCompacted,
    "inline": Inline,
    "state_store": StateStore,
    "window_stream": WindowStream,
}
DEFAULT = "log_compacted"


def _default_strategy(value: Any) -> Any:
    if isinstance(value, dict) and "strategy" not in value:
        return {**value, "strategy": DEFAULT}
    return value


StrategySettings = Annotated[
    LogCompacted | Inline | StateStore | WindowStream,
    BeforeValidator(_default_strategy),
    Field(discriminator="strategy"),
]
