"""Prometheus (Debian's `prometheus`) on loopback, scraping the Flink cluster's reporters.

Optional: `bethos up --monitoring` starts it. The project's files under `monitoring/` are the
source; this module writes the effective ones into `state/prometheus/`: `prometheus.yml` with the
ports of the stack's Flink cluster filled in, and the rule files with the local parameters of
`monitoring/local.yml` (thresholds and `for:` short enough for a test) applied.
"""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from devstack import paths
from devstack.exceptions import StackError
from devstack.stack.flink import FLINK_METRICS_PORTS
from devstack.stack.process import Supervisor
from devstack.stack.service import SingleProcess

PROMETHEUS_PORT = 9090
MONITORING_DIR = paths.PROJECT_ROOT / "monitoring"
RULES_DIR = MONITORING_DIR / "rules"
LOCAL_PARAMETERS = MONITORING_DIR / "local.yml"


def flink_targets(metrics_ports: range = FLINK_METRICS_PORTS) -> list[str]:
    return [f"127.0.0.1:{port}" for port in metrics_ports]


def render_config(rules_dir: Path, metrics_ports: range = FLINK_METRICS_PORTS) -> str:
    """The project's prometheus.yml with the Flink cluster's reporter ports and `rules_dir`."""
    template = (MONITORING_DIR / "prometheus.yml").read_text()
    targets = ", ".join(f'"{target}"' for target in flink_targets(metrics_ports))
    return template.replace('"@FLINK_TARGETS@"', targets).replace("@RULES_DIR@", str(rules_dir))


def apply_parameters(
    rules: dict[str, Any], thresholds: dict[str, object], pending: dict[str, str]
) -> dict[str, Any]:
    """The rule file with the parameters applied: `thresholds` replace the expression of the
    recording rules they name, `pending` the `for:` of the alerts they name. Each name applied
    is removed from its dict, so that what is left names no rule."""
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            if rule.get("record") in thresholds:
                rule["expr"] = str(thresholds.pop(rule["record"]))
            if rule.get("alert") in pending:
                rule["for"] = pending.pop(rule["alert"])
    return rules


def render_rules(target: Path, parameters: dict[str, Any]) -> list[Path]:
    """Every `monitoring/rules/*.yml` written into `target` with `parameters` (`thresholds`,
    `for`) applied. A name that is in no rule file is an error: a renamed rule must not
    silently keep its production value."""
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.yml"):
        old.unlink()
    thresholds = dict(parameters.get("thresholds") or {})
    pending = dict(parameters.get("for") or {})
    written = []
    for source in sorted(RULES_DIR.glob("*.yml")):
        rules = apply_parameters(yaml.safe_load(source.read_text()), thresholds, pending)
        out = target / source.name
        out.write_text(yaml.safe_dump(rules, sort_keys=False))
        written.append(out)
    unknown = [*thresholds, *pending]
    if unknown:
        raise StackError(f"{LOCAL_PARAMETERS}: no rule named {', '.join(sorted(unknown))}")
    return written


def local_parameters() -> dict[str, Any]:
    loaded = yaml.safe_load(LOCAL_PARAMETERS.read_text()) or {}
    if not isinstance(loaded, dict):
        raise StackError(f"{LOCAL_PARAMETERS}: expected a mapping")
    return loaded


class Prometheus(SingleProcess):
    """Scrapes the reporters of its stack's Flink cluster (`metrics_ports`)."""

    name = "prometheus"
    port = PROMETHEUS_PORT

    def __init__(self, state: Path, processes: Supervisor, metrics_ports: range) -> None:
        super().__init__(state, processes)
        self.metrics_ports = metrics_ports

    @property
    def base(self) -> Path:
        return self.state / "prometheus"

    def write_config(self) -> Path:
        rules_dir = self.base / "rules"
        render_rules(rules_dir, local_parameters())
        config = self.base / "prometheus.yml"
        config.write_text(render_config(rules_dir, self.metrics_ports))
        return config

    def start(self) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise StackError("prometheus: not installed; run scripts/install.sh")
        config = self.write_config()
        self.processes.spawn(
            self.name,
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.base / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=2d",
                # No --web.enable-lifecycle: any web page could POST /-/quit to it.
            ],
        )

    def healthy(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
            return bool(r.status == 200)
