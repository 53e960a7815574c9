"""The Flink wiring of each latest-merger strategy, one module per strategy, named in the
strategy's entry of `bethos.strategy_registry` and imported from there.

A wiring module has `wire(graph, options)`: it builds the strategy's operators on the merger's
graph (`bethos_flink.merger_graph.MergerGraph`) from the strategy's settings and `build()`.
"""
