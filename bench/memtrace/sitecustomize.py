"""Bench-only: tracemalloc snapshots of a process started with this directory on
PYTHONPATH and STELLA_BENCH_TRACEMALLOC_DIR set (bench_t10.py --tracemalloc). A daemon
thread starts tracing once the process has started (tracing every import would slow the
start past the operator's readiness deadline; growth is what is wanted), then dumps a
snapshot every STELLA_BENCH_TRACEMALLOC_EVERY seconds (default 30) as
DIR/snapshot-NNNN.bin; bench/memtrace/diff.py compares two. Never used by Stella itself."""

from __future__ import annotations

import os
import threading
import time
import tracemalloc

_DIR = os.environ.get("STELLA_BENCH_TRACEMALLOC_DIR")


def _dump(directory: str, every: float) -> None:
    time.sleep(float(os.environ.get("STELLA_BENCH_TRACEMALLOC_DELAY", "15")))
    tracemalloc.start(int(os.environ.get("STELLA_BENCH_TRACEMALLOC_FRAMES", "8")))
    n = 0
    while True:
        time.sleep(every)
        tracemalloc.take_snapshot().dump(os.path.join(directory, f"snapshot-{n:04d}.bin"))
        n += 1


if _DIR:
    every = float(os.environ.get("STELLA_BENCH_TRACEMALLOC_EVERY", "30"))
    threading.Thread(target=_dump, args=(_DIR, every), daemon=True, name="memtrace").start()
