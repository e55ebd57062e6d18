"""The replica that holds the engine's Lease publishes itself as the one endpoint of a
selector-less Service (the agent hub's), so that Service reaches the leader and never a
standby. kube-proxy routes by EndpointSlices; with no selector the EndpointSlice controller
leaves the slice to us (the way Patroni points a Service at its primary).

The slice is named after the Service: a new leader replaces the old leader's address in
one write (resourceVersion-guarded); RBAC limits get/update to that one name.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from kubernetes import client

from stella.k8s.upsert import upsert

MANAGED_BY = "operator.stella.io"  # a label value: no slash


def slice_body(
    service: str, namespace: str, ip: str, port: int, node: str | None
) -> dict[str, Any]:
    """The EndpointSlice pointing SERVICE at one address (pure)."""
    family = "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    endpoint: dict[str, Any] = {"addresses": [ip], "conditions": {"ready": True}}
    if node:  # externalTrafficPolicy: Local keeps only endpoints on the receiving node
        endpoint["nodeName"] = node
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": service,
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
        "addressType": family,
        "endpoints": [endpoint],
        "ports": [{"name": "hub", "port": port, "protocol": "TCP"}],
    }


def publish(
    api: client.ApiClient, service: str, namespace: str, ip: str, port: int, node: str | None
) -> None:
    """Make SERVICE's one endpoint this replica (create, or replace the previous leader's)."""
    discovery = client.DiscoveryV1Api(api)
    upsert(
        lambda: discovery.read_namespaced_endpoint_slice(service, namespace),
        lambda b: discovery.create_namespaced_endpoint_slice(namespace, b),  # type: ignore[arg-type]
        lambda b: discovery.replace_namespaced_endpoint_slice(service, namespace, b),  # type: ignore[arg-type]
        slice_body(service, namespace, ip, port, node),
        f"EndpointSlice {namespace}/{service}",
    )
