"""`bethos stop`, `resume` and `upgrade` as a user types them, on the real cluster: the paths and
messages they print, an upgrade that Flink refuses because it would drop state, and the way back
from it, a cancel resumed from the retained checkpoints, and an upgrade of the ETL."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from bethos.config import EtlSettings
from devstack.cli import data
from devstack.cli.main import main
from devstack.stack import Stack, jobs
from tests.integration.helpers import wait_for, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.own_flink("third")]


@pytest.fixture
def bethos(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[..., tuple[int, str]]]:
    """Run the CLI against the test's stack: its exit code and everything it printed."""
    # The tests' second Flink cluster: its state directory names it (its conf keeps its ports),
    # and the stack's one broker is said, since that directory has no Kafka of its own.
    monkeypatch.setenv("BETHOS_STATE", str(stack.flink.state))
    monkeypatch.setenv("KAFKA_BROKERS", stack.bootstrap_servers())

    def run(*argv: str) -> tuple[int, str]:
        code = main(list(argv))
        printed = capsys.readouterr()
        return code, printed.out + printed.err

    yield run
    for _, job_id in jobs.running_jobs(stack):
        stack.flink.cancel(job_id)


def running(stack: Stack) -> set[str]:
    return {name for name, _ in jobs.running_jobs(stack)}


def test_stop_resume_upgrade_a_refused_upgrade_and_a_cancel(
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    bethos: Callable[..., tuple[int, str]],
    tmp_path: Path,
) -> None:
    etl_config, merger_config = pipeline_configs
    data.generate(etl_settings, vins=10, rounds=2, round_interval_ms=2_000)
    assert bethos("submit", "etl", "--config", str(etl_config))[0] == 0
    assert bethos("submit", "latest_merger", "--config", str(merger_config))[0] == 0
    assert wait_for(lambda: data.verify(etl_settings)[2], timeout=180) == []

    code, out = bethos("stop", "latest_merger")
    assert code == 0, out
    stopped = re.search(r"stopped latest_merger; savepoint: (\S+)", out)
    assert stopped is not None, out
    savepoint = stopped.group(1)
    assert Path(savepoint.removeprefix("file:"), "_metadata").exists()

    code, out = bethos("resume", "latest_merger")
    assert code == 0, out
    assert f"restored from its savepoint {savepoint.removeprefix('file:')}" in out

    # window_stream has no `latest-merger-merge` operator: its VIN state would be dropped.
    windows = yaml.safe_load(merger_config.read_text())
    windows["latest_merger"]["strategy"] = "window_stream"
    windows_config = tmp_path / "windows.yaml"
    windows_config.write_text(yaml.safe_dump(windows))
    code, out = bethos("upgrade", "latest_merger", "--config", str(windows_config))
    assert code == 2, out
    assert "Flink refused to start latest_merger from" in out, out
    assert "Cannot map checkpoint/savepoint state" in out and "--allow-non-restored-state" in out
    assert running(stack) == {"etl"}  # the ETL, stopped for fresh TaskManagers, runs again

    code, out = bethos("resume", "latest_merger", "--config", str(merger_config))
    assert code == 0, out
    assert "restored from its savepoint" in out

    # Newer data, then a cancel: the retained checkpoints hold what the merger has merged.
    data.generate(etl_settings, vins=10, rounds=2, round_interval_ms=1_000, seed=7)
    assert wait_for(lambda: data.verify(etl_settings)[2], timeout=180) == []
    checkpoints = stack.flink.state / "flink" / "checkpoints"
    merger_id = dict(jobs.running_jobs(stack))["latest_merger"]
    wait_until(lambda: any((checkpoints / merger_id).glob("chk-*/_metadata")), timeout=60)
    code, out = bethos("stop", "latest_merger", "--cancel")
    assert code == 0, out
    assert "cancelled latest_merger: only its retained checkpoints keep its state" in out
    code, out = bethos("resume", "latest_merger")
    assert code == 0, out
    assert f"restored from its checkpoint {checkpoints / merger_id}/chk-" in out

    code, out = bethos("upgrade", "etl")
    assert code == 0, out
    assert re.search(r"etl runs the current code as [0-9a-f]{32}, restored from \S+", out), out
    assert "latest_merger restarted from its savepoint as" in out
    assert running(stack) == {"etl", "latest_merger"}
    data.generate(etl_settings, vins=10, rounds=1, round_interval_ms=1_000, seed=8)
    assert wait_for(lambda: data.verify(etl_settings)[2], timeout=180) == []
