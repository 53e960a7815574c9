from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bethos.os_threads import name_this_thread

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux only")


def os_name_of_this_thread() -> str:
    return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()


def test_a_thread_gets_its_name_cut_to_what_the_kernel_keeps() -> None:
    seen: list[str] = []

    def run() -> None:
        assert name_this_thread("bethos-a-very-long-thread-name")
        seen.append(os_name_of_this_thread())

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert seen == ["bethos-a-very-l"]


def test_pool_threads_carry_their_python_names() -> None:
    with ThreadPoolExecutor(
        2, thread_name_prefix="influxdb-read", initializer=name_this_thread
    ) as pool:
        names = set(pool.map(lambda _: os_name_of_this_thread(), range(20)))
    assert names and names <= {"influxdb-read_0", "influxdb-read_1"}
