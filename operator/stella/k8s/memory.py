"""Give the heap's free memory back to the OS once the big first pass is over.

A start-up LIST and the first reconcile of every object make a high-water mark of
short-lived objects (parsed pages, statuses built and written, API responses). CPython
frees them, but glibc's allocator keeps most of those pages mapped, so RSS stays at the
peak for the life of the process — and RSS is what a memory limit and an OOM-kill see
(issue 12: 10,000 Releases x 5 Environments). `malloc_trim(0)` returns free pages, from
the top of the heap and from its middle (glibc >= 2.8). Elsewhere (musl, macOS) it is a
no-op.

And the cyclic garbage collector, tuned once the operator's modules are loaded
(`tune_gc`): a warm restart parses 10,000 Releases in pages of 500, and each page's
objects live just long enough to be promoted to the oldest generation, so CPython's
default thresholds (700, 10, 10) ran a full collection — every object of the process —
every page or two: about 20 of them in one LIST of 10,000 Releases, 2-5 s of CPU on the
GIL the whole operator shares (issue 12; measured with gc.callbacks). JSON, the views'
copies and the API responses form no reference cycles, so collecting less often frees
them no later (reference counting does that); only cyclic garbage waits a little longer.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import gc
import logging
from collections.abc import Callable

log = logging.getLogger("stella")


# gen0 collects every 10,000 net allocations of container objects (not 700); gen1 and gen2
# keep CPython's ratios. With these (and the views' copy told apart by type,
# stella.engine.projection) ingesting a LIST of 10,000 Releases ran 3 full collections,
# not 20, and its thread's CPU went from 3.2-3.5 s to 1.7-2.0 s in the operator.
GC_THRESHOLDS = (10_000, 10, 10)


def tune_gc() -> None:
    """Move what is loaded so far (modules, classes, pydantic schemas: never garbage) out of
    the collector's sight, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _rss_kib() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@functools.cache  # find_library runs ldconfig in a subprocess: once per process, not per trim
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        fn: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return fn


def trim(why: str) -> None:
    """Collect garbage, then hand free heap pages back to the OS (glibc only)."""
    gc.collect()
    release(why, logging.INFO)


def release(why: str, level: int = logging.DEBUG) -> int | None:
    """Hand the heap's free pages back to the OS (glibc only), without a garbage collection;
    returns the KiB of RSS given back (None where it cannot be told)."""
    malloc_trim = _malloc_trim()
    if malloc_trim is None:
        return None
    before = _rss_kib()
    malloc_trim(0)
    after = _rss_kib()
    if before is None or after is None:
        return None
    log.log(level, "memory: %s; RSS %.1f -> %.1f MiB", why, before / 1024, after / 1024)
    return before - after


async def release_every(seconds: float) -> None:
    """Hand free heap pages back every `seconds` (0: never), for the life of the process.

    Under steady load the Python objects the operator holds stay flat (T10, a tracemalloc
    run: +0.8 MiB traced while RSS grew +28 MiB with the Releases held constant) — what grows
    is glibc's heaps: the webhook server's, the informers' and the engine's I/O threads
    each allocate in their own arena, and the pages freed there stay mapped until a trim.
    One malloc_trim walks every arena, in a thread off the loop; no gc.collect,
    which at 10,000 Releases would hold the GIL for a noticeable pause."""
    while seconds > 0:
        await asyncio.sleep(seconds)
        await asyncio.to_thread(release, "periodic trim")
