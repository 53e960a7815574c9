"""Stable uids for the operators that the SQL planner builds: the Kafka sources and sinks.

A savepoint maps its state to operators by uid. The planner names its operators only for a
compiled plan; otherwise Flink hashes the graph, so a change of a query or of the operator chain
orphans a source's offsets or a sink's state. Here every SQL piece is translated on its own,
with its operators' uids fixed to `<table>_<transformation>` (e.g. `aggregated_in_source`,
`latest_out_sink`): a change elsewhere in the job leaves them as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pyflink.table import StreamTableEnvironment, Table

_GENERATION = "table.exec.uid.generation"
_FORMAT = "table.exec.uid.format"


@contextmanager
def planner_uids(t_env: StreamTableEnvironment, name: str) -> Iterator[None]:
    """Operators that the planner translates inside get uids `<name>_<transformation>`."""
    config = t_env.get_config()
    config.set(_GENERATION, "ALWAYS")
    config.set(_FORMAT, f"{name}_<transformation>")
    try:
        yield
    finally:
        # Outside, nothing may reuse the name: a second translation would repeat its uids.
        config.set(_GENERATION, "DISABLED")


class SinkStatements:
    """The job's inserts into its sink tables; a drop-in for a `StatementSet` whose
    `attach_as_datastream` translates each table's inserts on their own, under its name."""

    def __init__(self, t_env: StreamTableEnvironment) -> None:
        self.t_env = t_env
        self.inserts: dict[str, list[Table]] = {}

    def add_insert(self, table: str, source: Table) -> None:
        self.inserts.setdefault(table, []).append(source)

    def attach_as_datastream(self) -> None:
        for table, sources in self.inserts.items():
            statements = self.t_env.create_statement_set()
            for source in sources:
                statements.add_insert(table, source)
            with planner_uids(self.t_env, table):
                statements.attach_as_datastream()
        self.inserts = {}
