"""The engine's replica publishes itself as the agent hub Service's one endpoint, on a
real API server: created, then replaced by the next leader (never two addresses), and the
rendered chart's Role lets the operator do exactly that and no more."""

from __future__ import annotations

import subprocess
from typing import Any

import yaml
from kubernetes import client
from tests.kube_support import eventually
from tests.unit.chart.test_chart import CA, CHART, DIGEST, HELM, LOG

from stella.k8s.leader_endpoint import publish


def _name(meta: client.V1ObjectMeta | None) -> str | None:
    assert meta is not None  # the API server always sets it
    return meta.name


def _slice(api: client.ApiClient, ns: str) -> Any:
    return client.DiscoveryV1Api(api).read_namespaced_endpoint_slice("stella-agent-hub", ns)


def test_the_leader_is_the_one_endpoint(kube_admin: client.ApiClient, test_namespace: str) -> None:
    client.CoreV1Api(kube_admin).create_namespaced_service(
        test_namespace,
        {  # type: ignore[arg-type]  # the client sends a dict body as it is
            "metadata": {"name": "stella-agent-hub"},
            "spec": {"ports": [{"name": "hub", "port": 8443, "targetPort": 8443}]},
        },
    )
    publish(kube_admin, "stella-agent-hub", test_namespace, "10.1.0.7", 8443, "node-a")
    first = _slice(kube_admin, test_namespace)
    assert [e.addresses for e in first.endpoints] == [["10.1.0.7"]]
    assert first.endpoints[0].node_name == "node-a"
    assert first.metadata.labels["kubernetes.io/service-name"] == "stella-agent-hub"
    # The next leader replaces it: one address, the new one.
    publish(kube_admin, "stella-agent-hub", test_namespace, "10.1.0.9", 8443, None)
    second = _slice(kube_admin, test_namespace)
    assert [e.addresses for e in second.endpoints] == [["10.1.0.9"]]
    assert second.ports[0].port == 8443
    # The EndpointSlice controller does not take it back (the Service has no selector).
    slices = client.DiscoveryV1Api(kube_admin).list_namespaced_endpoint_slice(
        test_namespace, label_selector="kubernetes.io/service-name=stella-agent-hub"
    )
    assert [_name(s.metadata) for s in slices.items] == ["stella-agent-hub"]


def test_the_charts_role_allows_that_slice_only(kube_admin: client.ApiClient) -> None:
    out = subprocess.run(
        [str(HELM), "template", "stella", str(CHART), "--namespace", "stella-system",
         "--set", f"image.digest={DIGEST}", "--set", LOG,
         "--set", "webhook.certManager.enabled=false", "--set", f"webhook.caBundle={CA}",
         "--set", "agentHub.enabled=true", "--set", "agentHub.certManager.enabled=false",
         "--set", "agentHub.tlsSecretName=hub-tls", "--set", "vault.addr=https://vault:8200"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    role = next(
        d
        for d in yaml.safe_load_all(out.stdout)
        if d and d["kind"] == "Role" and d["metadata"]["name"] == "stella-agent-hub"
    )
    rules = {(tuple(r["verbs"]), tuple(r.get("resourceNames") or ())) for r in role["rules"]}
    assert rules == {(("create",), ()), (("get", "update"), ("stella-agent-hub",))}
    # Bound to an account on the real API server: that slice, nothing else.
    role["metadata"]["namespace"] = "default"
    role["metadata"]["name"] = "stella-agent-hub-check"
    rbac = client.RbacAuthorizationV1Api(kube_admin)
    rbac.create_namespaced_role("default", role)
    rbac.create_namespaced_role_binding(
        "default",
        {  # type: ignore[arg-type]  # the client sends a dict body as it is
            "metadata": {"name": "stella-agent-hub-check"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "stella-agent-hub-check",
            },
            "subjects": [{"kind": "User", "name": "hub-check"}],
        },
    )
    try:
        # The API server's RBAC authorizer learns of a new Role and binding from its own
        # informers: the grant shows a moment later (a loaded CI machine saw it late).
        eventually(
            lambda: _may(kube_admin, "update", "stella-agent-hub"),
            what="the new Role's grant seen by the authorizer",
        )
        assert _may(kube_admin, "create", "")
        assert not _may(kube_admin, "update", "kubernetes")  # another Service's slice
        assert not _may(kube_admin, "delete", "stella-agent-hub")
    finally:
        rbac.delete_namespaced_role_binding("stella-agent-hub-check", "default")
        rbac.delete_namespaced_role("stella-agent-hub-check", "default")


def _may(api: client.ApiClient, verb: str, name: str) -> bool:
    review = client.AuthorizationV1Api(api).create_subject_access_review(
        {  # type: ignore[arg-type]  # the client sends a dict body as it is
            "spec": {
                "user": "hub-check",
                "resourceAttributes": {
                    "namespace": "default",
                    "verb": verb,
                    "group": "discovery.k8s.io",
                    "resource": "endpointslices",
                    "name": name,
                },
            }
        }
    )
    assert review.status is not None
    return bool(review.status.allowed)
