"""Latest-merger strategies (docs/CONTRACT.md), chosen by name from one registry.

A strategy is a settings model whose `strategy` field, a literal, is its name, and whose
`build()` returns its logic, free of Flink (the per-VIN flush in `flushing`, batching, the store
plan, the windows). Each lives in a module of its own here:

    log_compacted.py  inline.py  state_store.py  window_stream.py

Its Flink wiring is one module of the same name in `bethos/flink/strategies/`, chosen by the
same name from `bethos.flink.strategies.WIRING`. Adding a fifth strategy means: one module here
(settings model with `build()`) and its line in `REGISTRY`; one wiring
module in `bethos/flink/strategies/` and its line in `WIRING`. A unit test checks that both
mappings name the same strategies; an unknown name fails when the settings load, naming them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

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


if TYPE_CHECKING:
    # For the type checker, any strategy's settings; code narrows with isinstance.
    StrategySettings = MergerOptions
else:
    # The `latest_merger` section: the registry's models, told apart by their `strategy` literal.
    StrategySettings = Annotated[
        Union[tuple(REGISTRY.values())],  # noqa: UP007 (built from the registry at run time)
        BeforeValidator(_default_strategy),
        Field(discriminator="strategy"),
    ]
