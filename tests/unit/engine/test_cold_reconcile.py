"""A Release's first evaluation, through the engine's reconcile with only the API calls
replaced (no cluster): one status write with every Environment's phase and the summary
conditions, Events only for what asks something of a person, and nothing written again
when the answer is reconciled."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, cast

import pytest

from stella.engine import kubeio
from stella.engine.controller import Controller
from stella.models import ReleaseStatus

IMAGE = "registry.example.com/shop/web@sha256:" + "b" * 64
REQUESTER = '{"groups":["release-requesters"],"uid":"u-alice","username":"alice"}'


def _environment(name: str, requires: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "5"},
        "spec": {
            "requires": requires,
            "targets": [{"namespace": "shop-target"}],
            "approvals": {"required": 1, "approverGroups": ["release-approvers"]},
        },
    }


def _release(name: str) -> dict[str, Any]:
    """A Release as the API server lists it before any status was written."""
    component = {"name": "web", "image": IMAGE, "workload": {"name": "web", "container": "web"}}
    spec = {"version": "1.0.0", "environments": ["dev", "staging", "prod"]}
    meta: dict[str, Any] = {"name": name, "namespace": "shop", "uid": f"uid-{name}"}
    meta |= {"resourceVersion": "10", "generation": 1}
    meta |= {"creationTimestamp": "2026-11-30T12:00:00Z"}
    meta["annotations"] = {"stella.io/requester": REQUESTER}
    return {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Release",
        "metadata": meta,
        "spec": {**spec, "components": [component]},
    }


def test_a_cold_release_is_written_once_and_its_answer_not_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = SimpleNamespace(recorder=SimpleNamespace(signer=None), registry=None, vault=None)
    ctl = Controller(cast(Any, services))
    for name, requires in (("dev", []), ("staging", ["dev"]), ("prod", ["staging"])):
        ctl.view.apply("Environment", None, _environment(name, requires))
    ctl.view.apply("Namespace", None, {"metadata": {"name": "shop", "resourceVersion": "1"}})
    ctl.view.apply("Release", None, _release("r1"))
    ctl.view.synced = True
    writes: list[Mapping[str, Any]] = []
    events: list[tuple[str, str]] = []

    def patch(key: tuple[str, str], status: Mapping[str, Any]) -> dict[str, Any]:
        writes.append(status)
        body = dict(ctl.view.release(key) or {})
        version = str(int(body["metadata"]["resourceVersion"]) + 1)
        return {
            **body,
            "metadata": {**body["metadata"], "resourceVersion": version},
            "status": dict(status),
        }

    async def emit(body: Any, reason: str, message: str, type_: str = "Normal", **_: Any) -> None:
        events.append((reason, message))

    monkeypatch.setattr(kubeio, "patch_release_status", patch)
    monkeypatch.setattr(kubeio, "emit", emit)

    asyncio.run(ctl._handle(("shop", "r1")))
    assert len(writes) == 1
    status = ReleaseStatus.model_validate(writes[0])  # the model's shape, whole
    assert status.wire() == writes[0]
    assert [(p.name, p.phase) for p in status.environments] == [
        ("dev", "WaitingForApproval"),
        ("staging", "WaitingForPrerequisites"),
        ("prod", "WaitingForPrerequisites"),
    ]
    assert status.summary.startswith("dev=WaitingForApproval staging=WaitingForPrerequisites")
    ready = {c.type: c for c in status.conditions}["Ready"]
    assert ready.status == "False" and ready.observed_generation == 1
    assert status.observed_generation == 1
    assert status.requester == "alice"  # kubectl get rel's REQUESTER, from admission's stamp
    # Only what asks something of a person is announced on a first evaluation.
    assert [reason for reason, _ in events] == ["WaitingForApproval"]

    # The answer is in the view (read-your-writes): reconciling it changes nothing.
    asyncio.run(ctl._handle(("shop", "r1")))
    assert len(writes) == 1
    assert len(events) == 1

    # A Release evaluated before status.requester existed, with nothing else to change:
    # not written for the column alone (it rides only on writes made anyway).
    body = dict(ctl.view.release(("shop", "r1")) or {})
    version = str(int(body["metadata"]["resourceVersion"]) + 1)
    older = {k: v for k, v in body["status"].items() if k != "requester"}
    meta = {**body["metadata"], "resourceVersion": version}
    ctl.view.apply("Release", "MODIFIED", {**body, "metadata": meta, "status": older})
    asyncio.run(ctl._handle(("shop", "r1")))
    assert len(writes) == 1
