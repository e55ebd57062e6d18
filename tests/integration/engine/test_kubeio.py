"""The engine's status write against the real API server: the lean merge patch answers
what the generated client method did, and fails with the same ApiException."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.integration.foundation.test_control_plane import G, V, create_release, release_body
from tests.kube_support import api_client_for

from devenv.controlplane import ControlPlane
from stella.engine import kubeio


def _dict(value: object) -> dict[str, Any]:
    assert isinstance(value, dict)
    return value


def test_release_status_merge_patch(kube_admin: client.ApiClient, test_namespace: str) -> None:
    api = client.CustomObjectsApi(kube_admin)
    name = f"r-{uuid.uuid4().hex[:6]}"
    created = create_release(kube_admin, test_namespace, release_body(name))
    key = (test_namespace, name)
    progress = {"name": "dev", "phase": "WaitingForApproval", "reason": "ApprovalsMissing"}
    out = kubeio.patch_release_status(
        key, {"summary": "dev=WaitingForApproval", "environments": [progress]}, api=kube_admin
    )
    stored = _dict(api.get_namespaced_custom_object(G, V, test_namespace, "releases", name))
    # The answer is the object as stored, at its new version.
    assert out["status"] == stored["status"]
    assert out["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    assert int(out["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert out["spec"] == created["spec"]

    # A merge patch: what it leaves out stays.
    out = kubeio.patch_release_status(key, {"observedGeneration": 1}, api=kube_admin)
    assert out["status"]["summary"] == "dev=WaitingForApproval"
    assert out["status"]["observedGeneration"] == 1

    # Refused by the schema: the generated method's ApiException (422), nothing changed.
    with pytest.raises(ApiException) as refused:
        kubeio.patch_release_status(
            key, {"environments": [{"name": "dev", "phase": "Nope"}]}, api=kube_admin
        )
    assert refused.value.status == 422
    assert "phase" in str(refused.value.body)
    again = _dict(api.get_namespaced_custom_object(G, V, test_namespace, "releases", name))
    assert again["metadata"]["resourceVersion"] == out["metadata"]["resourceVersion"]

    # Gone: 404, as the engine's callers expect.
    with pytest.raises(ApiException) as gone:
        kubeio.patch_release_status(
            (test_namespace, "no-such-release"), {"summary": "x"}, api=kube_admin
        )
    assert gone.value.status == 404


def test_delete_release_only_this_very_release(
    kube_admin: client.ApiClient, test_namespace: str
) -> None:
    api = client.CustomObjectsApi(kube_admin)
    name = f"r-{uuid.uuid4().hex[:6]}"
    created = create_release(kube_admin, test_namespace, release_body(name))
    key = (test_namespace, name)
    # Another Release under the name (another uid): left alone (409 on the precondition).
    assert kubeio.delete_release(key, str(uuid.uuid4()), api=kube_admin) is False
    assert api.get_namespaced_custom_object(G, V, test_namespace, "releases", name)
    assert kubeio.delete_release(key, created["metadata"]["uid"], api=kube_admin) is True
    with pytest.raises(ApiException) as gone:
        api.get_namespaced_custom_object(G, V, test_namespace, "releases", name)
    assert gone.value.status == 404
    assert kubeio.delete_release(key, created["metadata"]["uid"], api=kube_admin) is False


def test_the_lean_write_reads_credentials_per_request_on_the_clients_one_connection(
    kube: ControlPlane, test_namespace: str
) -> None:
    """The write bypasses the generated layers (issue 12), not what they did: the
    configuration's credentials are read on every request (a rotated in-cluster token is
    picked up: the refresh hook runs), and the client's own connection pool is used (one
    kept-alive TLS connection, not one per write)."""
    api = api_client_for(str(kube.kubeconfig), "admin")  # its own pool, nothing else on it
    name = f"r-{uuid.uuid4().hex[:6]}"
    create_release(api, test_namespace, release_body(name))
    key = (test_namespace, name)
    # The token as a rotating source hands it out (the kubeconfig loader's own hook would
    # put itself back on every call).
    real = api.configuration.api_key["BearerToken"]
    token = [real]
    reads: list[str] = []

    def rotating(cfg: client.Configuration) -> None:
        reads.append(token[0])
        cfg.api_key["BearerToken"] = token[0]

    api.configuration.refresh_api_key_hook = rotating
    for i in range(3):
        out = kubeio.patch_release_status(key, {"summary": f"write {i}"}, api=api)
        assert out["status"]["summary"] == f"write {i}"
    assert len(reads) >= 3  # once per request at least
    token[0] = "Bearer not-a-token"  # the token file rotated to one the server refuses
    with pytest.raises(ApiException) as refused:
        kubeio.patch_release_status(key, {"summary": "refused"}, api=api)
    assert refused.value.status == 401
    token[0] = real
    assert kubeio.patch_release_status(key, {"summary": "again"}, api=api)["status"]
    pool = api.rest_client.pool_manager.connection_from_url(api.configuration.host)
    assert pool.num_connections == 1
