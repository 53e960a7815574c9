"""One registry names the strategies: each entry yields its settings model, with a `build()`,
and its Flink wiring (tests/unit/bethos_flink/test_strategy_wiring.py); the settings import a
strategy only when a file names it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bethos.config import MergerOptions, MergerSettings, parse_settings
from bethos.exceptions import ConfigError
from bethos.strategies.flushing import FlushLogic
from bethos.strategies.inline import InlineLogic
from bethos.strategies.state_store import StoreLogic
from bethos.strategies.window_stream import WindowLogic
from bethos.strategy_registry import DEFAULT, STRATEGIES, names

LOGIC = {
    "log_compacted": FlushLogic,
    "inline": InlineLogic,
    "state_store": StoreLogic,
    "window_stream": WindowLogic,
}


def test_each_registered_model_carries_its_own_name() -> None:
    assert set(STRATEGIES) == set(LOGIC) and names() == tuple(STRATEGIES)
    assert DEFAULT in STRATEGIES
    for name, strategy in STRATEGIES.items():
        assert strategy.name == name
        assert strategy.settings().__module__ == f"bethos.strategies.{name}"
        assert strategy.settings()().strategy == name


def test_the_section_is_the_model_its_strategy_names() -> None:
    for name, strategy in STRATEGIES.items():
        doc = {"latest_merger": {"strategy": name}}
        options = parse_settings(MergerSettings, doc, "merger.yaml", {}).latest_merger
        assert type(options) is strategy.settings()
    assert type(MergerSettings().latest_merger) is STRATEGIES[DEFAULT].settings()


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_each_strategy_builds_its_own_logic(name: str) -> None:
    model = STRATEGIES[name].settings()
    assert model.build is not MergerOptions.build
    assert type(model().build()) is LOGIC[name]


def test_an_unknown_strategy_fails_at_load_naming_the_four() -> None:
    doc = {"latest_merger": {"strategy": "fifth"}}
    with pytest.raises(ConfigError) as failed:
        parse_settings(MergerSettings, doc, "merger.yaml", {})
    for name in STRATEGIES:
        assert name in str(failed.value)


def test_the_settings_import_no_strategy_until_a_file_names_one() -> None:
    code = (
        "import sys\n"
        "from bethos.config import MergerSettings, parse_settings\n"
        "assert not [m for m in sys.modules if m.startswith('bethos.strategies')], sys.modules\n"
        "parse_settings(MergerSettings, {'latest_merger': {'strategy': 'inline'}}, 'm', {})\n"
        "loaded = {m for m in sys.modules if m.startswith('bethos.strategies.')}\n"
        "assert 'bethos.strategies.inline' in loaded and 'bethos.strategies.state_store' "
        "not in loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
