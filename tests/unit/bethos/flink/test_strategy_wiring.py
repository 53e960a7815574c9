"""One mapping picks each strategy's Flink wiring by name: the same names as the registry."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bethos.exceptions import ConfigError
from bethos.flink import merger
from bethos.flink.strategies import WIRING
from bethos.strategies import REGISTRY


def test_the_wiring_and_the_registry_name_the_same_strategies() -> None:
    assert list(WIRING) == list(REGISTRY)


def test_each_strategy_is_wired_by_the_module_of_its_name() -> None:
    for name, wire in WIRING.items():
        assert wire.__module__ == f"bethos.flink.strategies.{name}"


def test_a_strategy_without_wiring_fails_before_any_graph_is_built() -> None:
    settings = SimpleNamespace(latest_merger=SimpleNamespace(strategy="fifth"))
    with pytest.raises(ConfigError, match="no Flink wiring for 'fifth'"):
        merger.build(settings)
