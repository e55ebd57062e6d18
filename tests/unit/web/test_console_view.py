"""The console's view of the cluster: what it just created is readable at once (its pages
read the view, which the watch may not have reached), and never shadows what the watch
delivered."""

from __future__ import annotations

from typing import Any

from stella.web.view import ConsoleView


def release(name: str, rv: str, phase: str = "") -> dict[str, Any]:
    status = {"environments": [{"name": "dev", "phase": phase}]} if phase else {}
    return {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Release",
        "metadata": {"namespace": "shop", "name": name, "resourceVersion": rv},
        "spec": {"environments": ["dev"]},
        "status": status,
    }


def approval(name: str, release: str, env: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": name, "resourceVersion": "7"},
        "spec": {"release": release, "environment": env, "decision": "Approve"},
    }


def test_a_release_just_created_is_readable_before_its_watch_event() -> None:
    view = ConsoleView()
    before = view.revision
    view.created("Release", release("shop-1-2-rb-1", "10"))
    assert view.releases[("shop", "shop-1-2-rb-1")]["metadata"]["resourceVersion"] == "10"
    assert view.revision > before  # pages cached by revision are drawn again


def test_what_the_watch_delivered_is_never_replaced_by_the_create_answer() -> None:
    view = ConsoleView()
    view.apply("Release", "MODIFIED", release("shop-1-2-rb-1", "12", phase="Deploying"))
    view.created("Release", release("shop-1-2-rb-1", "10"))
    held = view.releases[("shop", "shop-1-2-rb-1")]
    assert held["metadata"]["resourceVersion"] == "12"
    assert held["status"]["environments"][0]["phase"] == "Deploying"


def test_an_approval_just_created_is_listed_among_the_decisions_at_once() -> None:
    view = ConsoleView()
    view.created("Approval", approval("shop-1-2-dev-abc", "shop-1-2", "dev"))
    listed = view.approvals_for(("shop", "shop-1-2"), "dev")
    assert [a["metadata"]["name"] for a in listed] == ["shop-1-2-dev-abc"]
    # its watch event later replaces it in place: still one decision, not two
    view.apply("Approval", "ADDED", approval("shop-1-2-dev-abc", "shop-1-2", "dev"))
    assert len(view.approvals_for(("shop", "shop-1-2"), "dev")) == 1
