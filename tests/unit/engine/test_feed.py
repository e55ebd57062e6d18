"""The engine's watches hand events to the controller on its loop (issue 12: kopf no longer
feeds the engine)."""

from __future__ import annotations

import asyncio
from typing import Any

from stella.engine.feed import ENGINE_SOURCES, Feed
from stella.engine.view import Body


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def observe(self, kind: str, event_type: str | None, body: Body) -> None:
        self.calls.append(("observe", kind, event_type, body["metadata"]["name"]))

    def relisted(self, kind: str, items: list[Body]) -> None:
        self.calls.append(("relisted", kind, [b["metadata"]["name"] for b in items]))


def body(name: str, **annotations: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "annotations": annotations}}


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_only_workloads_the_engine_deployed_are_passed_on_as_workloads() -> None:
    async def run() -> list[tuple[Any, ...]]:
        target = Recorder()
        feed = Feed(target, asyncio.get_running_loop())
        feed.apply("Deployment", "MODIFIED", body("web", **{"stella.io/release": "shop/r1"}))
        feed.apply("Deployment", "MODIFIED", body("other"))
        feed.apply("Release", "ADDED", body("r1"))
        await _settle()
        return target.calls

    assert asyncio.run(run()) == [
        ("observe", "Workload", "MODIFIED", "web"),
        ("observe", "Release", "ADDED", "r1"),
    ]


def test_synced_only_once_every_kind_was_listed_and_applied_on_the_loop() -> None:
    async def run() -> tuple[bool, bool, list[tuple[Any, ...]]]:
        target = Recorder()
        feed = Feed(target, asyncio.get_running_loop())
        kinds = [s.kind for s in ENGINE_SOURCES]
        for kind in kinds[:-1]:
            feed.replace(kind, [body(f"{kind.lower()}-1")])
        await _settle()
        before = feed.listed.is_set()
        feed.replace(kinds[-1], [])
        await _settle()
        return before, feed.listed.is_set(), target.calls

    before, after, calls = asyncio.run(run())
    assert not before and after
    assert ("relisted", "Release", ["release-1"]) in calls
    # A workload LIST is passed on item by item (filtered), never as the view's relist.
    assert not any(c[0] == "relisted" and c[1] in ("Deployment", "DaemonSet") for c in calls)


def test_listed_items_get_the_api_version_events_need() -> None:
    async def run() -> list[Any]:
        feed = Feed(Recorder(), asyncio.get_running_loop())
        items = [body("r1"), body("web", **{"stella.io/release": "shop/r1"})]
        feed.replace("Release", items[:1])
        feed.replace("Deployment", items[1:])
        await _settle()
        return [b["apiVersion"] for b in items]

    assert asyncio.run(run()) == ["stella.io/v1alpha1", "apps/v1"]
