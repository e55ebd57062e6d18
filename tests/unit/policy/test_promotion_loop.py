"""The same promotion asked again and again (stella.policy.promotion_loop), and the engine
judging a Promote Action with it from the view (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stella.engine.actions import ActionRunner
from stella.engine.view import ClusterView
from stella.policy.promotion_loop import Request, earlier_requests, loop_message

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=10)


def req(release: str, minute: float) -> Request:
    return Request(release, T0 + timedelta(minutes=minute))


def test_only_the_same_release_within_the_window_counts() -> None:
    requests = [req("shop/a", 0), req("shop/b", 1), req("shop/a", 2), req("shop/a", 11.5)]
    assert earlier_requests(requests, 3, WINDOW) == [requests[2]]  # 0 is 11.5 min before
    assert earlier_requests(requests, 2, WINDOW) == [requests[0]]
    assert earlier_requests(requests, 0, WINDOW) == []


def test_past_the_threshold_is_a_loop_with_a_message_that_says_what_to_do() -> None:
    requests = [req("shop/a", m) for m in range(4)]
    assert loop_message(requests[2], earlier_requests(requests, 2, WINDOW), 3, WINDOW) is None
    msg = loop_message(requests[3], earlier_requests(requests, 3, WINDOW), 3, WINDOW)
    assert msg is not None and "4 times within 600s" in msg and "Fix the caller" in msg
    assert loop_message(requests[3], requests[:3], 0, WINDOW) is None  # 0 = off


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.floats(0, 60)), max_size=25))
def test_property_a_verdict_depends_only_on_what_came_before(
    items: list[tuple[str, float]],
) -> None:
    requests = sorted((req(r, m) for r, m in items), key=lambda r: r.created)
    for i, this in enumerate(requests):
        earlier = earlier_requests(requests, i, WINDOW)
        assert all(r.release == this.release for r in earlier)
        assert all(this.created - WINDOW <= r.created <= this.created for r in earlier)
        # Requests made after this one never change its verdict (a restart re-judges it
        # with more Actions in the view).
        assert earlier_requests(requests[: i + 1], i, WINDOW) == earlier


def promote(uid: str, at: str, release: str = "shop/rel") -> dict[str, Any]:
    return {
        "metadata": {"name": f"promote-{uid}", "uid": uid, "creationTimestamp": at},
        "spec": {"action": "Promote", "environment": "prod", "release": release},
    }


def test_the_engine_refuses_the_request_past_the_threshold_from_the_view(
    monkeypatch: Any,
) -> None:
    monkeypatch.setenv("STELLA_PROMOTION_LOOP_THRESHOLD", "2")
    monkeypatch.setenv("STELLA_PROMOTION_LOOP_WINDOW_SECONDS", "600")
    monkeypatch.setenv("STELLA_RELEASE_LOOP_THRESHOLD", "100")  # not the promotion loop's
    view = ClusterView()
    bodies = [promote(f"u{i}", f"2026-11-30T09:0{i}:00Z") for i in range(3)]
    bodies.append(promote("other", "2026-11-30T09:04:00Z", release="shop/else"))
    for body in bodies:
        view.apply("Action", "ADDED", body)
    runner = ActionRunner(view, recorder=None)  # type: ignore[arg-type]
    assert runner._promotion_loop(bodies[0], "prod") is None
    assert runner._promotion_loop(bodies[1], "prod") is None
    verdict = runner._promotion_loop(bodies[2], "prod")
    assert verdict is not None and verdict.phase == "Refused" and verdict.reason == "PromotionLoop"
    assert runner._promotion_loop(bodies[3], "prod") is None  # another Release


def test_the_promotion_loop_has_its_own_settings_defaulting_to_the_release_loops(
    monkeypatch: Any,
) -> None:
    for name in (
        "STELLA_PROMOTION_LOOP_THRESHOLD",
        "STELLA_PROMOTION_LOOP_WINDOW_SECONDS",
        "STELLA_RELEASE_LOOP_THRESHOLD",
        "STELLA_RELEASE_LOOP_WINDOW_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)
    runner = ActionRunner(ClusterView(), recorder=None)  # type: ignore[arg-type]
    assert (runner.loop_threshold, runner.loop_window) == (5, timedelta(seconds=600))
    monkeypatch.setenv("STELLA_RELEASE_LOOP_THRESHOLD", "2")
    monkeypatch.setenv("STELLA_RELEASE_LOOP_WINDOW_SECONDS", "60")
    runner = ActionRunner(ClusterView(), recorder=None)  # type: ignore[arg-type]
    assert (runner.loop_threshold, runner.loop_window) == (5, timedelta(seconds=600))
    monkeypatch.setenv("STELLA_PROMOTION_LOOP_THRESHOLD", "0")  # off
    monkeypatch.setenv("STELLA_PROMOTION_LOOP_WINDOW_SECONDS", "30")
    runner = ActionRunner(ClusterView(), recorder=None)  # type: ignore[arg-type]
    assert (runner.loop_threshold, runner.loop_window) == (0, timedelta(seconds=30))
    view = ClusterView()
    bodies = [promote(f"u{i}", f"2026-11-30T09:00:0{i}Z") for i in range(4)]
    for body in bodies:
        view.apply("Action", "ADDED", body)
    assert ActionRunner(view, recorder=None)._promotion_loop(bodies[3], "prod") is None  # type: ignore[arg-type]
