"""Admission's SubjectAccessReview cache without a cluster (the review is a function given
to it): an answer is never used once older than its ttl, a person who keeps deciding is
re-asked in the background before that, and a failed review refuses."""

from __future__ import annotations

import threading
import time

from stella.handlers.access_reviews import SubjectAccessReviews
from stella.policy import Identity

BOB = Identity(username="bob", uid="u-bob", groups=frozenset({"release-approvers"}))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class RBAC:
    """The API server's answers: `grant` is what a review says now; `fail` makes it raise."""

    def __init__(self) -> None:
        self.grant = True
        self.fail = False
        self.asked: list[tuple[str, str, str]] = []
        self.done = threading.Semaphore(0)

    def __call__(self, user: Identity, verb: str, env: str, timeout: float) -> bool:
        try:
            self.asked.append((user.username, verb, env))
            if self.fail:
                raise ConnectionError("API server unreachable")
            return self.grant
        finally:
            self.done.release()

    def wait(self) -> None:
        assert self.done.acquire(timeout=10), "no review was asked"


def reviews(rbac: RBAC, clock: Clock) -> SubjectAccessReviews:
    return SubjectAccessReviews(ttl=5.0, review=rbac, clock=clock)


def answered() -> tuple[SubjectAccessReviews, RBAC, Clock]:
    """A cache holding one answer (bob may approve prod), just asked."""
    rbac, clock = RBAC(), Clock()
    sar = reviews(rbac, clock)
    assert sar.may(BOB, "approve", "prod") is True
    rbac.wait()
    return sar, rbac, clock


def _settle(sar: SubjectAccessReviews) -> None:
    """Until no background review is in flight (its answer stored)."""
    deadline = time.monotonic() + 10
    while sar._refreshing:
        assert time.monotonic() < deadline, "a background review never finished"
        time.sleep(0.01)


def test_a_fresh_answer_is_reused_without_asking_again() -> None:
    rbac, clock = RBAC(), Clock()
    sar = reviews(rbac, clock)
    assert sar.may(BOB, "approve", "prod") is True
    clock.now += 2.4  # younger than half its life
    assert sar.may(BOB, "approve", "prod") is True
    _settle(sar)
    assert rbac.asked == [("bob", "approve", "prod")]


def test_each_person_verb_and_environment_is_asked_on_its_own() -> None:
    rbac, clock = RBAC(), Clock()
    sar = reviews(rbac, clock)
    carol = Identity(username="carol", uid="u-c", groups=frozenset({"release-approvers"}))
    for user, verb, env in ((BOB, "approve", "prod"), (carol, "approve", "prod")):
        sar.may(user, verb, env)
    sar.may(BOB, "promote", "prod")
    sar.may(BOB, "approve", "staging")
    assert len(rbac.asked) == 4


def _used_once_more(sar: SubjectAccessReviews, rbac: RBAC, clock: Clock, age: float) -> None:
    """An answer (True) `age` seconds old, past half its life: used, and asked again
    off the request's path."""
    clock.now += age
    assert sar.may(BOB, "approve", "prod") is True
    rbac.wait()
    _settle(sar)
    assert len(rbac.asked) == 2


def test_an_ageing_answer_is_used_once_more_and_asked_again_in_the_background() -> None:
    sar, rbac, clock = answered()
    rbac.grant = False  # revoked
    _used_once_more(sar, rbac, clock, 3.0)
    clock.now += 0.1
    assert sar.may(BOB, "approve", "prod") is False  # the revocation, from the new answer


def test_a_revoked_grant_stops_admitting_within_the_ttl_even_when_nobody_asks_between() -> None:
    rbac, clock = RBAC(), Clock()
    sar = reviews(rbac, clock)
    assert sar.may(BOB, "approve", "prod") is True
    rbac.grant = False
    clock.now += 5.0  # exactly its ttl: not used any more
    assert sar.may(BOB, "approve", "prod") is False
    assert len(rbac.asked) == 2


def test_a_failed_review_refuses_and_is_not_cached() -> None:
    rbac, clock = RBAC(), Clock()
    rbac.fail = True
    sar = reviews(rbac, clock)
    assert sar.may(BOB, "approve", "prod") is None  # the rule refuses on None
    rbac.fail = False
    assert sar.may(BOB, "approve", "prod") is True
    assert len(rbac.asked) == 2


def test_a_failed_background_review_lets_the_old_answer_expire_on_time() -> None:
    sar, rbac, clock = answered()
    rbac.fail = True  # the API server is gone
    _used_once_more(sar, rbac, clock, 4.0)
    clock.now += 1.0  # 5 s since the one answer there is
    assert sar.may(BOB, "approve", "prod") is None  # asked again, failed: refused


def test_one_background_review_at_a_time_per_question() -> None:
    rbac, clock = RBAC(), Clock()
    gate = threading.Event()
    inner = rbac

    def slow(user: Identity, verb: str, env: str, timeout: float) -> bool:
        if len(inner.asked) >= 1:
            gate.wait(timeout=10)
        return inner(user, verb, env, timeout)

    sar = SubjectAccessReviews(ttl=5.0, review=slow, clock=clock)
    sar.may(BOB, "approve", "prod")
    clock.now += 3.0
    for _ in range(20):
        assert sar.may(BOB, "approve", "prod") is True
    gate.set()
    _settle(sar)
    assert len(rbac.asked) == 2
