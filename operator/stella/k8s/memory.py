"""Give the heap's free memory back to the OS once the big first pass is over.

A start-up LIST and the first reconcile of every object make a high-water mark of
short-lived objects (parsed pages, statuses built and written, API responses). CPython
frees them, but glibc's allocator keeps most of those pages mapped, so RSS stays at the
peak for the life of the process — and RSS is what a memory limit and an OOM-kill see
(issue 12: 10,000 Releases x 5 Environments). `malloc_trim(0)` returns free pages, from
the top of the heap and from its middle (glibc >= 2.8). Elsewhere (musl, macOS) it is a
no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger("stella")


def _rss_kib() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def trim(why: str) -> None:
    """Collect garbage, then hand free heap pages back to the OS (glibc only)."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        malloc_trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return
    before = _rss_kib()
    malloc_trim(0)
    after = _rss_kib()
    if before is not None and after is not None:
        log.info("memory: %s; RSS %.1f -> %.1f MiB", why, before / 1024, after / 1024)
