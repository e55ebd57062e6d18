"""agentHub in the operator's chart: off by default; on, the operator serves the hub with
its certificate and the agents' CA in Vault, behind a selector-less Service whose one
endpoint the engine's replica publishes (a Role for that one EndpointSlice), and the
NetworkPolicy lets agents in on the hub's port only."""

from __future__ import annotations

from typing import Any

import yaml
from tests.unit.chart.test_chart import CA, DIGEST, LOG, by_kind, render

BASE = (
    f"image.digest={DIGEST}",
    LOG,
    f"webhook.caBundle={CA}",
    "webhook.certManager.enabled=false",
    "networkPolicy.enabled=true",
)
HUB = (*BASE, "agentHub.enabled=true", "vault.addr=https://vault:8200")


def docs(*sets: str) -> list[dict[str, Any]]:
    out = render(*sets)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def container(ds: list[dict[str, Any]]) -> dict[str, Any]:
    dep = by_kind(ds, "Deployment", "stella-operator")
    return dict(dep["spec"]["template"]["spec"]["containers"][0])


def test_off_by_default() -> None:
    ds = docs(*BASE)
    assert not [d for d in ds if d["metadata"]["name"] == "stella-agent-hub"]
    assert not [e for e in container(ds)["env"] if e["name"].startswith("STELLA_AGENT")]


def test_on_the_operator_serves_the_hub_behind_a_published_endpoint() -> None:
    ds = docs(*HUB, "agentHub.tlsSecretName=hub-tls", "agentHub.certManager.enabled=false")
    c = container(ds)
    env = {e["name"]: e for e in c["env"]}
    assert env["STELLA_AGENT_HUB_PORT"]["value"] == "8443"
    assert env["STELLA_AGENT_HUB_HOST"]["value"] == "0.0.0.0"
    assert env["STELLA_AGENT_HUB_SERVICE"]["value"] == "stella-agent-hub"
    assert env["STELLA_POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert {"name": "hub", "containerPort": 8443} in c["ports"]
    volumes = by_kind(ds, "Deployment", "stella-operator")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "hub-tls", "secret": {"secretName": "hub-tls"}} in volumes
    service = by_kind(ds, "Service", "stella-agent-hub")
    assert "selector" not in service["spec"]  # the engine's replica writes the endpoint
    role = by_kind(ds, "Role", "stella-agent-hub")
    assert all(r["resources"] == ["endpointslices"] for r in role["rules"])
    policy = by_kind(ds, "NetworkPolicy", "stella-operator")
    assert {"ports": [{"port": 8443, "protocol": "TCP"}]} in policy["spec"]["ingress"]


def test_cert_manager_names_what_agents_dial() -> None:
    ds = docs(
        *HUB[:3],
        "agentHub.enabled=true",
        "vault.addr=https://vault:8200",
        "agentHub.certManager.dnsNames={hub.example.com}",
        "agentHub.service.type=LoadBalancer",
    )
    cert = by_kind(ds, "Certificate", "stella-agent-hub")
    assert cert["spec"]["dnsNames"] == ["stella-agent-hub.stella-system.svc", "hub.example.com"]
    assert by_kind(ds, "Service", "stella-agent-hub")["spec"]["externalTrafficPolicy"] == "Local"


def test_what_the_hub_cannot_run_without_is_refused() -> None:
    no_vault = render(*BASE, "agentHub.enabled=true", "agentHub.tlsSecretName=x")
    assert no_vault.returncode != 0
    assert "issuerRef is required" in no_vault.stderr or "vault.addr" in no_vault.stderr
    no_vault = render(
        *BASE,
        "agentHub.enabled=true",
        "agentHub.tlsSecretName=x",
        "agentHub.certManager.enabled=false",
    )
    assert no_vault.returncode != 0 and "agentHub needs vault.addr" in no_vault.stderr
    no_cert = render(*HUB, "agentHub.certManager.enabled=false")
    assert no_cert.returncode != 0 and "needs a serving certificate" in no_cert.stderr
