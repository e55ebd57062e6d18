"""Capability checks of the host functions: what a plugin asked for against what its signed
manifest declares. Pure: no I/O. A request outside the declaration is a CapabilityViolation,
which stops the run and quarantines the plugin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from stella.plugins.manifest import Capabilities, KubernetesRead, NetworkGrant

CapabilityKind = Literal["network", "secret", "kubernetes", "import"]
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Violation:
    """An attempt to use a capability the manifest does not declare."""

    kind: CapabilityKind
    target: str  # what was asked for: a host:port, a Vault reference, a Kubernetes path

    def describe(self) -> str:
        what = {
            "network": "network egress to",
            "secret": "a read of the undeclared secret reference",
            "kubernetes": "a Kubernetes read of",
            "import": "the host function",
        }[self.kind]
        return f"{what} {self.target}"


class CapabilityViolation(Exception):
    """Raised inside a host function: the run stops with this as its outcome."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(violation.describe())
        self.violation = violation


@dataclass(frozen=True)
class HttpTarget:
    grant: NetworkGrant
    path: str  # path and query, as sent


def check_url(caps: Capabilities, url: str) -> HttpTarget:
    """The declared grant a URL is under, or CapabilityViolation. Exact scheme, host and
    port; no userinfo (it would hide the real host from a reader of the URL)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise CapabilityViolation(Violation("network", _clip(url))) from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        raise CapabilityViolation(Violation("network", _clip(url)))
    port = port or _DEFAULT_PORTS[scheme]
    for grant in caps.network:
        if grant.key() == (scheme, host.strip("[]"), port) or grant.key() == (scheme, host, port):
            path = parts.path or "/"
            return HttpTarget(grant, path + (f"?{parts.query}" if parts.query else ""))
    raise CapabilityViolation(Violation("network", f"{scheme}://{host}:{port}"))


def check_secret(caps: Capabilities, ref: str) -> str:
    if ref in caps.secrets:
        return ref
    # Only the reference is reported, and only its shape: it is a name, never a value.
    raise CapabilityViolation(Violation("secret", _clip(ref)))


@dataclass(frozen=True)
class KubeTarget:
    api_version: str
    resource: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.api_version}/{self.resource} {self.namespace}/{self.name}"


def check_kube(caps: Capabilities, target: KubeTarget) -> KubernetesRead:
    for grant in caps.kubernetes_reads:
        if grant.allows(target.api_version, target.resource, target.namespace, target.name):
            return grant
    raise CapabilityViolation(Violation("kubernetes", _clip(str(target))))


def _clip(text: str, limit: int = 200) -> str:
    printable = "".join(c if c.isprintable() else "?" for c in text)
    return printable if len(printable) <= limit else printable[: limit - 1] + "…"
