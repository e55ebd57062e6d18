"""Every health_test.yaml case of the shipped health.lua checks, against the object as the
real API server stores and returns it: created from the testdata (through the CRD's
schema and CEL rules), its status written through the status subresource, its generation
brought to the testdata's by real spec edits, read back, and judged by the Lua 5.1 script
as Argo CD would. A testdata object the schema refuses, or a field the API server drops
or defaults differently, fails here."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
from kubernetes import client
from tests.argocd_health import HealthCase, cases, health

G, V = "stella.io", "v1alpha1"
ALL = cases()


@pytest.fixture(scope="module")
def api(kube_admin: client.ApiClient) -> Iterator[client.CustomObjectsApi]:
    ns = f"argo-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(kube_admin).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=ns))
    )
    api = client.CustomObjectsApi(kube_admin)
    api.stella_test_namespace = ns  # type: ignore[attr-defined]
    try:
        yield api
    finally:
        client.CoreV1Api(kube_admin).delete_namespace(ns)


def _round_trip(api: client.CustomObjectsApi, case: HealthCase) -> dict[str, Any]:
    """Create, edit to the testdata's generation, write status, read back."""
    obj = case.obj()
    want_generation = obj["metadata"].get("generation", 1)
    body = copy.deepcopy(obj)
    status = body.pop("status", None)
    body["metadata"] = {"name": f"{obj['metadata']['name']}-{uuid.uuid4().hex[:6]}"}
    name = body["metadata"]["name"]
    if case.kind == "Release":
        ns = api.stella_test_namespace  # type: ignore[attr-defined]
        assert want_generation == 1, "a Release is immutable: its generation is always 1"
        api.create_namespaced_custom_object(G, V, ns, "releases", body)
        if status is not None:
            api.patch_namespaced_custom_object_status(
                G, V, ns, "releases", name, {"status": status}
            )
        return cast(dict[str, Any], api.get_namespaced_custom_object(G, V, ns, "releases", name))
    # An Environment: each spec edit is one generation; flip reportDrift so that after
    # want_generation - 1 edits the spec is the testdata's again.
    edits = want_generation - 1
    drift = bool(body["spec"].get("reportDrift", False))
    body["spec"]["reportDrift"] = drift ^ bool(edits % 2)
    api.create_cluster_custom_object(G, V, "environments", body)
    try:
        for _ in range(edits):
            cur = cast(dict[str, Any], api.get_cluster_custom_object(G, V, "environments", name))
            flip = not cur["spec"]["reportDrift"]
            api.patch_cluster_custom_object(
                G, V, "environments", name, {"spec": {"reportDrift": flip}}
            )
        if status is not None:
            api.patch_cluster_custom_object_status(G, V, "environments", name, {"status": status})
        got = cast(dict[str, Any], api.get_cluster_custom_object(G, V, "environments", name))
    finally:
        api.delete_cluster_custom_object(G, V, "environments", name)
    assert got["spec"]["reportDrift"] == drift
    return got


def _kept(written: Any, stored: Any) -> bool:
    """Every field written is stored with its value (the API server may add defaults)."""
    if isinstance(written, dict):
        return isinstance(stored, dict) and all(
            k in stored and _kept(v, stored[k]) for k, v in written.items()
        )
    if isinstance(written, list):
        return (
            isinstance(stored, list)
            and len(stored) == len(written)
            and all(_kept(w, s) for w, s in zip(written, stored, strict=True))
        )
    return bool(written == stored)


@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
def test_case_on_the_object_the_api_server_returns(
    api: client.CustomObjectsApi, case: HealthCase
) -> None:
    live = _round_trip(api, case)
    obj = case.obj()
    assert live["metadata"]["generation"] == obj["metadata"].get("generation", 1)
    if "status" in obj:
        assert _kept(obj["status"], live["status"]), "the API server changed the testdata's status"
    assert health(case.kind, live) == {"status": case.status, "message": case.message}
