"""Verification without the cyclic garbage collector's passes.

Verifying allocates a few dozen small objects per packet (tuples, strings, parsed
models), none of them in reference cycles: reference counting frees them all. The
collector still walks the young ones every 700 allocations and the whole heap now and
then, about a fifth of verify's time on 10,000 packets, and finds nothing to free.
Pausing it for the run (and restoring whatever was set) takes that time back.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
