"""The plugin manifest: what a plugin is and everything it may do.

A manifest is the payload of a DSSE envelope signed by a publisher the cluster trusts
(a PluginPublisher). It pins the WebAssembly module by its sha256 and declares the
capabilities the sandbox grants — nothing else is linked into the module's world:

    apiVersion: stella.io/plugin/v1
    name: smoke-test
    version: 1.0.0
    publisher: platform-team
    module: {digest: sha256:<64 hex>}
    entryPoints: [gate, postDeploy]
    inputs: [{name: url, required: true}]
    capabilities:
      network: [{host: shop.example.com, port: 443, scheme: https}]
      secrets: [vault:secret/smoke#token]
      kubernetesReads: [{apiVersion: v1, resource: configmaps, namespace: shop}]
    limits: {fuel: 100000000, memoryMiB: 16, timeout: 10s}
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from stella.models.common import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    Duration,
    NamespaceName,
    StrictModel,
    VaultRef,
)
from stella.policy.duration import parse_duration

MANIFEST_API_VERSION = "stella.io/plugin/v1"
PAYLOAD_TYPE = "application/vnd.stella.plugin.manifest+json"

EntryPoint = Literal["gate", "preDeploy", "postDeploy", "notify"]
# The exported WebAssembly function of each entry point.
EXPORT_OF_ENTRY: dict[str, str] = {
    "gate": "gate",
    "preDeploy": "pre_deploy",
    "postDeploy": "post_deploy",
    "notify": "notify",
}
_LABEL = r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?"
HOST = rf"^({_LABEL}(\.{_LABEL})*|[0-9.]+|\[[0-9a-fA-F:]+\])$"
MAX_FUEL = 10_000_000_000
MAX_MEMORY_MIB = 512
MAX_TIMEOUT_SECONDS = 300.0
Sha256Digest = Annotated[str, Field(pattern=r"^sha256:[a-f0-9]{64}$")]


class NetworkGrant(StrictModel):
    """One host the plugin may call: exactly this scheme, host and port."""

    host: Annotated[str, Field(pattern=HOST, min_length=1, max_length=253)] = Field(
        description="A host name or IP address, exactly as the plugin's URLs name it."
    )
    port: Annotated[int, Field(ge=1, le=65535)] = Field(description="The TCP port.")
    scheme: Literal["http", "https"] = Field(default="https", description="http or https.")

    def key(self) -> tuple[str, str, int]:
        return (self.scheme, self.host.lower(), self.port)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


class KubernetesRead(StrictModel):
    """Objects the plugin may read (get only) from the cluster Stella runs in."""

    api_version: Annotated[str, Field(pattern=r"^([a-z0-9.-]+/)?v[0-9a-z]+$", max_length=128)] = (
        Field(description="v1 for core objects, else GROUP/VERSION, e.g. apps/v1.")
    )
    resource: Annotated[str, Field(pattern=DNS_LABEL, max_length=63)] = Field(
        description="The resource's plural name, e.g. configmaps or deployments."
    )
    namespace: NamespaceName = Field(description="The namespace read from (never all).")
    names: list[Annotated[str, Field(pattern=DNS_SUBDOMAIN, max_length=253)]] = Field(
        default_factory=list,
        max_length=32,
        description="The objects' names; empty: any object of the resource in the namespace.",
    )

    @field_validator("resource")
    @classmethod
    def _no_secrets(cls, value: str) -> str:
        if value == "secrets":
            raise ValueError(
                "Kubernetes Secrets are never readable by plugins; declare a Vault reference "
                "under capabilities.secrets instead"
            )
        return value

    def allows(self, api_version: str, resource: str, namespace: str, name: str) -> bool:
        return (self.api_version, self.resource, self.namespace) == (
            api_version,
            resource,
            namespace,
        ) and (not self.names or name in self.names)


class Capabilities(StrictModel):
    """Everything the plugin may reach. Undeclared means not linked: impossible, not merely
    forbidden, and an attempt quarantines the plugin."""

    network: list[NetworkGrant] = Field(default_factory=list, max_length=16)
    secrets: list[VaultRef] = Field(default_factory=list, max_length=16)
    kubernetes_reads: list[KubernetesRead] = Field(default_factory=list, max_length=16)


class Limits(StrictModel):
    """What one run may use before it is stopped."""

    fuel: Annotated[int, Field(ge=1_000, le=MAX_FUEL)] = Field(
        default=100_000_000,
        description="WebAssembly fuel (about one unit per instruction) for one run.",
    )
    memory_mib: Annotated[int, Field(ge=1, le=MAX_MEMORY_MIB)] = Field(
        default=16, alias="memoryMiB", description="Linear memory ceiling, MiB."
    )
    timeout: Duration = Field(default="10s", description="Wall-clock limit of one run.")

    @field_validator("timeout")
    @classmethod
    def _bounded(cls, value: str) -> str:
        seconds = parse_duration(value).total_seconds()
        if not 0 < seconds <= MAX_TIMEOUT_SECONDS:
            raise ValueError(f"timeout must be more than 0 and at most {MAX_TIMEOUT_SECONDS:.0f}s")
        return value

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout).total_seconds()

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * 1024 * 1024


class InputDecl(StrictModel):
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,62}$")]
    description: Annotated[str, Field(max_length=1024)] = ""
    required: bool = False


class ModuleRef(StrictModel):
    digest: Sha256Digest = Field(description="sha256 of the WebAssembly module's bytes.")


class PluginManifest(StrictModel):
    api_version: Literal["stella.io/plugin/v1"] = "stella.io/plugin/v1"
    name: Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=63)]
    version: Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")]
    publisher: Annotated[str, Field(pattern=DNS_SUBDOMAIN, min_length=1, max_length=63)]
    module: ModuleRef
    entry_points: list[EntryPoint] = Field(min_length=1, max_length=4)
    inputs: list[InputDecl] = Field(default_factory=list, max_length=32)
    capabilities: Capabilities = Field(default_factory=Capabilities)
    limits: Limits = Field(default_factory=Limits)

    @model_validator(mode="after")
    def _unique(self) -> PluginManifest:
        if len(set(self.entry_points)) != len(self.entry_points):
            raise ValueError("entryPoints must not repeat")
        names = [i.name for i in self.inputs]
        if len(set(names)) != len(names):
            raise ValueError("inputs must have distinct names")
        return self

    def check_inputs(self, given: dict[str, str]) -> list[str]:
        """Problems with a step's inputs, for people (empty: fine)."""
        declared = {i.name for i in self.inputs}
        problems = [
            f"input {k!r} is not declared by plugin {self.name}" for k in given if k not in declared
        ]
        problems += [
            f"input {i.name!r} is required by plugin {self.name}"
            for i in self.inputs
            if i.required and i.name not in given
        ]
        return problems
