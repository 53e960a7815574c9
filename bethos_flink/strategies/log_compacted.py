"""Flink wiring of `log_compacted`: the merge's emissions upserted into the compacted `latest`
topic, key = VIN, an expired VIN as a tombstone."""

from __future__ import annotations

from bethos.strategies.log_compacted import LogCompacted
from bethos_flink.merger_graph import MergerGraph


def wire(graph: MergerGraph, options: LogCompacted) -> None:
    graph.to_latest_topic(graph.merge_per_vin(options.build()))
