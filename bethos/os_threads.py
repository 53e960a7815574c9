"""Names a thread for the operating system (`top -H`, `/proc/<pid>/task/<tid>/comm`, profilers
and the JVM's thread dumps of native threads). Python's thread names stay inside Python, and a
thread started from a Flink task thread would otherwise carry the task's name, so its CPU could
not be told from the task's."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
import threading

PR_SET_NAME = 15
# The kernel keeps a thread's name in 16 bytes, its NUL included.
OS_NAME_BYTES = 15


@functools.cache
def _libc() -> ctypes.CDLL | None:
    path = ctypes.util.find_library("c")
    return None if path is None else ctypes.CDLL(path, use_errno=True)


def name_this_thread(name: str | None = None) -> bool:
    """Gives the calling thread `name` (default: its Python name) for the operating system, cut
    to 15 bytes; False where that cannot be done (not Linux, no C library found)."""
    libc = _libc() if sys.platform.startswith("linux") else None
    if libc is None:
        return False
    text = (name or threading.current_thread().name).encode()[:OS_NAME_BYTES]
    return bool(libc.prctl(PR_SET_NAME, ctypes.c_char_p(text), 0, 0, 0) == 0)
