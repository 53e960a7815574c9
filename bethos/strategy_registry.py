"""The latest merger's strategies (docs/CONTRACT.md), each registered once, here, by its name.

A strategy's entry yields everything the strategy is:

- its settings model (`settings()`): the `latest_merger` section of that strategy, a
  `bethos.config.MergerOptions` whose `strategy` is the name and whose `build()` returns the
  strategy's logic, free of Flink (one module of `bethos/strategies/`);
- its Flink wiring (`wiring()`): `wire(graph, options)` in one module of the Flink layer;
- the environment variables of its secrets, if it has some (`secrets`).

Both modules are named by path and imported only when asked for: the settings loader imports
the model of the strategy a file names, the Flink layer imports the wiring. So this registry,
the settings (`bethos.config`) and the command line (its choices are `names()`) import no
strategy and no Flink. Adding a strategy means its settings module, its wiring module, and its
entry here; an unknown name fails when the settings load, naming the registered ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KeyPath = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str
    settings_model: str
    """`module:Class` of its settings model."""
    wiring_module: str
    """The module whose `wire(graph, options)` builds its operators on the merge graph."""
    secrets: tuple[tuple[KeyPath, tuple[str, ...]], ...] = ()
    """(key path inside `latest_merger`, variables in the order tried) of each secret: taken
    from the environment when a file picks this strategy, refused in any file."""

    def settings(self) -> type[Any]:
        """The settings model (a `bethos.config.MergerOptions`), imported now."""
        module, _, name = self.settings_model.partition(":")
        model: type[Any] = getattr(importlib.import_module(module), name)
        return model

    def wiring(self) -> Callable[[Any, Any], None]:
        """`wire(graph, options)` of the Flink layer, imported now (it imports Flink)."""
        wire: Callable[[Any, Any], None] = importlib.import_module(self.wiring_module).wire
        return wire


STRATEGIES: dict[str, Strategy] = {
    strategy.name: strategy
    for strategy in (
        Strategy(
            "log_compacted",
            "bethos.strategies.log_compacted:LogCompacted",
            "bethos_flink.strategies.log_compacted",
        ),
        Strategy(
            "inline",
            "bethos.strategies.inline:Inline",
            "bethos_flink.strategies.inline",
        ),
        Strategy(
            "state_store",
            "bethos.strategies.state_store:StateStore",
            "bethos_flink.strategies.state_store",
            secrets=((("state_store", "password"), ("REDIS_PASSWORD",)),),
        ),
        Strategy(
            "window_stream",
            "bethos.strategies.window_stream:WindowStream",
            "bethos_flink.strategies.window_stream",
        ),
    )
}
DEFAULT = "log_compacted"
"""The strategy of a `latest_merger` section that names none."""


def names() -> tuple[str, ...]:
    """The registered strategies' names, in the registry's order."""
    return tuple(STRATEGIES)
