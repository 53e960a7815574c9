"""The local stack's safe defaults, on the real stack: every socket its processes listen on is on
loopback; the dashboard takes no jars and lets no other web page read it; Flink's CLI still
stops with a savepoint and cancels."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.stack import (
    CONTROLLER_PORT_BASE,
    FLINK_METRICS_PORTS,
    FLINK_REST_PORT,
    INFLUXDB_PORT,
    KAFKA_PORT_BASE,
    PROMETHEUS_PORT,
    REDIS_PORT,
    Stack,
    http_json,
    jobs,
)
from devstack.stack.flink import JOBMANAGER, TASKMANAGER
from devstack.stack.sockets import listeners
from tests import stack_lock

pytestmark = pytest.mark.integration
REST = f"http://127.0.0.1:{FLINK_REST_PORT}"


@pytest.fixture
def with_prometheus(stack: Stack) -> Iterator[Stack]:
    """The stack with Prometheus too; Prometheus stopped after unless it ran before."""
    with stack_lock.resource("prometheus"):
        yield from _with_prometheus(stack)


def _with_prometheus(stack: Stack) -> Iterator[Stack]:
    already = stack.processes.pid("prometheus") is not None
    stack.start_service("prometheus")
    yield stack
    if not already:
        stack.stop_service("prometheus")


def descendants(pids: set[int]) -> set[int]:
    """`pids` and every process below them."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found = set(pids)
    grown = True
    while grown:
        below = {pid for pid, parent in parents.items() if parent in found} - found
        found |= below
        grown = bool(below)
    return found


def stack_processes(stack: Stack) -> dict[str, int]:
    """Every process the stack started, by name, as its pid files prove them."""
    named = {}
    for pid_file in stack.run_dir.glob("*.pid"):
        pid = stack.processes.pid(pid_file.stem)
        if pid is not None:
            named[pid_file.stem] = pid
    for daemon in (JOBMANAGER, TASKMANAGER):
        for i, pid in enumerate(stack.processes.listed_pids(daemon, stack.flink_conf_dir())):
            named[f"{daemon.main.rsplit('.', 1)[1]}-{i}"] = pid
    return named


def test_every_socket_the_stack_listens_on_is_on_loopback(with_prometheus: Stack) -> None:
    stack = with_prometheus
    named = stack_processes(stack)
    brokers = [f"kafka-{i}" for i in range(1, stack.broker_count + 1)]
    assert set(named) >= {*brokers, "influxdb", "redis", "prometheus"}, named
    assert {name.split("-")[0] for name in named} >= {
        "StandaloneSessionClusterEntrypoint",
        "TaskManagerRunner",
    }, named
    found = listeners(descendants(set(named.values())))

    ports = {listener.port for listener in found}
    expected = {
        *(KAFKA_PORT_BASE + i for i in range(1, stack.broker_count + 1)),
        *(CONTROLLER_PORT_BASE + i for i in range(1, stack.broker_count + 1)),
        INFLUXDB_PORT,
        INFLUXDB_PORT + 2,  # its RPC service (backup and restore)
        REDIS_PORT,
        FLINK_REST_PORT,
        6123,  # the JobManager's RPC
        PROMETHEUS_PORT,
    }
    assert ports >= expected, f"not seen listening: {sorted(expected - ports)}"
    reporters = ports & set(FLINK_METRICS_PORTS)
    assert len(reporters) >= 2, f"a JobManager's and a TaskManager's reporter: {reporters}"
    exposed = [str(listener) for listener in found if not listener.on_loopback]
    assert exposed == [], f"listening beyond loopback: {exposed}"


