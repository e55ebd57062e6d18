"""Loop detection (T10): the same Release made again and again.

A CI step, a registry webhook or a plugin that re-creates the same Release (the same
spec in the same namespace, whatever its name) in a loop would flood the API server, the
engine and the evidence chains. Admission counts the creates it admitted per (namespace,
spec digest) in a sliding window; past the threshold the next one is refused (429 with
Retry-After) as the security signal ReleaseLoop until the window has room again.

State lives in the admission process (each replica counts what it admitted); the clock is
injectable so the rule stays testable without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

MAX_KEYS = 50_000


class LoopDetector:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seen: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: tuple[str, str], threshold: int, window: float) -> float | None:
        """Seconds until `key` may be created again, or None when it may be now."""
        now = self._clock()
        with self._lock:
            times = self._seen.get(key)
            if times is None:
                return None
            while times and times[0] <= now - window:
                times.popleft()
            if len(times) < threshold:
                return None
            return max(1.0, times[0] + window - now)

    def record(self, key: tuple[str, str], window: float) -> None:
        now = self._clock()
        with self._lock:
            if len(self._seen) >= MAX_KEYS:
                self._forget(now, window)
            self._seen.setdefault(key, deque()).append(now)

    def _forget(self, now: float, window: float) -> None:
        for key in [k for k, t in self._seen.items() if not t or t[-1] <= now - window]:
            del self._seen[key]
        if len(self._seen) >= MAX_KEYS:  # still full of live keys: drop the oldest half
            for key in list(self._seen)[: MAX_KEYS // 2]:
                del self._seen[key]
