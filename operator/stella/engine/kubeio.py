"""The engine's writes and fresh reads against the API server (sync client; the engine
runs these in threads). Every write that must not race carries a resourceVersion."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import quote

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stella import GROUP, VERSION
from stella.engine.view import ReleaseKey
from stella.k8s import events
from stella.k8s.client import REQUEST_TIMEOUT, api_client

_JSON = "application/json"

# The AppsV1Api method that reads, and the one that patches, each workload kind.
READ_WORKLOAD = {
    "Deployment": "read_namespaced_deployment",
    "StatefulSet": "read_namespaced_stateful_set",
    "DaemonSet": "read_namespaced_daemon_set",
}
PATCH_WORKLOAD = {
    "Deployment": "patch_namespaced_deployment",
    "StatefulSet": "patch_namespaced_stateful_set",
    "DaemonSet": "patch_namespaced_daemon_set",
}


async def emit(
    involved: Mapping[str, Any],
    reason: str,
    message: str,
    type_: str = "Normal",
    namespace: str | None = None,
) -> None:
    """Post an Event, best effort, without blocking the event loop (admission shares it)
    and without piling up work: a slim reference goes to events.POSTER's bounded queue,
    and one thread posts them (see EventPoster for the memory this bounds)."""
    events.POSTER.post(involved, reason, message, type_, namespace)


class Conflict(Exception):
    """Someone else wrote the object since we read it; read again and decide again."""


def _api() -> client.ApiClient:
    """The operator's one API client (stella.k8s.client.api_client is cached): its
    connection pool, and so its TLS sessions, are reused by every read and write."""
    return api_client()


def _custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(_api())


def patch_release_status(
    key: ReleaseKey, status: Mapping[str, Any], api: client.ApiClient | None = None
) -> dict[str, Any]:
    """A JSON merge patch of a Release's status; the Release as the API server answers."""
    ns, name = key
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{quote(ns, safe='')}/releases/"
    return merge_patch(f"{path}{quote(name, safe='')}/status", {"status": dict(status)}, api)


def merge_patch(
    path: str, body: Mapping[str, Any], api: client.ApiClient | None = None
) -> dict[str, Any]:
    """PATCH (application/merge-patch+json) `path` with `body` through the operator's API
    client — its serializer, credentials, deadlines and connection pool — and return the
    answer's JSON. Not through CustomObjectsApi's generated method, which validates its
    arguments with pydantic and deserializes the answer into an ApiResponse model on
    every call: a cold resync makes one such write per Release (issue 12). A status
    outside 2xx raises the ApiException the generated method would have raised."""
    raw = _lean("PATCH", path, body, "application/merge-patch+json", api)
    return cast(dict[str, Any], json.loads(raw))


def _lean(
    method: str,
    path: str,
    body: Mapping[str, Any],
    content_type: str,
    api: client.ApiClient | None = None,
) -> bytes:
    """One request through the operator's API client — its configuration, credentials
    and connection pool — without the generated layers around it; the answer's bytes, or
    the ApiException the generated method would have raised for a status outside 2xx.

    A cold resync makes one such write per Release (issue 12), and the layers cost more
    CPU than the request: param_serialize walks the body to sanitize it and the headers to
    tuple them, RESTClientObject matches the content type against four regular expressions
    and builds a Timeout, and PoolManager parses the URL and builds a pool key every call.
    Here the body (plain JSON data) is serialized once, the Timeout is built once, and the
    request goes to the API server's own connection pool. The credentials are read per
    request as the generated methods do (update_params_for_auth runs the configuration's
    refresh hook: a rotated in-cluster token is picked up)."""
    api = api or _api()
    headers = dict(api.default_headers)
    headers["Content-Type"] = content_type
    headers["Accept"] = _JSON
    api.update_params_for_auth(headers, [], ["BearerToken"], path, method, None)
    data = json.dumps(body, separators=(",", ":"), default=api.sanitize_for_serialization)
    try:
        answer = _pool(api).urlopen(
            method,
            path,
            body=data.encode(),
            headers=headers,
            timeout=_TIMEOUT,
            preload_content=True,
            redirect=False,
        )
    except urllib3.exceptions.SSLError as exc:  # as RESTClientObject raises it
        raise ApiException(status=0, reason=f"{type(exc).__name__}\n{exc}") from exc
    raw: bytes = answer.data
    if not 200 <= answer.status <= 299:
        text = raw.decode("utf-8", "replace") if raw else None
        raise ApiException.from_response(http_resp=answer, body=text, data=None)
    return raw


# Every lean request's deadline (stella.k8s.client.REQUEST_TIMEOUT), built once.
_TIMEOUT = urllib3.Timeout(connect=REQUEST_TIMEOUT[0], read=REQUEST_TIMEOUT[1])


def _pool(api: client.ApiClient) -> urllib3.connectionpool.HTTPConnectionPool:
    """The API server's connection pool in the client's PoolManager (the one every call of
    the client shares: the same sockets and TLS sessions), found by the pool key the
    manager made for it — not by the URL, which the manager would parse again."""
    host = api.configuration.host
    cached = _POOLS.get(host)
    manager = api.rest_client.pool_manager
    if cached is not None and cached[0] is manager and cached[1].pool is not None:
        return cached[1]
    pool = manager.connection_from_url(host)
    _POOLS[host] = (manager, pool)
    return pool