def test_no_web_page_can_shut_prometheus_down(with_prometheus: Stack) -> None:
    """A form on any page may POST to loopback; Prometheus's lifecycle API stays off."""
    quit_request = urllib.request.Request(
        f"http://127.0.0.1:{PROMETHEUS_PORT}/-/quit", data=b"", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(quit_request, timeout=10)
    assert refused.value.code == 403
    assert with_prometheus.processes.pid("prometheus") is not None


def request(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(
        REST + path, data=body or None, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_dashboard_takes_no_jars(stack: Stack) -> None:
    """Flink's own submission goes through `POST /jobs`, which the CLI uses; the jar upload and
    run handlers of the dashboard are not served."""
    boundary = uuid.uuid4().hex
    upload = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="jarfile"; filename="job.jar"\r\n'
        "Content-Type: application/x-java-archive\r\n\r\n"
        "PK\x05\x06" + "\0" * 18 + f"\r\n--{boundary}--\r\n"
    ).encode("latin-1")
    status, _, answer = request(
        "POST",
        "/jars/upload",
        upload,
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    # No REST handler serves the path: the dashboard's file server refuses the POST (with
    # web.submit.enable on, this upload answers 200 and the jar is stored).
    assert (status, json.loads(answer)) == (400, {"errors": ["POST request not allowed"]})
    assert request("GET", "/jars")[0] == 404
    assert request("POST", f"/jars/{uuid.uuid4()}_job.jar/run")[0] == 404
    config = http_json(f"{REST}/config")
    assert isinstance(config, dict)
    assert config["features"]["web-submit"] is False
    assert config["features"]["web-cancel"] is False
    # web.cancel.enable only hides the dashboard's button; the REST cancel that Flink's CLI
    # sends is still served: its handler answers for an unknown job (a path that is not served
    # gets another 404).
    status, _, answer = request("PATCH", f"/jobs/{uuid.uuid4().hex}?mode=cancel")
    assert status == 404
    assert "JobCancellationHandler" in json.loads(answer)["errors"][0]


def test_other_web_pages_may_not_read_the_rest_api(stack: Stack) -> None:
    status, headers, _ = request("GET", "/overview", headers={"Origin": "http://attacker.invalid"})
    assert status == 200
    allowed = {key.lower(): value for key, value in headers.items()}["access-control-allow-origin"]
    assert allowed == f"http://localhost:{FLINK_REST_PORT}"


def job_state(job_id: str) -> tuple[str, list[str]]:
    """The job's state and its vertices' states."""
    job = http_json(f"{REST}/jobs/{job_id}")
    assert isinstance(job, dict)
    return str(job["state"]), [str(vertex["status"]) for vertex in job["vertices"]]


def wait_state(job_id: str, done: Callable[[str, list[str]], bool], timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    state, vertices = job_state(job_id)
    while not done(state, vertices) and time.monotonic() < deadline:
        time.sleep(1)
        state, vertices = job_state(job_id)
    assert done(state, vertices), (state, vertices)
    return state


def running(state: str, vertices: list[str]) -> bool:
    return state == "RUNNING" and all(vertex == "RUNNING" for vertex in vertices)


def test_flinks_cli_stops_with_a_savepoint_and_cancels(
    stack: Stack, pipeline_configs: tuple[Path, Path], submit: Callable[..., str]
) -> None:
    """web.cancel.enable only hides the dashboard's button: the REST API behind Flink's CLI
    (`PATCH /jobs/ID?mode=cancel`, `POST /jobs/ID/stop`) still stops and cancels."""
    job_id = submit("etl", pipeline_configs[0])
    wait_state(job_id, running)
    savepoint = jobs.stop(stack, job_id, str(stack.state / "flink" / "savepoints"))
    assert savepoint is not None and Path(savepoint.removeprefix("file:")).is_dir()
    # The CLI returns once the savepoint is written; the job finishes a moment later.
    wait_state(job_id, lambda state, _: state == "FINISHED", timeout=30)

    resumed = submit("etl", pipeline_configs[0], savepoint=savepoint)
    wait_state(resumed, running)
    assert jobs.stop(stack, resumed) is None
    wait_state(resumed, lambda state, _: state == "CANCELED", timeout=30)
