"""Deploying the way Flink users do: the code travels with each job to a cluster whose Python has
no bethos, jobs spread over two TaskManagers, and savepoint upgrades to changed code."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from bethos.config import EtlSettings
from bethos.logevents import parse_event
from bethos.record import encode_aggregated
from devstack import paths
from devstack.cli import data
from devstack.package import PACKAGES
from devstack.stack import Stack, http_json, jobs, lifecycle
from devstack.stack.flink import TASKMANAGER
from tests.integration.helpers import wait_for, wait_until
from tests.integration.test_merger import latest_equals, produce, records_for

pytestmark = pytest.mark.integration


def rest(stack: Stack, path: str) -> Any:
    return http_json(f"{stack.flink.rest_url}{path}", timeout=10)


def vertex_taskmanagers(stack: Stack, job_id: str) -> dict[str, set[str]]:
    """Per vertex of the job that runs at parallelism 2 or more, the TaskManagers its subtasks
    run on (the ticks of the ETL come from one subtask)."""
    job = stack.flink.job(job_id)
    spread = {}
    for vertex in job["vertices"]:  # type: ignore[attr-defined]
        if vertex["parallelism"] < 2:
            continue
        answer = rest(stack, f"/jobs/{job_id}/vertices/{vertex['id']}/taskmanagers")
        managers = answer["taskmanagers"]
        spread[vertex["name"]] = {tm["taskmanager-id"] for tm in managers}  # type: ignore[attr-defined]
    return spread


def running(stack: Stack, job_id: str) -> bool:
    return lifecycle.started(stack.flink.job(job_id))


def source_records_read(stack: Stack, job_id: str, source_prefix: str) -> int:
    """Records the job's Kafka source has emitted, summed over its subtasks."""
    job = stack.flink.job(job_id)
    for vertex in job["vertices"]:  # type: ignore[attr-defined]
        if vertex["name"].startswith(source_prefix):
            return int(vertex["metrics"]["write-records"])
    raise AssertionError(f"no vertex {source_prefix!r} in {job_id}")


def test_the_clusters_python_cannot_import_bethos(stack: Stack) -> None:
    conf = (stack.flink_conf_dir() / "config.yaml").read_text()
    executables = set(re.findall(r'executable: "([^"]+)"', conf))
    assert executables == {str(paths.cluster_python())}
    # From the TaskManagers' working directory, as their interpreter starts.
    taskmanagers = stack.flink.processes.listed_pids(TASKMANAGER, stack.flink_conf_dir())
    assert len(taskmanagers) == stack.flink.taskmanagers
    for pid in taskmanagers:
        cwd = Path(f"/proc/{pid}/cwd").resolve()
        assert cwd != paths.PROJECT_ROOT
        result = subprocess.run(
            [str(paths.cluster_python()), "-c", "import pyflink, pydantic; import bethos"],
            cwd=cwd,
            capture_output=True,
            text=True,
        )
        assert result.returncode != 0
        assert "No module named 'bethos'" in result.stderr
    # And that is the interpreter a job's Python runs in on the TaskManagers.
    job_id = jobs.run_script(stack, paths.PROJECT_ROOT / "tests/data/probe_job.py", [], {})
    wait_until(lambda: stack.flink.job(job_id)["state"] == "FINISHED", timeout=120)
    probes = [
        orjson.loads(line.split("bethos-probe ", 1)[1])
        for out in stack.flink.log_dir.glob("*taskexecutor*.out")
        for line in out.read_text(errors="replace").splitlines()
        if "bethos-probe " in line
    ]
    assert probes, "the probe job printed nothing"
    assert {Path(probe["prefix"]) for probe in probes} == {paths.cluster_python().parents[1]}
    assert not any(str(paths.PROJECT_ROOT) == entry for probe in probes for entry in probe["path"])


@pytest.mark.own_flink
def test_two_taskmanagers_run_both_jobs_at_parallelism_two_and_verify_passes(
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
) -> None:
    etl_config, merger_config = pipeline_configs
    data.generate(etl_settings, vins=40, rounds=4, round_interval_ms=5_000)
    stack.flink.scale_taskmanagers(2)
    try:
        started = [
            submit("etl", etl_config, parallelism=2),
            submit("latest_merger", merger_config, parallelism=2),
        ]
        wait_until(lambda: all(running(stack, job_id) for job_id in started), timeout=120)
        for job_id in started:
            spread = vertex_taskmanagers(stack, job_id)
            assert any(
                name.startswith("poll InfluxDB") or name.startswith("merge per VIN")
                for name in spread
            ), spread
            for vertex, managers in spread.items():
                assert len(managers) == 2, f"{vertex} runs on {managers}"
        assert wait_for(lambda: data.verify(etl_settings)[2], timeout=180) == []
    finally:
        for job_id in [job_id for _, job_id in jobs.running_jobs(stack)]:
            stack.flink.cancel(job_id)
        stack.flink.scale_taskmanagers(1)


NEXT = "latest_merger-next"


def flush_components(stack: Stack) -> set[str]:
    """The components of the `flush` lines in the TaskManagers' current logs."""
    found = set()
    for log in stack.taskmanager_logs():
        for line in log.read_text(errors="replace").split("\n"):
            event = parse_event(line)
            if event is not None and event.event == "flush":
                found.add(event.component)
    return found


