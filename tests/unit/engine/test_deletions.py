"""Which locks a deleted Release may hold (issue 12: no finalizer on Releases; the engine
frees their locks from the DELETED event, and at its start from the synced view)."""

from __future__ import annotations

from typing import Any

from stella.engine.deletions import held_by, stale_locks
from stella.engine.view import ClusterView


def env(name: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": "1"}, "spec": {}, "status": status}


def rel(name: str, **phases: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop", "resourceVersion": "1"},
        "spec": {"environments": ["dev", "staging", "prod"]},
        "status": {"environments": [{"name": e, "phase": p} for e, p in phases.items()]},
    }


def world() -> ClusterView:
    view = ClusterView()
    view.apply("Environment", None, env("dev", inFlight="shop/r1"))
    view.apply("Environment", None, env("staging", inFlight="shop/gone"))
    view.apply("Environment", None, env("prod"))
    view.apply("Environment", None, env("lab", inFlight="not-a-key"))
    view.apply("Release", None, rel("r1", dev="Deploying"))
    return view


def test_a_lock_whose_holder_is_not_in_the_synced_view_is_stale() -> None:
    assert stale_locks(world()) == [("staging", "shop/gone")]


def test_a_lock_becomes_stale_when_its_holder_is_deleted() -> None:
    view = world()
    view.apply("Release", "DELETED", rel("r1"))
    assert stale_locks(view) == [("dev", "shop/r1"), ("staging", "shop/gone")]


def test_a_deleted_release_may_hold_what_the_view_shows_and_where_it_was_deploying() -> None:
    view = world()
    body = rel("r1", dev="Deployed", staging="Deploying", prod="WaitingForApproval")
    view.apply("Release", "DELETED", body)
    # dev: the view's copy names it; staging: its status says Deploying there (the
    # Environment's watch event of the lock write may still be on its way).
    assert held_by(view, "shop/r1", body) == ["dev", "staging"]


def test_a_release_that_held_nothing_frees_nothing() -> None:
    view = world()
    body = rel("r9", dev="Superseded", staging="WaitingForPrerequisites")
    assert held_by(view, "shop/r9", body) == []
    assert held_by(view, "shop/r9", {"metadata": {}, "status": "junk"}) == []
