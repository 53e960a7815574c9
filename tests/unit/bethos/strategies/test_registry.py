"""One registry names the strategies: settings by name, each with a `build()`; the Flink wiring
names the same ones (tests/unit/bethos/flink/test_strategy_wiring.py)."""

from __future__ import annotations

import typing

import pytest

from bethos.config import MergerSettings, parse_settings
from bethos.exceptions import ConfigError
from bethos.strategies import REGISTRY, StrategySettings
from bethos.strategies.base import MergerOptions
from bethos.strategies.flushing import FlushLogic
from bethos.strategies.inline import InlineLogic
from bethos.strategies.state_store import StoreLogic
from bethos.strategies.window_stream import WindowLogic

LOGIC = {
    "log_compacted": FlushLogic,
    "inline": InlineLogic,
    "state_store": StoreLogic,
    "window_stream": WindowLogic,
}


def test_each_registered_model_carries_its_own_name() -> None:
    assert set(REGISTRY) == set(LOGIC)
    for name, model in REGISTRY.items():
        assert model().strategy == name


def test_the_settings_union_is_the_registry() -> None:
    union, *_ = typing.get_args(StrategySettings)
    assert set(typing.get_args(union)) == set(REGISTRY.values())


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_strategy_builds_its_own_logic(name: str) -> None:
    model = REGISTRY[name]
    assert model.build is not MergerOptions.build
    assert type(model().build()) is LOGIC[name]


def test_an_unknown_strategy_fails_at_load_naming_the_four() -> None:
    doc = {"latest_merger": {"strategy": "fifth"}}
    with pytest.raises(ConfigError) as failed:
        parse_settings(MergerSettings, doc, "merger.yaml", {})
    for name in REGISTRY:
        assert name in str(failed.value)
