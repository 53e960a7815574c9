"""The benchmark's floor (`bethos_flink.floor_graph`): the merger's input keyed as the merger
keys it, into a KeyedProcessFunction that does nothing.

Started by `bethos bench merger` with `flink run -py`; reads the config in BETHOS_CONFIG and the
consumer group in BETHOS_BENCH_GROUP.
"""

from __future__ import annotations

import os

from bethos.config import MergerSettings, load_settings
from bethos_flink.environment import create_environments
from bethos_flink.floor_graph import run_floor


def main() -> None:
    settings = load_settings(MergerSettings, os.environ["BETHOS_CONFIG"])
    settings = settings.model_copy(update={"consumer_group": os.environ["BETHOS_BENCH_GROUP"]})
    _env, t_env = create_environments(settings.flink, settings.checkpoint_interval_ms)
    run_floor(t_env, settings)


if __name__ == "__main__":
    main()
