"""Per-identity quotas and volume signals of the console (T9, T10). Pure: the clock is
passed in; nothing here knows HTTP or Kubernetes.

- `HourlyQuota`: at most `limit` events per identity in any `window` seconds (e.g. evidence
  exports per hour); over it, the seconds until the oldest counted event leaves the window
  (for Retry-After). Memory: at most `limit` timestamps per identity seen in the window.
- `VolumeWatch`: counts events per identity in a window and says so **once** when an
  identity crosses the threshold (the "many reads by one identity" signal). The identity
  goes to a security log line, never to a metric label, so metrics stay bounded however
  many people read.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass
class HourlyQuota:
    limit: int
    window: float = 3600.0
    _events: dict[str, deque[float]] = field(default_factory=dict)

    def take(self, who: str, now: float) -> float | None:
        """Count one event for `who` and return None, or refuse it (counting nothing) and
        return how many seconds until one is allowed again."""
        if self.limit <= 0:
            return self.window
        events = self._events.setdefault(who, deque())
        while events and events[0] <= now - self.window:
            events.popleft()
        if len(events) >= self.limit:
            return max(1.0, math.ceil(events[0] + self.window - now))
        events.append(now)
        self._forget(now)
        return None

    def _forget(self, now: float) -> None:
        """Drop identities with nothing left in the window (bounded by active people)."""
        if len(self._events) > 1000:
            self._events = {
                w: e for w, e in self._events.items() if e and e[-1] > now - self.window
            }


@dataclass
class VolumeWatch:
    threshold: int
    window: float = 3600.0
    _counts: dict[str, tuple[float, int, bool]] = field(default_factory=dict)

    def record(self, who: str, now: float, amount: int = 1) -> int | None:
        """Count `amount` for `who` in the current window (a fixed window starting at their
        first event). Returns the count the first time it reaches the threshold in that
        window (the signal), else None."""
        start, count, signalled = self._counts.get(who, (now, 0, False))
        if now - start >= self.window:
            start, count, signalled = now, 0, False
        count += amount
        crossed = not signalled and count >= self.threshold > 0
        self._counts[who] = (start, count, signalled or crossed)
        if len(self._counts) > 1000:
            self._counts = {w: v for w, v in self._counts.items() if now - v[0] < self.window}
        return count if crossed else None
