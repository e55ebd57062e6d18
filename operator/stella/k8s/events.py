"""Kubernetes Events about Stella objects: what a person sees in `kubectl describe`.

`kubectl describe` finds an object's Events by `involvedObject.uid` (with name, namespace
and kind), so an Event without the uid is invisible there. Callers sometimes hold only a
reference (an Approval refused at CREATE names its Release by name): `emit` then reads
the object's uid from the API server before posting.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stella import GROUP
from stella.k8s.client import api_client
from stella.models import ALL_KINDS

log = logging.getLogger("stella.events")
COMPONENT = "stella-operator"
MAX_MESSAGE = 1024
_PLURALS: dict[str, tuple[str, bool]] = {
    k.kind: (k.plural, k.scope == "Namespaced") for k in ALL_KINDS
}


def event_body(
    involved: Mapping[str, Any],
    reason: str,
    message: str,
    type_: str = "Normal",
    namespace: str | None = None,
    *,
    uid: str | None = None,
    now: datetime | None = None,
    host: str | None = None,
) -> client.CoreV1Event:
    """The Event to post about `involved` (pure). `uid` fills in a reference without one."""
    meta = involved.get("metadata") or {}
    ns = namespace or meta.get("namespace") or "default"
    at = now or datetime.now(UTC)
    reporter = host or socket.gethostname()
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name=f"{meta.get('name', 'stella')}.", namespace=ns),
        involved_object=client.V1ObjectReference(
            api_version=involved.get("apiVersion"),
            kind=involved.get("kind"),
            name=meta.get("name"),
            namespace=meta.get("namespace"),
            uid=meta.get("uid") or uid,
            resource_version=meta.get("resourceVersion"),
        ),
        reason=reason,
        message=message[:MAX_MESSAGE],
        type=type_,
        first_timestamp=at,
        last_timestamp=at,
        count=1,
        source=client.V1EventSource(component=COMPONENT, host=reporter),
        reporting_component=COMPONENT,
        reporting_instance=reporter,
    )


def lookup_uid(api: client.ApiClient, involved: Mapping[str, Any]) -> str | None:
    """The uid of a Stella object given by reference (apiVersion, kind, name, namespace);
    None when it is not a Stella kind, does not exist, or cannot be read."""
    meta = involved.get("metadata") or {}
    group, _, version = str(involved.get("apiVersion", "")).rpartition("/")
    found = _PLURALS.get(str(involved.get("kind", "")))
    name = meta.get("name")
    if group != GROUP or found is None or not name:
        return None
    plural, namespaced = found
    custom = client.CustomObjectsApi(api)
    try:
        if namespaced:
            if not meta.get("namespace"):
                return None
            obj = custom.get_namespaced_custom_object(
                group, version, meta["namespace"], plural, name
            )
        else:
            obj = custom.get_cluster_custom_object(group, version, plural, name)
    except Exception as exc:  # best effort: the Event is posted without the uid
        reason = exc.reason if isinstance(exc, ApiException) else type(exc).__name__
        log.debug("no uid for the Event on %s %s: %s", involved.get("kind"), name, reason)
        return None
    uid = (obj.get("metadata") or {}).get("uid") if isinstance(obj, Mapping) else None
    return str(uid) if uid else None


def emit(
    involved: Mapping[str, Any],
    reason: str,
    message: str,
    type_: str = "Normal",
    namespace: str | None = None,
    *,
    api: client.ApiClient | None = None,
) -> None:
    """Best effort: an Event lost to an API hiccup must never fail a promotion."""
    meta = involved.get("metadata") or {}
    api = api or api_client()
    uid = None if meta.get("uid") else lookup_uid(api, involved)
    event = event_body(involved, reason, message, type_, namespace, uid=uid)
    try:
        client.CoreV1Api(api).create_namespaced_event(str(event.metadata.namespace), event)
    except ApiException as exc:
        log.warning("could not post Event %s on %s: %s", reason, meta.get("name"), exc.reason)
