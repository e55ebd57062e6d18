"""A sudden change in a plugin's resource use is a signal (T7 detection): each run's fuel
and memory against the median of the plugin's recent runs. Pure; in memory (a restart
starts a new baseline)."""

from __future__ import annotations

import statistics
from collections import deque

WINDOW = 20
MIN_RUNS = 5
FACTOR = 10.0


class ResourceBaseline:
    def __init__(self, window: int = WINDOW, min_runs: int = MIN_RUNS, factor: float = FACTOR):
        self._runs: dict[str, deque[tuple[int, int]]] = {}
        self._window, self._min_runs, self._factor = window, min_runs, factor

    def observe(self, key: str, fuel: int, memory: int) -> str | None:
        """Record a run; a message when it used `factor` times the recent median or more."""
        runs = self._runs.setdefault(key, deque(maxlen=self._window))
        signal = None
        if len(runs) >= self._min_runs:
            fuel_median = statistics.median(f for f, _ in runs)
            memory_median = statistics.median(m for _, m in runs)
            if fuel_median > 0 and fuel >= self._factor * fuel_median:
                signal = (
                    f"used {fuel} fuel, {fuel / fuel_median:.0f}x the median of its last "
                    f"{len(runs)} runs ({fuel_median:.0f})"
                )
            elif memory_median > 0 and memory >= self._factor * memory_median:
                signal = (
                    f"used {memory} bytes of memory, {memory / memory_median:.0f}x the median "
                    f"of its last {len(runs)} runs ({memory_median:.0f})"
                )
        runs.append((fuel, memory))
        return signal
