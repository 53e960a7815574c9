"""PyFlink's own per-record cost for the merger's input, the floor `bethos bench merger` holds
the merger against: the merger's source and key (`merger_graph.merger_inputs`), then a
KeyedProcessFunction that does nothing, then a sink that discards."""

from __future__ import annotations

from pyflink.common import Types
from pyflink.table import StreamTableEnvironment

from bethos.config import MergerSettings
from bethos_flink.merge_function import DoNothing
from bethos_flink.merger_graph import merger_inputs
from bethos_flink.rows import ROW_INPUT, ROW_KEY_VALUE, keyed_by_first_column


def run_floor(t_env: StreamTableEnvironment, settings: MergerSettings) -> None:
    """Submit the floor job (its consumer group is the settings')."""
    nothing = (
        keyed_by_first_column(t_env, merger_inputs(t_env, settings), Types.STRING(), ROW_INPUT)
        .process(DoNothing(), output_type=ROW_KEY_VALUE)
        .name("do nothing per VIN")
    )
    t_env.execute_sql(
        "CREATE TEMPORARY TABLE discarded (`key` STRING, `value` STRING) "
        "WITH ('connector' = 'blackhole')"
    )
    t_env.from_data_stream(nothing).execute_insert("discarded")
