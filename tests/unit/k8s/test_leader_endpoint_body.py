"""The EndpointSlice the engine's replica publishes for the hub's Service (pure)."""

from __future__ import annotations

from stella.k8s.leader_endpoint import MANAGED_BY, slice_body


def test_one_ready_address_for_the_service() -> None:
    body = slice_body("stella-agent-hub", "stella-system", "10.1.0.7", 8443, "node-a")
    assert body["metadata"]["labels"] == {
        "kubernetes.io/service-name": "stella-agent-hub",
        "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
    }
    assert body["addressType"] == "IPv4"
    assert body["endpoints"] == [
        {"addresses": ["10.1.0.7"], "conditions": {"ready": True}, "nodeName": "node-a"}
    ]
    assert body["ports"] == [{"name": "hub", "port": 8443, "protocol": "TCP"}]


def test_ipv6_and_no_node() -> None:
    body = slice_body("hub", "ns", "fd00::7", 8443, None)
    assert body["addressType"] == "IPv6" and "nodeName" not in body["endpoints"][0]
