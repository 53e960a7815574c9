"""Each registered strategy names its Flink wiring, a module of the Flink layer's `strategies`."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bethos.exceptions import ConfigError
from bethos.strategy_registry import STRATEGIES
from bethos_flink import WIRING, merger_graph


def test_every_registered_strategy_is_wired() -> None:
    assert list(WIRING) == list(STRATEGIES)


def test_each_strategy_is_wired_by_the_module_of_its_name() -> None:
    for name, strategy in STRATEGIES.items():
        wire = strategy.wiring()
        assert wire.__module__ == f"bethos_flink.strategies.{name}" == strategy.wiring_module
        assert WIRING[name] is wire


def test_a_strategy_without_wiring_fails_before_any_graph_is_built() -> None:
    settings = SimpleNamespace(latest_merger=SimpleNamespace(strategy="fifth"))
    with pytest.raises(ConfigError, match="no Flink wiring for 'fifth'"):
        merger_graph.build(settings)