def changed_build(root: Path) -> Path:
    """A copy of the code with a changed query, a changed operator chain and a visible change
    of behaviour (the merger's log lines name another component): the next commit, say. As a
    directory holding the packages, the way the container image and the Kubernetes manifests
    give it to `-pyfs` (/opt/bethos), not the zip: the cluster's Python has no bethos, so the
    job only runs if that directory reaches its workers."""
    for package in PACKAGES:
        shutil.copytree(
            paths.PROJECT_ROOT / package,
            root / package,
            ignore=shutil.ignore_patterns("*.pyc", "__pycache__"),
        )

    def patch(relative: str, old: str, new: str) -> None:
        path = root / relative
        text = path.read_text()
        assert old in text, f"{relative} no longer holds {old!r}: update this test"
        path.write_text(text.replace(old, new))

    patch(
        "bethos_flink/merger_graph.py",
        "f\"'{origin}') AS `element` FROM {table}\"",
        ("f\"'{origin}') AS `element` FROM {table} WHERE `offset` >= 0\""),
    )
    patch(
        "bethos_flink/merger_graph.py",
        '.name("merge per VIN")',
        '.name("merge per VIN").disable_chaining()',
    )
    patch("bethos_flink/merge_function.py", 'COMPONENT = "latest_merger"', f'COMPONENT = "{NEXT}"')
    return root


@pytest.mark.own_flink
def test_an_upgrade_to_changed_code_in_a_directory_keeps_every_vin_and_the_source_offsets(
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
    tmp_path: Path,
) -> None:
    merger_config = pipeline_configs[1]
    doc = yaml.safe_load(merger_config.read_text())
    doc["latest_merger"]["bootstrap_from_latest"] = False  # the aggregated topic alone
    config = merger_config.with_name("merger-upgrade.yaml")
    config.write_text(yaml.safe_dump(doc))
    first = records_for(150, "a", 1_000_000, received_at=1)
    produce(etl_settings, [(r.vin.encode(), encode_aggregated(r)) for r in first])
    old_id = submit("latest_merger", config, parallelism=2)
    assert wait_for(latest_equals(etl_settings, first), timeout=120) == []
    assert NEXT not in flush_components(stack)

    next_build = lifecycle.StartOptions(code=changed_build(tmp_path / "next"))
    done = lifecycle.upgrade_job(stack, "latest_merger", next_build, progress=lambda _: None)
    assert done.savepoint and done.job_id != old_id
    # Only signal "b" arrives after the upgrade: "a" must come from the restored state.
    second = records_for(150, "b", 2_000_000, received_at=2)
    produce(etl_settings, [(r.vin.encode(), encode_aggregated(r)) for r in second])
    try:
        assert wait_for(latest_equals(etl_settings, first + second), timeout=150) == []
        # The restored offsets: the new job read the new messages only, not the topic again.
        wait_until(lambda: source_records_read(stack, done.job_id, "Source: aggregated_in") > 0, 60)
        assert source_records_read(stack, done.job_id, "Source: aggregated_in") == len(second)
        # The new code runs, from its directory: fresh TaskManagers, not the old modules.
        wait_until(lambda: NEXT in flush_components(stack), timeout=60)
        assert NEXT in flush_components(stack)
    finally:
        jobs.stop(stack, done.job_id)
        # The TaskManagers' interpreters keep the changed modules: fresh ones for the next tests.
        stack.flink.restart_taskmanagers(progress=lambda _: None)


@pytest.mark.own_flink
def test_after_a_jobmanager_crash_up_and_resume_restore_both_jobs_and_lose_nothing(
    stack: Stack,
    pipeline_configs: tuple[Path, Path],
    etl_settings: EtlSettings,
    submit: Callable[..., str],
) -> None:
    etl_config, merger_config = pipeline_configs
    data.generate(etl_settings, vins=20, rounds=3, round_interval_ms=5_000)
    started = {
        "etl": submit("etl", etl_config),
        "latest_merger": submit("latest_merger", merger_config),
    }
    assert wait_for(lambda: data.verify(etl_settings)[2], timeout=180) == []
    checkpoints = stack.flink.state / "flink" / "checkpoints"
    for job_id in started.values():
        wait_until(lambda: any((checkpoints / job_id).glob("chk-*/_metadata")), timeout=60)  # noqa: B023
        assert any((checkpoints / job_id).glob("chk-*/_metadata"))

    stack.kill_jobmanager()
    wait_until(lambda: not stack.flink.status()[0].running, timeout=30)
    assert not stack.flink.status()[0].running
    # Newer points arrive while no job runs.
    data.generate(etl_settings, vins=20, rounds=2, round_interval_ms=1_000, seed=5)
    stack.up(progress=lambda _: None)
    resumed = []
    try:
        for job, job_id in started.items():
            point, new_id = lifecycle.resume_job(stack, job, progress=lambda _: None)
            resumed.append(new_id)
            assert point.kind == "checkpoint" and point.path.parent.name == job_id
        assert wait_for(lambda: data.verify(etl_settings)[2], timeout=240) == []
    finally:
        for job_id in resumed:
            stack.flink.cancel(job_id)
