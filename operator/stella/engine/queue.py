"""A de-duplicating work queue with delayed requeue, like controller-runtime's.

A key is processed by one worker at a time; a key enqueued while it is being processed
is processed once more afterwards (never concurrently, never lost).

A worker whose handler returns without awaiting anything (a settled Release: a warm
restart's first pass is 10,000 of them) would never give the loop back while keys wait:
/healthz and /readyz answered after ~1 s at 10,000 Releases. Each worker yields to the
loop every YIELD_EVERY keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

YIELD_EVERY = 16  # keys a worker handles between two turns it gives the loop


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while no key waits for a worker or runs
        self._idle.set()

    def add(self, key: K) -> None:
        if key in self._active:
            self._dirty.add(key)
            return
        if key not in self._queued:
            self._queued.add(key)
            self._ready.put_nowait(key)
            self._idle.clear()

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._seq), key))
        self._wake.set()

    def __len__(self) -> int:
        return len(self._queued) + len(self._delayed)

    @property
    def busy(self) -> bool:
        """A key is waiting for a worker or being processed (delayed requeues aside)."""
        return bool(self._queued or self._active)

    async def drained(self) -> None:
        """Return once no key waits for a worker or is being processed."""
        await self._idle.wait()

    async def _timer(self) -> None:
        while True:
            now = time.monotonic()
            while self._delayed and self._delayed[0][0] <= now:
                _, _, key = heapq.heappop(self._delayed)
                self.add(key)
            timeout = (self._delayed[0][0] - now) if self._delayed else None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _worker(self, handle: Callable[[K], Awaitable[float | None]]) -> None:
        for handled in itertools.count(1):
            if handled % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a get() from a queue that holds keys never yields
            key = await self._ready.get()
            self._queued.discard(key)
            self._active.add(key)
            try:
                requeue = await handle(key)
            except Exception:
                requeue = 5.0
            finally:
                self._active.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)
            elif requeue is not None:
                self.add_after(key, requeue)
            if not self.busy:
                self._idle.set()

    async def run(self, handle: Callable[[K], Awaitable[float | None]], workers: int) -> None:
        tasks = [asyncio.create_task(self._timer())]
        tasks += [asyncio.create_task(self._worker(handle)) for _ in range(workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
