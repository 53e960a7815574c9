"""The Flink wiring of each latest-merger strategy, one module per strategy, chosen by the
strategy's name (`bethos.strategies.REGISTRY` names the same ones; a unit test checks it).

A wiring module has `wire(graph, options)`: it builds the strategy's operators on the shared
merge graph (`bethos.flink.merge.MergerGraph`) from the strategy's settings and their `build()`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bethos.flink.merge import MergerGraph
from bethos.flink.strategies import inline, log_compacted, state_store, window_stream

# Each takes its own settings model (the one REGISTRY names), hence Any.
Wiring = Callable[[MergerGraph, Any], None]

WIRING: dict[str, Wiring] = {
    "log_compacted": log_compacted.wire,
    "inline": inline.wire,
    "state_store": state_store.wire,
    "window_stream": window_stream.wire,
}
