"""`resume` and `upgrade` wait for the job they start, and say why Flink refused it."""

from __future__ import annotations

from typing import Any, cast

import pytest

from bethos.exceptions import BethosError
from devstack.stack import Stack
from devstack.stack.lifecycle import await_started, failure_summary, refusal

REFUSED = """org.apache.flink.runtime.client.JobInitializationException: \
Could not start the JobMaster.
\tat org.apache.flink.runtime.jobmaster.DefaultJobMasterServiceProcess.lambda$new$0(X.java:97)
Caused by: java.lang.IllegalStateException: Failed to rollback to checkpoint/savepoint file:/sp.
Caused by: java.lang.IllegalStateException: Cannot map checkpoint/savepoint state for operator \
3c5f to the new program, because the operator is not available in the new program. If you want \
to allow to skip this, you can set the --allowNonRestoredState option on the CLI.
\tat org.apache.flink.runtime.checkpoint.Checkpoints.throwNonRestoredStateException(X.java:256)
"""


class FakeFlink:
    def __init__(self, states: list[dict[str, Any]], trace: str = "") -> None:
        self.states = states
        self.trace = trace

    def job(self, job_id: str) -> dict[str, Any]:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def job_failure(self, job_id: str) -> str:
        return self.trace


class FakeStack:
    def __init__(self, flink: FakeFlink) -> None:
        self.flink = flink


def running(*statuses: str) -> dict[str, Any]:
    return {"state": "RUNNING", "vertices": [{"status": s} for s in statuses]}


def stack_of(*states: dict[str, Any], trace: str = "") -> Stack:
    return cast(Stack, FakeStack(FakeFlink(list(states), trace)))


def test_it_returns_once_every_task_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda _: None)
    stack = stack_of({"state": "INITIALIZING"}, running("DEPLOYING", "RUNNING"), running("RUNNING"))
    await_started(stack, "latest_merger", "j1", "/sp")


def test_a_finished_bounded_source_counts_as_started(monkeypatch: pytest.MonkeyPatch) -> None:
    # The merger's bootstrap source finished before the savepoint: restored, it is FINISHED.
    monkeypatch.setattr("time.sleep", lambda _: None)
    stack = stack_of(running("FINISHED", "INITIALIZING"), running("FINISHED", "RUNNING"))
    await_started(stack, "latest_merger", "j1", "/sp")


def test_finished_tasks_alone_are_not_a_running_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda _: None)
    stack = stack_of(running("FINISHED", "FINISHED"))
    with pytest.raises(BethosError, match=r"does not run"):
        await_started(stack, "etl", "j1", "/sp", timeout_s=0)


def test_a_restore_point_with_state_the_job_drops_is_refused_in_plain_words() -> None:
    stack = stack_of({"state": "FAILED", "vertices": []}, trace=REFUSED)
    with pytest.raises(BethosError) as refused:
        await_started(stack, "latest_merger", "j1", "/sp")
    message = str(refused.value)
    assert message.startswith("Flink refused to start latest_merger from /sp")
    assert "Cannot map checkpoint/savepoint state for operator 3c5f" in message
    assert "--allow-non-restored-state" in message and "bethos resume latest_merger" in message


def test_another_failure_names_its_deepest_cause() -> None:
    trace = "java.lang.RuntimeException: boom\nCaused by: java.io.IOException: disk full\n"
    stack = stack_of({"state": "FAILED"}, trace=trace)
    with pytest.raises(BethosError, match=r"FAILED, java\.io\.IOException: disk full"):
        await_started(stack, "etl", "j1", "/sp")


def test_a_job_that_never_runs_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda _: None)
    stack = stack_of(running("SCHEDULED"))
    with pytest.raises(BethosError, match=r"does not run 0s after.*\['SCHEDULED'\]"):
        await_started(stack, "etl", "j1", "/sp", timeout_s=0)


def test_failure_summary() -> None:
    assert failure_summary("") == "no reason given"
    assert failure_summary("java.lang.Error: x\n\tat a.b(C.java:1)") == "java.lang.Error: x"
    assert failure_summary(REFUSED).startswith("java.lang.IllegalStateException: Cannot map")


def test_flink_runs_own_refusal_is_put_in_plain_words() -> None:
    answer = "flink run failed:\n  File x.py\npy4j.protocol.Py4JJavaError: ...\n" + REFUSED
    answer += "Caused by: java.lang.RuntimeException: Python process exits with code: 1\n"
    explained = refusal("etl", "/sp", answer)
    assert explained is not None
    assert "Cannot map checkpoint/savepoint state for operator 3c5f to the new program" in str(
        explained
    )
    assert refusal("etl", "/sp", "flink run failed: connection refused") is None
