"""Per-identity token buckets with an injected clock."""

from __future__ import annotations

import pytest
from admission_factories import OPERATOR

from stella.admission import RateLimiter, ratelimited


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_rate() -> None:
    clock = Clock()
    rl = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [rl.allow("alice")[0] for _ in range(3)] == [True, True, True]
    allowed, retry = rl.allow("alice")
    assert not allowed and retry == pytest.approx(0.5)
    clock.now += 0.5
    assert rl.allow("alice") == (True, 0.0)
    assert not rl.allow("alice")[0]


def test_identities_are_independent() -> None:
    rl = RateLimiter(rate=1.0, burst=1, clock=Clock())
    assert rl.allow("alice")[0]
    assert not rl.allow("alice")[0]
    assert rl.allow("bob")[0]


def test_the_operator_is_exempt() -> None:
    rl = RateLimiter(rate=1.0, burst=1, clock=Clock(), exempt={OPERATOR})
    assert all(rl.allow(OPERATOR)[0] for _ in range(100))
    assert len(rl) == 0


def test_verdict_helper() -> None:
    clock = Clock()
    rl = RateLimiter(rate=2.5, burst=1, clock=clock)
    assert rl.verdict("alice") is None
    verdict = rl.verdict("alice")
    assert verdict is not None and not verdict.allowed
    assert verdict.rule == "ratelimit"
    assert verdict.message == "too many requests from alice: slow down and retry in 0.4s"


@pytest.mark.parametrize(
    ("retry", "shown"), [(0.0, "0.1s"), (0.01, "0.1s"), (0.41, "0.5s"), (3.0, "3.0s")]
)
def test_retry_after_rounds_up(retry: float, shown: str) -> None:
    assert ratelimited("bob", retry).message.endswith(f"retry in {shown}")


def test_idle_buckets_are_evicted() -> None:
    clock = Clock()
    rl = RateLimiter(rate=10.0, burst=5, clock=clock)
    for i in range(100):
        rl.allow(f"user{i}")
    assert len(rl) == 100
    clock.now += 1.0  # every bucket is full again
    rl.allow("late")
    assert len(rl) == 1


def test_memory_is_capped() -> None:
    clock = Clock()
    rl = RateLimiter(rate=0.001, burst=1, clock=clock, max_identities=50)
    for i in range(1000):
        rl.allow(f"user{i}")
    assert len(rl) == 50
    # the most recent identities are still throttled
    assert not rl.allow("user999")[0]


def test_a_clock_going_backwards_grants_nothing() -> None:
    clock = Clock()
    rl = RateLimiter(rate=1.0, burst=1, clock=clock)
    assert rl.allow("alice")[0]
    clock.now -= 100
    assert not rl.allow("alice")[0]


@pytest.mark.parametrize("kw", [{"rate": 0, "burst": 1}, {"rate": 1, "burst": 0}])
def test_bad_settings(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RateLimiter(**kw)  # type: ignore[arg-type]
