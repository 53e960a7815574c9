"""docs/MONITORING.md names every metric the jobs register, as Prometheus shows it.

The registrations are read from the sources (`counter(`, `gauge(`, `meter(`, `distribution(`
calls on a metric group, and the `add_group(key, value)` groups they hang under), so a metric
added to the code fails this test until the document describes it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "MONITORING.md"
REGISTERING = {"counter", "gauge", "meter", "distribution"}
# How the Flink Prometheus reporter names an operator's user metric: this prefix, then each
# user group (a key-value group contributes its key; its value becomes a label), then the name.
OPERATOR_PREFIX = "flink_taskmanager_job_task_operator_"


def _group_of(node: ast.expr, groups: dict[str, list[str]]) -> list[str]:
    """The user groups of the metric group expression `node` (a name bound to `add_group`)."""
    if isinstance(node, ast.Name):
        return groups.get(node.id, [])
    return []


def registrations(path: Path) -> set[tuple[str, ...]]:
    """(group..., name) of every metric registered in the file."""
    found: set[tuple[str, ...]] = set()
    for function in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(function, ast.FunctionDef):
            continue
        groups: dict[str, list[str]] = {}
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Attribute)
                and node.value.func.attr == "add_group"
                and node.value.args
                and isinstance(node.value.args[0], ast.Constant)
            ):
                parent = _group_of(node.value.func.value, groups)
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        groups[target.id] = [*parent, str(node.value.args[0].value)]
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in REGISTERING
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add((*_group_of(node.func.value, groups), node.args[0].value))
    return found


def prometheus_names() -> set[str]:
    product = ("bethos", "connectors", "bethos_flink")
    sources = [path for folder in product for path in (ROOT / folder).rglob("*.py")]
    return {OPERATOR_PREFIX + "_".join(parts) for path in sources for parts in registrations(path)}


def test_the_parser_finds_grouped_and_plain_registrations(tmp_path: Path) -> None:
    source = tmp_path / "example.py"
    source.write_text(
        "class F:\n"
        "    def open(self, ctx):\n"
        "        metrics = ctx.get_metrics_group()\n"
        "        pod = metrics.add_group('pod', 'p1')\n"
        "        self.rows = pod.counter('rows_read')\n"
        "        self.held = Batched(metrics.counter('records_in'))\n"
        "        metrics.gauge('vins_held', lambda: 0)\n"
        "        self.size = metrics.distribution('size')\n"
        "        self.rate = metrics.meter('rate')\n"
    )
    assert registrations(source) == {
        ("pod", "rows_read"),
        ("records_in",),
        ("vins_held",),
        ("size",),
        ("rate",),
    }


def test_the_jobs_register_the_known_core_metrics() -> None:
    """A guard on the parser itself: an empty or mangled result would pass the doc test."""
    names = prometheus_names()
    for expected in ("pod_lag_ms", "pod_rows_read", "records_in", "vins_held"):
        assert OPERATOR_PREFIX + expected in names


def test_monitoring_doc_names_every_registered_metric() -> None:
    text = DOC.read_text()
    missing = sorted(name for name in prometheus_names() if f"`{name}`" not in text)
    assert missing == [], f"{DOC.name} does not describe: {', '.join(missing)}"
