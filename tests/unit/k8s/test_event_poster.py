"""Events leave the engine through a bounded queue and one thread: never a POST on the
event loop, never an unbounded pile of pending posts."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from stella.k8s import events


def test_posts_in_order_from_one_thread_and_keeps_only_a_slim_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        events,
        "emit",
        lambda involved, reason, *_a, **_k: seen.append(
            (threading.current_thread().name, reason, involved)
        ),
    )
    poster = events.EventPoster(maxsize=8)
    big = {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Release",
        "metadata": {"name": "r", "namespace": "shop", "uid": "u", "annotations": {"x": "y"}},
        "spec": {"components": ["..."] * 1000},
    }
    for i in range(5):
        poster.post(big, f"R{i}", "m")
    assert poster.drain()
    assert [r for _, r, _ in seen] == [f"R{i}" for i in range(5)]
    assert {t for t, _, _ in seen} == {"stella-events"}
    assert seen[0][2] == {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Release",
        "metadata": {"name": "r", "namespace": "shop", "uid": "u"},
    }


def test_a_full_queue_drops_instead_of_growing(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    monkeypatch.setattr(events, "emit", lambda *_a, **_k: gate.wait(5))
    poster = events.EventPoster(maxsize=2)
    for i in range(10):
        poster.post({"metadata": {"name": f"r{i}"}}, "R", "m")
    assert poster.dropped >= 7
    gate.set()
    assert poster.drain()


def test_a_failing_post_does_not_stop_the_poster(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def flaky(_involved: Any, reason: str, *_a: Any, **_k: Any) -> None:
        calls.append(reason)
        if reason == "boom":
            raise RuntimeError("API down")

    monkeypatch.setattr(events, "emit", flaky)
    poster = events.EventPoster()
    poster.post({"metadata": {"name": "a"}}, "boom", "m")
    poster.post({"metadata": {"name": "b"}}, "ok", "m")
    assert poster.drain() and calls == ["boom", "ok"]
