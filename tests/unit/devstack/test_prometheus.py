"""The Prometheus service's files: the effective config and rules it writes, checked and
unit-tested with promtool (installed by scripts/install.sh with Debian's `prometheus`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from devstack.stack import FLINK_METRICS_PORTS, Stack, StackError
from devstack.stack.prometheus import (
    MONITORING_DIR,
    RULES_DIR,
    local_parameters,
    render_config,
    render_rules,
)
from tests.unit.devstack.test_stack import gone, spawn_sleeper


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: scripts/install.sh installs Debian's `prometheus`")
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=MONITORING_DIR)


def rule_names(path: Path, kind: str) -> set[str]:
    doc = yaml.safe_load(path.read_text())
    return {rule[kind] for group in doc["groups"] for rule in group["rules"] if kind in rule}


def test_the_project_rules_pass_promtool_check() -> None:
    files = sorted(str(path) for path in RULES_DIR.glob("*.yml"))
    assert files, f"no rule files in {RULES_DIR}"
    result = promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rule_unit_tests_pass() -> None:
    tests = sorted(str(path) for path in (MONITORING_DIR / "tests").glob("*.yml"))
    assert tests, "no rule unit tests in monitoring/tests"
    result = promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_effective_config_scrapes_every_reporter_port_and_passes_promtool(
    tmp_path: Path,
) -> None:
    render_rules(tmp_path / "rules", local_parameters())
    config = tmp_path / "prometheus.yml"
    config.write_text(render_config(tmp_path / "rules"))
    doc = yaml.safe_load(config.read_text())
    targets = doc["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"127.0.0.1:{port}" for port in FLINK_METRICS_PORTS]
    result = promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_local_parameters_shorten_thresholds_and_pending_times(tmp_path: Path) -> None:
    parameters = local_parameters()
    written = render_rules(tmp_path, parameters)
    assert [path.name for path in written] == sorted(p.name for p in RULES_DIR.glob("*.yml"))
    rendered = {
        rule.get("record") or rule.get("alert"): rule
        for path in written
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    }
    for record, value in parameters["thresholds"].items():
        assert rendered[record]["expr"] == str(value)
    for alert, pending in parameters["for"].items():
        assert rendered[alert]["for"] == pending


def test_a_local_parameter_naming_no_rule_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="no rule named BethosNoSuchAlert"):
        render_rules(tmp_path, {"for": {"BethosNoSuchAlert": "1s"}})


def test_every_bethos_series_a_rule_reads_is_recorded() -> None:
    """A rule reading `bethos:...` (a threshold, a recorded series) must find it recorded."""
    recorded = set().union(*(rule_names(path, "record") for path in RULES_DIR.glob("*.yml")))
    for path in RULES_DIR.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                for word in re.findall(r"bethos:[a-z0-9_:]+", str(rule["expr"])):
                    assert word in recorded, f"{rule.get('alert')}: {word} is not recorded"


def test_prometheus_runs_only_with_monitoring_but_down_always_stops_it(tmp_path: Path) -> None:
    assert "prometheus" not in [s.name for s in Stack(state=tmp_path).services()]
    monitored = Stack(state=tmp_path, monitoring=True)
    assert [s.name for s in monitored.services()][-1] == "prometheus"
    assert "prometheus" in [s.name for s in monitored.status()]
    # Not running, not asked for: `status` leaves it out instead of calling the stack down.
    plain = Stack(state=tmp_path)
    assert "prometheus" not in [s.name for s in plain.status()]
    pid = spawn_sleeper(plain.processes, "prometheus")
    plain.down(progress=lambda line: None)
    assert gone(plain.processes, "prometheus"), f"down left prometheus (pid {pid}) running"


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """Each panel's query as a recording rule, for `promtool check rules` to parse; the
    integration test runs them against the live Prometheus."""
    dashboard = json.loads((MONITORING_DIR / "grafana" / "bethos.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert len(exprs) >= 10
    rules = [{"record": f"dashboard:query_{n}", "expr": expr} for n, expr in enumerate(exprs)]
    path = tmp_path / "dashboard.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
