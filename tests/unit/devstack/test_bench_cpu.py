from __future__ import annotations

import os
import threading
import time

from bethos.os_threads import name_this_thread
from devstack.bench.cpu import CpuSampler, machine_busy_s, process_cpu_s, threads_cpu_s
from devstack.bench.etl_bench import busiest_threads


def spin(seconds: float) -> None:
    """Busy this thread for `seconds` of its own CPU (the process's includes the sampler's)."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def test_process_cpu_counts_the_work_done() -> None:
    before = process_cpu_s([os.getpid()])
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    assert process_cpu_s([os.getpid()]) - before >= 0.25


def test_a_gone_process_counts_nothing() -> None:
    assert process_cpu_s([2**22 + 7]) == 0


def test_the_sampler_reads_the_cpu_of_a_span_found_afterwards() -> None:
    with CpuSampler({"me": [os.getpid()]}, period=0.05) as sampler:
        time.sleep(0.3)
        started = time.time()
        spin(0.4)
        ended = time.time()
        time.sleep(0.3)
    busy = sampler.between(started, ended)
    # The span widens to whole samples, so it holds the work and at most a sample's worth more.
    assert 0.35 <= busy["me"] <= 0.4 + 0.2
    assert busy["machine"] >= busy["me"] - 0.05
    assert ended - started <= sampler.span(started, ended) <= ended - started + 0.3
    idle = sampler.between(ended + 0.1, ended + 0.2)
    assert idle["me"] < 0.1


def test_the_machine_is_busy_at_least_as_this_process() -> None:
    before_machine, before_me = machine_busy_s(), process_cpu_s([os.getpid()])
    spin(0.3)
    assert machine_busy_s() - before_machine >= process_cpu_s([os.getpid()]) - before_me - 0.05


def test_threads_are_counted_by_their_operating_system_name() -> None:
    done, leave = threading.Event(), threading.Event()

    def work() -> None:
        name_this_thread("bench-spinner")
        spin(0.3)
        done.set()
        leave.wait()  # a thread's figures go with it: it lives until the last sample

    worker = threading.Thread(target=work)
    with CpuSampler({}, period=0.05, threads_of=[os.getpid()]) as sampler:
        started = time.time()
        worker.start()
        done.wait()
        ended = time.time()
    leave.set()
    worker.join()
    busy = sampler.between(started, ended)
    assert 0.25 <= busy["thread:bench-spinner"] <= 0.45
    assert threads_cpu_s([2**22 + 7]) == {}


def test_the_busiest_threads_and_the_rest() -> None:
    cpu = {"taskmanager": 9.0, **{f"thread:t{i}": float(i) for i in range(1, 9)}}
    assert busiest_threads(cpu, shown=3) == {"t8": 8.0, "t7": 7.0, "t6": 6.0, "other": 15.0}
