"""Kubernetes Events about Stella objects: what a person sees in `kubectl describe`."""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stella.k8s.client import api_client

log = logging.getLogger("stella.events")
COMPONENT = "stella-operator"


def emit(
    involved: Mapping[str, Any],
    reason: str,
    message: str,
    type_: str = "Normal",
    namespace: str | None = None,
) -> None:
    """Best effort: an Event lost to an API hiccup must never fail a promotion."""
    meta = involved.get("metadata", {})
    ns = namespace or meta.get("namespace") or "default"
    now = datetime.now(UTC)
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name=f"{meta.get('name', 'stella')}."),
        involved_object=client.V1ObjectReference(
            api_version=involved.get("apiVersion"),
            kind=involved.get("kind"),
            name=meta.get("name"),
            namespace=meta.get("namespace"),
            uid=meta.get("uid"),
            resource_version=meta.get("resourceVersion"),
        ),
        reason=reason,
        message=message[:1024],
        type=type_,
        first_timestamp=now,
        last_timestamp=now,
        count=1,
        source=client.V1EventSource(component=COMPONENT, host=socket.gethostname()),
        reporting_component=COMPONENT,
        reporting_instance=socket.gethostname(),
    )
    try:
        client.CoreV1Api(api_client()).create_namespaced_event(ns, event)
    except ApiException as exc:
        log.warning("could not post Event %s on %s: %s", reason, meta.get("name"), exc.reason)
