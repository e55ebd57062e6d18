"""The operator as its own process against the real API server."""

from __future__ import annotations

import urllib.request
from typing import Any

from kubernetes import client, watch
from tests.e2e.conftest import OperatorProcess
from tests.kube_support import custom_objects, wait_for_release_params

DIGEST = "sha256:" + "cd" * 32


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


def test_new_release_gets_its_evaluation_in_one_write(
    operator: OperatorProcess,
    kube_admin: client.ApiClient,
    kube_as: dict[str, client.ApiClient],
    test_namespace: str,
) -> None:
    env_name = f"{test_namespace}-dev"
    admin = client.CustomObjectsApi(kube_admin)
    admin.create_cluster_custom_object(
        "stella.io",
        "v1alpha1",
        "environments",
        {
            "apiVersion": "stella.io/v1alpha1",
            "kind": "Environment",
            "metadata": {"name": env_name},
            "spec": {
                "targets": [{"namespace": test_namespace}],
                "approvals": {"required": 1, "approverGroups": ["release-approvers"]},
            },
        },
    )
    wait_for_release_params(kube_admin, env_name)  # the API server judges Releases by it
    api = custom_objects(kube_as["alice"])
    try:
        made = api.create_namespaced_custom_object(
            "stella.io",
            "v1alpha1",
            test_namespace,
            "releases",
            {
                "apiVersion": "stella.io/v1alpha1",
                "kind": "Release",
                "metadata": {"name": "first"},
                "spec": {
                    "version": "0.1.0",
                    "environments": [env_name],
                    "components": [
                        {
                            "name": "web",
                            "image": f"127.0.0.1:5000/web@{DIGEST}",
                            "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                        }
                    ],
                },
            },
        )
        # Follow every version of the object from its creation: the first status the
        # operator writes is already the evaluation (issue 12: one status write per
        # reconcile; a "Pending, being evaluated" write before it cost a write per Release
        # on every cold start), and nothing ever puts a finalizer on the Release.
        w = watch.Watch()  # type: ignore[no-untyped-call]
        first: dict[str, Any] | None = None
        finalizers: list[Any] = []
        for event in w.stream(  # type: ignore[no-untyped-call]
            api.list_namespaced_custom_object,
            "stella.io",
            "v1alpha1",
            test_namespace,
            "releases",
            field_selector="metadata.name=first",
            resource_version=made["metadata"]["resourceVersion"],
            timeout_seconds=30,
        ):
            finalizers += event["object"]["metadata"].get("finalizers") or []
            conds = ((event["object"].get("status") or {}).get("conditions")) or []
            if conds:
                first = conds[0]
                w.stop()  # type: ignore[no-untyped-call]
        assert first is not None, "the operator wrote no status within 30 s"
        assert (first["type"], first["status"], first["reason"]) == (
            "Ready",
            "False",
            "ApprovalsMissing",
        )
        assert first["lastTransitionTime"].endswith("Z")
        assert not finalizers
        # No finalizer and no kopf bookkeeping on the object, even later (a deleted
        # Release's lock is freed from its DELETED event, or at the engine's start).
        rel = api.get_namespaced_custom_object(
            "stella.io", "v1alpha1", test_namespace, "releases", "first"
        )
        assert not rel["metadata"].get("finalizers")
        annotations = rel["metadata"].get("annotations", {})
        assert not any(k.startswith("kopf.zalando.org") for k in annotations)
        assert not any(k.startswith("stella.io/last-handled") for k in annotations)
        # The requester was stamped by admission from the API server's userInfo.
        assert '"username":"alice"' in annotations["stella.io/requester"]
    finally:
        admin.delete_cluster_custom_object("stella.io", "v1alpha1", "environments", env_name)


def test_health_and_metrics_are_served(operator: OperatorProcess) -> None:
    assert '"ok"' in _get(f"{operator.url}/healthz")
    metrics = _get(f"{operator.url}/metrics")
    assert "stella_promotions_total" in metrics
    assert "stella_admission_denied_total" in metrics
