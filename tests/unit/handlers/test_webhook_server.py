"""The admission server's own parts without a cluster: which request goes to which rule,
the JSONPatch it answers with, and the AdmissionReview it returns."""

from __future__ import annotations

import base64
import json
from typing import Any

from stella.engine.view import ClusterView
from stella.handlers.admission import Admission
from stella.handlers.webhook import json_patch, respond, route
from stella.settings import Settings

DIGEST = "e" * 64


def _request(group: str, resource: str, kind: str, sub: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "uid": "u-1",
        "resource": {"group": group, "version": "v1alpha1", "resource": resource},
        "subResource": sub,
        "kind": {"group": group, "version": "v1alpha1", "kind": kind},
        **extra,
    }


def test_each_path_admits_only_what_it_was_registered_for() -> None:
    assert route("validate-release", _request("stella.io", "releases", "Release")) == (
        "Release",
        False,
    )
    assert route("admit-approval", _request("stella.io", "approvals", "Approval")) == (
        "Approval",
        True,
    )
    assert route("stamp-identity", _request("stella.io", "approvals", "Approval")) is None
    assert route("validate-release", _request("stella.io", "approvals", "Approval")) is None
    assert route("validate-release", _request("evil.io", "releases", "Release")) is None
    assert route("no-such-hook", _request("stella.io", "releases", "Release")) is None
    assert route("validate-release", _request("stella.io", "releases", "")) is None


def test_stamps_become_a_json_patch() -> None:
    merge = {"metadata": {"annotations": {"stella.io/requester": "alice", "a~b": "x"}}}
    assert json_patch({"metadata": {"name": "r"}}, merge) == [
        {
            "op": "add",
            "path": "/metadata/annotations",
            "value": {"stella.io/requester": "alice", "a~b": "x"},
        }
    ]
    assert json_patch({"metadata": {"annotations": {"team": "shop"}}}, merge) == [
        {"op": "add", "path": "/metadata/annotations/stella.io~1requester", "value": "alice"},
        {"op": "add", "path": "/metadata/annotations/a~0b", "value": "x"},
    ]
    assert json_patch({"metadata": {}}, {}) == []


def _release() -> dict[str, Any]:
    return {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Release",
        "metadata": {"name": "shop-1", "namespace": "shop"},
        "spec": {
            "version": "1.0.0",
            "components": [
                {
                    "name": "web",
                    "image": f"registry.example.com/shop/web@sha256:{DIGEST}",
                    "workload": {"name": "web", "container": "web"},
                }
            ],
            "environments": ["dev"],
        },
    }


def _review(path: str, request: dict[str, Any], view: ClusterView) -> dict[str, Any]:
    admission = Admission(Settings())
    out = respond(admission, view, path, {"request": request})
    assert out["apiVersion"] == "admission.k8s.io/v1"
    assert out["kind"] == "AdmissionReview"
    assert out["response"]["uid"] == "u-1"
    return dict(out["response"])


def test_a_release_create_is_stamped_with_the_requester() -> None:
    view = ClusterView()
    view.synced = True
    request = _request(
        "stella.io",
        "releases",
        "Release",
        operation="CREATE",
        userInfo={"username": "alice", "groups": ["release-requesters"]},
        object=_release(),
    )
    response = _review("stamp-identity", request, view)
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    assert ops[0]["path"] == "/metadata/annotations"
    stamped = json.loads(ops[0]["value"]["stella.io/requester"])
    assert stamped["username"] == "alice"
    assert stamped["groups"] == ["release-requesters"]


def test_a_request_on_a_foreign_path_is_refused_not_waved_through() -> None:
    response = _review(
        "validate-agent", _request("stella.io", "releases", "Release"), ClusterView()
    )
    assert response["allowed"] is False
    assert response["status"]["code"] == 400


def test_an_unsynced_view_refuses_what_needs_other_objects() -> None:
    approval = {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Approval",
        "metadata": {"name": "a", "namespace": "shop"},
        "spec": {"release": "shop-1", "environment": "dev", "decision": "approve"},
    }
    request = _request(
        "stella.io",
        "approvals",
        "Approval",
        operation="CREATE",
        userInfo={"username": "bob", "groups": ["release-approvers"]},
        object=approval,
        dryRun=True,
    )
    response = _review("validate-approval", request, ClusterView())
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert "retry" in response["status"]["message"]