# host -> (the PoolManager, its pool for that host); a pool the manager closed (its
# `pool` is None then) is looked up again.
_POOLS: dict[str, tuple[urllib3.PoolManager, urllib3.connectionpool.HTTPConnectionPool]] = {}


def patch_approval_status(ns: str, name: str, status: Mapping[str, Any]) -> Any:
    """The Approval as written (None when it is gone)."""
    try:
        return _custom().patch_namespaced_custom_object_status(
            GROUP, VERSION, ns, "approvals", name, {"status": dict(status)}
        )
    except ApiException as exc:
        if exc.status != 404:
            raise
        return None


def drop_release_finalizer(key: ReleaseKey, body: Mapping[str, Any], finalizer: str) -> None:
    """Take `finalizer` off a Release, guarded by the body's resourceVersion (a merge patch
    replaces the whole list: a concurrent change gets a Conflict, and the Release's next
    event tries again). Gone or changed meanwhile: nothing to do now."""
    meta = body.get("metadata") or {}
    keep = [f for f in meta.get("finalizers") or [] if f != finalizer]
    patch = {"metadata": {"finalizers": keep, "resourceVersion": meta.get("resourceVersion")}}
    try:
        _custom().patch_namespaced_custom_object(GROUP, VERSION, key[0], "releases", key[1], patch)
    except ApiException as exc:
        if exc.status not in (404, 409):
            raise


def get_environment(name: str) -> dict[str, Any] | None:
    try:
        out = _custom().get_cluster_custom_object(GROUP, VERSION, "environments", name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return cast(dict[str, Any], out)


def get_release(namespace: str, name: str) -> dict[str, Any] | None:
    try:
        out = _custom().get_namespaced_custom_object(GROUP, VERSION, namespace, "releases", name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return cast(dict[str, Any], out)


def delete_release(key: ReleaseKey, uid: str, api: client.ApiClient | None = None) -> bool:
    """Delete this very Release (its UID a precondition: one re-created under the name is
    left alone). False when it is already gone or is another one now. The answer (the
    deleted object) is not parsed: retention deletes as fast as Releases finish (T10)."""
    ns, name = key
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{quote(ns)}/releases/{quote(name)}"
    options = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
    try:
        _lean("DELETE", path, options, _JSON, api)
    except ApiException as exc:
        if exc.status in (404, 409):
            return False
        raise
    return True


def get_namespace(name: str) -> dict[str, Any] | None:
    try:
        obj = client.CoreV1Api(_api()).read_namespace(name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return cast(dict[str, Any], _api().sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]


def replace_environment_status(body: Mapping[str, Any]) -> dict[str, Any]:
    """Write status with the body's resourceVersion: a concurrent writer gets Conflict."""
    try:
        out = _custom().replace_cluster_custom_object_status(
            GROUP, VERSION, "environments", body["metadata"]["name"], dict(body)
        )
    except ApiException as exc:
        if exc.status == 409:
            raise Conflict(body["metadata"]["name"]) from exc
        raise
    return cast(dict[str, Any], out)


def patch_environment_status(name: str, status: Mapping[str, Any]) -> None:
    _custom().patch_cluster_custom_object_status(
        GROUP, VERSION, "environments", name, {"status": dict(status)}
    )


def get_workload(namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    api = client.AppsV1Api(_api())
    try:
        obj = getattr(api, READ_WORKLOAD[kind])(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    out = _api().sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
    return cast(dict[str, Any], out)


def patch_workload(namespace: str, kind: str, name: str, patch: Mapping[str, Any]) -> None:
    api = client.AppsV1Api(_api())
    # Strategic merge: containers merge by name, so untouched containers keep their images.
    getattr(api, PATCH_WORKLOAD[kind])(
        name, namespace, dict(patch), _content_type="application/strategic-merge-patch+json"
    )


def list_releases() -> list[dict[str, Any]]:
    out = _custom().list_cluster_custom_object(GROUP, VERSION, "releases")
    return list(cast(dict[str, Any], out).get("items", []))


def patch_action_status(name: str, status: Mapping[str, Any]) -> dict[str, Any] | None:
    try:
        out = _custom().patch_cluster_custom_object_status(
            GROUP, VERSION, "actions", name, {"status": dict(status)}
        )
    except ApiException as exc:
        if exc.status != 404:
            raise
        return None
    return cast(dict[str, Any], out)


def get_configmap(namespace: str, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
    """A ConfigMap's (labels, data), None when it does not exist: the supply-chain trust
    material a platform team keeps in the operator's namespace."""
    try:
        obj = client.CoreV1Api(_api()).read_namespaced_config_map(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    labels = obj.metadata.labels if obj.metadata else None
    return dict(labels or {}), dict(obj.data or {})


# Argo CD Applications as targets (issue 14): read, and set the image override.
def get_application(namespace: str, name: str) -> dict[str, Any] | None:
    try:
        out = _custom().get_namespaced_custom_object(
            "argoproj.io", "v1alpha1", namespace, "applications", name
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return cast(dict[str, Any], out)


def patch_application_source(namespace: str, name: str, source: Mapping[str, Any]) -> None:
    """A merge patch of an Application's spec.source: the override Stella sets, either
    {"kustomize": {"images": [...]}} or {"helm": {"parameters": [...]}}, each list whole
    (a merge patch replaces lists)."""
    _custom().patch_namespaced_custom_object(
        "argoproj.io",
        "v1alpha1",
        namespace,
        "applications",
        name,
        {"spec": {"source": dict(source)}},
    )
