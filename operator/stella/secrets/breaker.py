"""A circuit breaker with exponential backoff, shared by the Vault and registry clients.

closed    -> calls go through; ``failure_threshold`` consecutive failures open it.
open      -> calls fail fast (``allow()`` is False) until the backoff elapses.
half-open -> one trial call goes through; success closes the breaker and resets the
             backoff, failure opens it again with the backoff doubled (up to ``max_backoff``).

No I/O and no sleeping here: the clock is injectable, so the logic is tested without time
passing. Thread-safe (the Vault client is called from worker threads).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True)
class BreakerPolicy:
    failure_threshold: int = 3
    base_backoff: float = 1.0
    max_backoff: float = 60.0
    jitter: float = 0.1  # +- fraction of the backoff, so many breakers do not probe in step
    #: a half-open trial that has not reported back within this many seconds is forgotten
    #: (its caller died), and another caller may try.
    trial_timeout: float = 30.0


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        policy: BreakerPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.name = name
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._rng = rng
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opens = 0  # consecutive openings, for the exponential backoff
        self._open_until = 0.0
        self._trial_started: float | None = None

    @property
    def state(self) -> BreakerState:
        with self._lock:
            self._tick()
            return self._state

    def _tick(self) -> None:
        if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
            self._state = BreakerState.HALF_OPEN
            self._trial_started = None

    def allow(self) -> bool:
        """May a call go out now? In half-open state, only the first caller gets a yes."""
        with self._lock:
            self._tick()
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN:
                return False
            now = self._clock()
            if self._trial_started is None or now - self._trial_started > self.policy.trial_timeout:
                self._trial_started = now
                return True
            return False

    def retry_after(self) -> float:
        """Seconds until the breaker lets a call through again (0 when it would now)."""
        with self._lock:
            self._tick()
            if self._state is BreakerState.OPEN:
                return max(0.0, self._open_until - self._clock())
            if self._state is BreakerState.HALF_OPEN and self._trial_started is not None:
                return max(0.0, self._trial_started + self.policy.trial_timeout - self._clock())
            return 0.0

    def record_success(self) -> None:
        with self._lock:
            self._state = BreakerState.CLOSED
            self._failures = 0
            self._opens = 0
            self._trial_started = None

    def record_failure(self) -> None:
        with self._lock:
            self._tick()
            self._failures += 1
            if (
                self._state is BreakerState.HALF_OPEN
                or self._failures >= self.policy.failure_threshold
            ):
                self._open()

    def _open(self) -> None:
        p = self.policy
        backoff = min(p.max_backoff, p.base_backoff * (2**self._opens))
        backoff *= 1 + p.jitter * (2 * self._rng() - 1)
        self._opens += 1
        self._state = BreakerState.OPEN
        self._open_until = self._clock() + backoff
        self._trial_started = None

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state.value})"
