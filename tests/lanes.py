"""How the test processes (pytest-xdist) share the tests: one queue in collection order, a
process taking the next test as it finishes one; but the tests of one Flink cluster of the
tests' own (`own_flink`), which run one at a time, form a lane that one process runs alone,
from the start, before it joins the queue. Handed to any process, such a test made that process
wait for the cluster while queued shared tests waited for it.

The lanes are known where the tests are collected (the worker processes); they write them to a
file the controlling process named (`LANES_FILE`), where the scheduler reads them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadScheduling

LANES_FILE = "BETHOS_TEST_LANES_FILE"
# A process keeps its current test and the next: a worker runs a test once it knows the next
# one (or that there is none), for the fixtures' teardown. While the queue is long (the unit
# tests) it takes more at a time, an eighth of its share: a test at a time, the thousand unit
# tests took half again as long.
QUEUED_PER_PROCESS = 2
SHARE_TAKEN = 8


def configure(config: pytest.Config) -> None:
    """In the controlling process: name the lanes file for the workers it is about to start."""
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        fd, path = tempfile.mkstemp(prefix="bethos-test-lanes-", suffix=".json")
        os.close(fd)
        os.environ[LANES_FILE] = path


def record(lanes: Mapping[str, str]) -> None:
    """In a worker process: the lane of each test that has one, by node id (every worker
    collects the same tests and writes the same file)."""
    path = os.environ.get(LANES_FILE)
    if path:
        temporary = f"{path}.{os.getpid()}"
        Path(temporary).write_text(json.dumps(dict(lanes)))
        os.replace(temporary, path)


def make_scheduler(config: pytest.Config, log: Any) -> LaneScheduling | None:
    path = os.environ.get(LANES_FILE)
    return LaneScheduling(config, log, Path(path)) if path else None


class LaneScheduling(LoadScheduling):  # type: ignore[misc]
    def __init__(self, config: pytest.Config, log: Any, lanes_file: Path) -> None:
        super().__init__(config, log)
        self.lanes_file = lanes_file
        self.lane_of: dict[int, str] = {}
        self.node_lane: dict[Any, str] = {}

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.collection is not None:
            for node in self.nodes:
                self.check_schedule(node)
            return
        if not self._check_nodes_have_same_collection():
            self.log("**Different tests collected, aborting run**")
            return
        self.collection = list(next(iter(self.node2collection.values())))
        self.pending[:] = range(len(self.collection))
        lanes: dict[str, str] = json.loads(self.lanes_file.read_text() or "{}")
        self.lanes_file.unlink(missing_ok=True)
        self.lane_of = {
            index: lanes[node_id]
            for index, node_id in enumerate(self.collection)
            if node_id in lanes
        }
        # A lane per process, one process at least left for the queue; lanes beyond that are
        # queued like any test (their tests then wait for each other, as correct).
        names = sorted(set(self.lane_of.values()))[: max(0, len(self.nodes) - 1)]
        self.node_lane = dict(zip(self.nodes, names, strict=False))
        for node in self.nodes:
            self.check_schedule(node)

    def check_schedule(self, node: Any, duration: float = 0) -> None:
        if node.shutting_down:
            return
        lane = self.node_lane.get(node)
        takes = self._open_to(lane)
        if lane is not None and not takes:  # its lane is done: it joins the queue
            del self.node_lane[node]
            takes = self._open_to(None)
        if not takes:
            node.shutdown()
            return
        queued = max(QUEUED_PER_PROCESS, len(takes) // (SHARE_TAKEN * len(self.nodes)))
        wanted = queued - len(self.node2pending[node])
        if wanted > 0:
            sent = takes[:wanted]
            for index in sent:
                self.pending.remove(index)
            self.node2pending[node].extend(sent)
            node.send_runtest_some(sent)

    def _open_to(self, lane: str | None) -> list[int]:
        """The pending tests of `lane`, or for the queue those of no lane that a process runs."""
        if lane is not None:
            return [index for index in self.pending if self.lane_of.get(index) == lane]
        running = set(self.node_lane.values())
        return [index for index in self.pending if self.lane_of.get(index) not in running]

    def remove_node(self, node: Any) -> str | None:
        self.node_lane.pop(node, None)  # a crashed lane's tests go to the queue
        return super().remove_node(node)  # type: ignore[no-any-return]
