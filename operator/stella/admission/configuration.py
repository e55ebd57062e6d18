"""The webhook configurations that route admission requests to Stella, as pure builders.

Used by the Helm chart's renderer, the local control plane and the tests. Every webhook
fails closed (failurePolicy Fail); only Stella's own kinds go through them. Workloads in
Stella-managed namespaces are judged inside the API server instead
(ValidatingAdmissionPolicies, charts/stella/files/admission-policies.yaml), so an operator
outage never stops a Pod there that the policies admit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stella import GROUP, VERSION

MANAGED_LABEL = "stella.io/managed"
NAME = "stella.io"


@dataclass(frozen=True)
class Hook:
    id: str
    group: str
    version: str
    resources: tuple[str, ...]
    operations: tuple[str, ...]


MUTATING: tuple[Hook, ...] = (
    Hook("stamp-identity", GROUP, VERSION, ("releases", "approvals", "actions"), ("CREATE",)),
)
VALIDATING: tuple[Hook, ...] = (
    Hook("validate-release", GROUP, VERSION, ("releases",), ("CREATE", "UPDATE")),
    Hook("validate-approval", GROUP, VERSION, ("approvals",), ("CREATE", "UPDATE", "DELETE")),
    Hook("validate-action", GROUP, VERSION, ("actions",), ("CREATE", "UPDATE")),
    Hook("validate-environment", GROUP, VERSION, ("environments",), ("CREATE", "UPDATE")),
    Hook("validate-agent", GROUP, VERSION, ("agents",), ("CREATE", "UPDATE")),
)


def _client_config(
    hook: Hook, base_url: str | None, service: dict[str, Any] | None, ca_bundle: str
) -> dict[str, Any]:
    if base_url is not None:
        return {"url": f"{base_url.rstrip('/')}/{hook.id}", "caBundle": ca_bundle}
    assert service is not None
    return {"service": {**service, "path": f"/{hook.id}"}, "caBundle": ca_bundle}


def _webhook(
    hook: Hook, base_url: str | None, service: dict[str, Any] | None, ca_bundle: str, timeout: int
) -> dict[str, Any]:
    wh: dict[str, Any] = {
        "name": f"{hook.id}.{NAME}",
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Fail",
        "timeoutSeconds": timeout,
        "matchPolicy": "Equivalent",
        "clientConfig": _client_config(hook, base_url, service, ca_bundle),
        "rules": [
            {
                "apiGroups": [hook.group],
                "apiVersions": [hook.version],
                "resources": list(hook.resources),
                "operations": list(hook.operations),
                "scope": "*",
            }
        ],
    }
    return wh


def configurations(
    ca_bundle: str,
    *,
    base_url: str | None = None,
    service: dict[str, Any] | None = None,
    timeout: int = 5,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(MutatingWebhookConfiguration, ValidatingWebhookConfiguration).

    base_url: https://127.0.0.1:PORT for a local operator; or service: {name, namespace,
    port} in a cluster. ca_bundle: base64 PEM of the CA that signed the serving cert.
    """
    if (base_url is None) == (service is None):
        raise ValueError("give exactly one of base_url or service")
    meta = {"name": NAME, "labels": {"app.kubernetes.io/part-of": "stella"}}
    mutating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": meta,
        "webhooks": [
            {**_webhook(h, base_url, service, ca_bundle, timeout), "reinvocationPolicy": "Never"}
            for h in MUTATING
        ],
    }
    validating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": meta,
        "webhooks": [_webhook(h, base_url, service, ca_bundle, timeout) for h in VALIDATING],
    }
    return mutating, validating
