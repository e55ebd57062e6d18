"""The operator as its own process against the real API server."""

from __future__ import annotations

import urllib.request
from typing import Any

from kubernetes import client
from tests.e2e.conftest import OperatorProcess
from tests.kube_support import eventually

DIGEST = "sha256:" + "cd" * 32


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


def test_new_release_gets_ready_false_pending(
    operator: OperatorProcess, kube_as: dict[str, client.ApiClient], test_namespace: str
) -> None:
    api = client.CustomObjectsApi(kube_as["alice"])
    api.create_namespaced_custom_object(
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
                "environments": ["dev"],
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

    def ready_condition() -> dict[str, Any] | None:
        rel = api.get_namespaced_custom_object(
            "stella.io", "v1alpha1", test_namespace, "releases", "first"
        )
        conds = (rel.get("status") or {}).get("conditions", [])
        return next((c for c in conds if c["type"] == "Ready"), None)

    cond = eventually(ready_condition, timeout=30, what="Ready condition on Release first")
    assert cond["status"] == "False"
    assert cond["reason"] == "Pending"
    assert cond["lastTransitionTime"].endswith("Z")
    # Stella's own finalizer and annotation prefix, not kopf's defaults.
    rel = api.get_namespaced_custom_object(
        "stella.io", "v1alpha1", test_namespace, "releases", "first"
    )
    assert "stella.io/finalizer" in rel["metadata"].get("finalizers", [])
    assert not any(k.startswith("kopf.zalando.org") for k in rel["metadata"].get("annotations", {}))


def test_health_and_metrics_are_served(operator: OperatorProcess) -> None:
    assert '"ok"' in _get(f"{operator.url}/healthz")
    metrics = _get(f"{operator.url}/metrics")
    assert "stella_promotions_total" in metrics
    assert "stella_admission_denied_total" in metrics
