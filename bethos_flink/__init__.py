"""The Flink wiring of bethos, the only package that imports Flink.

Importing it loads every module a job runs on a worker. In thread mode one Python interpreter
per TaskManager serves every job and keeps what it imported, and each job brings the code in a
directory of its own that Flink deletes when the job ends: a module first needed by a later job
would be looked for in the deleted directory of an earlier one. So the first job on a
TaskManager loads them all (new code needs new TaskManagers anyway: `bethos upgrade`).
"""

from bethos.strategy_registry import STRATEGIES
from bethos_flink import environment, etl_graph, merge_function, merger_graph, rows, uids

# Every strategy's wiring, the modules the registry names.
WIRING = {name: strategy.wiring() for name, strategy in STRATEGIES.items()}

__all__ = [
    "WIRING",
    "environment",
    "etl_graph",
    "merge_function",
    "merger_graph",
    "rows",
    "uids",
]
