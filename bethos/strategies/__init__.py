"""The latest merger's strategies (docs/CONTRACT.md), one module each:

    log_compacted.py  inline.py  state_store.py  window_stream.py

A strategy's module holds its settings model, a `bethos.config.MergerOptions` whose `strategy`
literal is its name and whose `build()` returns its logic, free of Flink (the per-VIN flush in
`flushing`, batching, the store plan, the windows). Each is registered once, by name, in
`bethos.strategy_registry`, which also names its Flink wiring; this package imports none of them.
"""
