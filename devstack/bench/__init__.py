"""Benchmarks (`bethos bench ...`): not part of the test suite; each prints JSON last."""
