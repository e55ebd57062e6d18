"""T10 at admission: the pending-Release quota per namespace and the loop detector, both
answered as 429 with a retry time."""

from __future__ import annotations

from dataclasses import replace

from admission_factories import (
    ALICE,
    GRANTS,
    OPERATOR,
    create,
    release_body,
    world,
)
from hypothesis import given
from hypothesis import strategies as st

from stella.admission import AdmissionPolicy, validate
from stella.admission.base import RELEASE_LOOP, RELEASE_LOOP_SIGNAL, RELEASE_QUOTA
from stella.admission.loops import LoopDetector
from stella.admission.quotas import pending


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _policy(clock: Clock, **kw: object) -> AdmissionPolicy:
    return AdmissionPolicy(
        operator_username=OPERATOR,
        authorizer=GRANTS,
        loops=LoopDetector(clock),
        **kw,  # type: ignore[arg-type]
    )


def _view(*releases: dict[str, object]) -> object:
    view = world()
    for body in releases:
        view.apply("Release", None, body)
    return view


def test_pending_counts_unfinished_releases_only() -> None:
    assert pending(release_body())  # never evaluated
    assert pending(release_body(phases={"dev": "Deployed", "staging": "WaitingForApproval"}))
    assert not pending(
        release_body(phases={"dev": "Deployed", "staging": "Superseded", "prod": "Rejected"})
    )


def test_a_namespace_at_its_quota_is_refused_with_a_retry() -> None:
    clock = Clock()
    policy = _policy(clock, pending_releases_per_namespace=2)
    held = [release_body(f"r{i}") for i in range(2)]
    done = release_body(
        "old", phases={"dev": "Deployed", "staging": "Deployed", "prod": "Deployed"}
    )
    view = _view(*held, done)
    v = validate(create("Release", release_body("new"), ALICE), view, policy)
    assert (v.allowed, v.rule, v.retry_after) == (False, RELEASE_QUOTA, 30.0)
    # world() holds shop's own unfinished Release too: 3 held, "old" (finished) not counted.
    assert "already holds 3 unfinished Releases (the quota is 2)" in v.message
    # Another namespace has its own quota.
    other = validate(
        create("Release", release_body("new", "other", environments=("dev",)), ALICE), view, policy
    )
    assert other.allowed, other.message


def test_the_same_release_again_and_again_is_a_loop() -> None:
    clock = Clock()
    policy = _policy(clock, release_loop_threshold=3, release_loop_window=60.0)
    view = _view()
    verdicts = [
        validate(create("Release", release_body(f"ci-{i}"), ALICE), view, policy) for i in range(4)
    ]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    loop = verdicts[-1]
    assert (loop.rule, loop.security_signal) == (RELEASE_LOOP, RELEASE_LOOP_SIGNAL)
    assert loop.retry_after == 60.0 and "a step or webhook in a loop?" in loop.message
    # Other components are another Release: not part of the loop.
    other = release_body("fix", images=("registry.example.com/shop/web@sha256:" + "e" * 64,))
    assert validate(create("Release", other, ALICE), view, policy).allowed
    # Once the window has room again, the same Release may be made again.
    clock.now += 61
    assert validate(create("Release", release_body("ci-9"), ALICE), view, policy).allowed


def test_dry_runs_are_never_counted() -> None:
    clock = Clock()
    policy = _policy(clock, release_loop_threshold=1)
    view = _view()
    req = replace(create("Release", release_body("a"), ALICE), dry_run=True)
    assert all(validate(req, view, policy).allowed for _ in range(5))
    assert validate(create("Release", release_body("b"), ALICE), view, policy).allowed


@given(st.lists(st.floats(min_value=0, max_value=10), min_size=1, max_size=40))
def test_never_more_than_threshold_admitted_in_any_window(gaps: list[float]) -> None:
    clock = Clock()
    d, admitted = LoopDetector(clock), []
    for gap in gaps:
        clock.now += gap
        if d.check(("ns", "x"), 3, 20.0) is None:
            d.record(("ns", "x"), 20.0)
            admitted.append(clock.now)
    assert all(sum(1 for t in admitted if start - 20.0 < t <= start) <= 3 for start in admitted)
