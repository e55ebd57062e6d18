"""Per-identity rate limits for the admission webhooks (threat model T10).

One token bucket per username: `rate` tokens per second, at most `burst` saved up. Memory
is bounded: a bucket that has been idle long enough to be full again is the same as no
bucket and is dropped; beyond `max_identities` the least recently seen identity is dropped
(it starts again with a full bucket, which only ever errs towards admitting). The
operator's own username is exempt: throttling it would stall every promotion.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from stella.admission.base import RATELIMIT, Verdict

Clock = Callable[[], float]


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second
    burst: float  # capacity
    tokens: float
    updated: float  # clock reading of the last refill

    def take(self, now: float) -> tuple[bool, float]:
        """(allowed, retry_after seconds): spend one token if there is one."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True, 0.0
        return False, (1.0 - self.tokens) / self.rate

    def full_at(self) -> float:
        """When this bucket will be full again if nobody uses it."""
        return self.updated + (self.burst - self.tokens) / self.rate


class RateLimiter:
    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Clock = time.monotonic,
        max_identities: int = 10_000,
        exempt: Iterable[str] = (),
    ) -> None:
        if rate <= 0 or burst < 1 or max_identities < 1:
            raise ValueError("rate must be > 0, burst >= 1 and max_identities >= 1")
        self.rate = rate
        self.burst = burst
        self.max_identities = max_identities
        self.exempt = frozenset(exempt)
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, username: str) -> tuple[bool, float]:
        """(allowed, retry_after seconds) for one request by `username`."""
        if username in self.exempt:
            return True, 0.0
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(username)
            if bucket is None:
                bucket = TokenBucket(self.rate, self.burst, self.burst, now)
                self._buckets[username] = bucket
            else:
                self._buckets.move_to_end(username)
            result = bucket.take(now)
            self._evict(now)
            return result

    def verdict(self, username: str) -> Verdict | None:
        """None when the request may proceed, else the "slow down" denial."""
        allowed, retry_after = self.allow(username)
        return None if allowed else ratelimited(username, retry_after)

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        # Oldest first: drop buckets that are full again (they hold no information).
        while buckets:
            oldest = next(iter(buckets.values()))
            if oldest.full_at() > now:
                break
            buckets.popitem(last=False)
        while len(buckets) > self.max_identities:
            buckets.popitem(last=False)


def ratelimited(username: str, retry_after: float) -> Verdict:
    seconds = max(0.1, math.ceil(retry_after * 10) / 10)
    return Verdict(
        False,
        RATELIMIT,
        f"too many requests from {username}: slow down and retry in {seconds:.1f}s",
        retry_after=seconds,
    )
