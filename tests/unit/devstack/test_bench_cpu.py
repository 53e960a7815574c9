from __future__ import annotations

import os
import time

from devstack.bench.cpu import CpuSampler, machine_busy_s, process_cpu_s


def spin(seconds: float) -> None:
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass


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
