"""The tooling around bethos: the local stack, the `bethos` command, test data, benchmarks."""
