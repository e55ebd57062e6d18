"""A finished Release whose status already says what a reconcile would write is skipped;
anything that would change — a lock to give back, the current Release moved, a phase
not final, a newer generation, a deletion — sends it through the full reconcile."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stella.engine.promotion import environment_graph, release_path
from stella.engine.settled import settled
from stella.engine.view import ClusterView
from stella.policy import PathError, path_for

KEY = ("shop", "r1")
IMAGE = "registry.example.com/shop/web@sha256:" + "a" * 64


def _environment(name: str, requires: list[str], **status: str) -> dict[str, Any]:
    return {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": name},
        "spec": {"requires": requires},
        "status": status,
    }


def _release(summary: str, phases: tuple[str, str] = ("Deployed", "Deployed")) -> dict[str, Any]:
    ready = (
        ("True", "Deployed", "deployed to dev, prod")
        if phases == ("Deployed", "Deployed")
        else ("False", "Superseded", "dev: Superseded: a newer release")
    )
    return {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Release",
        "metadata": {"name": "r1", "namespace": "shop", "generation": 1},
        "spec": {
            "version": "1.0.0",
            "environments": ["dev", "prod"],
            "components": [
                {"name": "web", "image": IMAGE, "workload": {"name": "web", "container": "web"}}
            ],
        },
        "status": {
            "observedGeneration": 1,
            "summary": summary,
            "environments": [
                {"name": env, "phase": phase, "reason": phase, "message": msg}
                for env, phase, msg in zip(
                    ("dev", "prod"), phases, ("a newer release", ""), strict=True
                )
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": ready[0],
                    "reason": ready[1],
                    "message": ready[2],
                    "observedGeneration": 1,
                },
                {
                    "type": "Degraded",
                    "status": "False",
                    "reason": "NoFailures",
                    "message": "no environment failed, rejected, blocked or halted this release",
                    "observedGeneration": 1,
                },
            ],
        },
    }


def _view(**prod_status: str) -> ClusterView:
    view = ClusterView()
    view.apply("Environment", None, _environment("dev", []))
    view.apply("Environment", None, _environment("prod", ["dev"], **prod_status))
    return view


def test_a_finished_release_whose_status_holds_is_skipped() -> None:
    assert settled(_view(currentRelease="shop/r1"), KEY, _release("dev=Deployed prod=Live"))
    assert settled(_view(currentRelease="shop/r9"), KEY, _release("dev=Deployed prod=Deployed"))
    superseded = _release("dev=Superseded prod=Deployed", ("Superseded", "Deployed"))
    assert settled(_view(), KEY, superseded)


def test_the_current_release_moved_while_down_is_reconciled() -> None:
    # The status says Live in prod, but prod's current Release is another one now.
    assert not settled(_view(currentRelease="shop/r9"), KEY, _release("dev=Deployed prod=Live"))
    assert not settled(_view(currentRelease="shop/r1"), KEY, _release("dev=Deployed prod=Deployed"))


def test_an_approval_without_a_verdict_is_reconciled_to_give_it_one() -> None:
    # Made after prod was decided: the full reconcile answers it (AlreadyDecided).
    view = _view(currentRelease="shop/r1")
    approval: dict[str, Any] = {
        "metadata": {"name": "late", "namespace": "shop"},
        "spec": {"release": "r1", "environment": "prod", "decision": "Approve"},
    }
    view.apply("Approval", None, approval)
    assert not settled(view, KEY, _release("dev=Deployed prod=Live"))
    judged = {**approval, "status": {"counted": False, "conditions": [{"type": "Counted"}]}}
    view.apply("Approval", "MODIFIED", judged)
    assert settled(view, KEY, _release("dev=Deployed prod=Live"))


def test_a_lock_still_held_is_reconciled_to_give_it_back() -> None:
    view = _view(currentRelease="shop/r1", inFlight="shop/r1")
    assert not settled(view, KEY, _release("dev=Deployed prod=Live"))


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b["status"]["environments"][1].update(phase="Deploying"),
        lambda b: b["status"]["environments"].pop(),
        lambda b: b["status"]["environments"][0].update(name="qa"),
        lambda b: b["metadata"].update(generation=2),
        lambda b: b["metadata"].update(deletionTimestamp="2026-11-30T12:00:00Z"),
        lambda b: b["metadata"].update(finalizers=["stella.io/finalizer"]),
        lambda b: b["status"].update(conditions=[]),
        lambda b: b["status"]["conditions"][0].update(message="deployed to prod, dev"),
        lambda b: b["status"]["conditions"][1].update(observedGeneration=0),
        lambda b: b["spec"].update(components=[]),
        lambda b: b.pop("status"),
    ],
    ids=[
        "not-final",
        "an-environment-missing",
        "another-environment",
        "newer-generation",
        "being-deleted",
        "legacy-finalizer",
        "never-evaluated",
        "ready-would-change",
        "degraded-would-change",
        "invalid-spec",
        "no-status",
    ],
)
def test_anything_a_reconcile_would_change_is_not_skipped(change: Any) -> None:
    body = copy.deepcopy(_release("dev=Deployed prod=Live"))
    change(body)
    assert not settled(_view(currentRelease="shop/r1"), KEY, body)


def test_the_path_is_the_graphs_order_not_the_specs() -> None:
    # prod requires dev: the summary the reconcile writes lists dev first, whatever the
    # spec's order; a summary in another order would be rewritten.
    body = _release("dev=Deployed prod=Live")
    body["spec"]["environments"] = ["prod", "dev"]
    body["status"]["environments"].reverse()
    assert settled(_view(currentRelease="shop/r1"), KEY, body)
    body["status"]["summary"] = "prod=Live dev=Deployed"
    assert not settled(_view(currentRelease="shop/r1"), KEY, body)


def test_the_remembered_path_follows_the_graph_and_raises_afresh() -> None:
    """release_path (settled's and the reconcile's) answers as path_for over the view's
    graph does, after the graph changed too, and a path error is a new exception each
    time (a remembered one would carry every earlier traceback)."""
    view = _view()
    assert release_path(view, ["prod", "dev"]) == ["dev", "prod"]
    view.apply("Environment", None, _environment("dev", ["prod"]))
    view.apply("Environment", None, _environment("prod", []))
    assert release_path(view, ["dev", "prod"]) == ["prod", "dev"]
    assert release_path(view, ["dev", "prod"]) == path_for(["dev", "prod"], environment_graph(view))
    errors = []
    for _ in range(2):
        with pytest.raises(PathError) as caught:
            release_path(view, ["dev", "qa"])
        errors.append(caught.value)
    assert errors[0] is not errors[1] and str(errors[0]) == str(errors[1])
