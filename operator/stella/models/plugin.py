"""Plugin and PluginPublisher (cluster-scoped), and the plugin steps of an Environment.

A PluginPublisher says whose signatures the cluster trusts; a Plugin installs one signed
manifest (a DSSE envelope, stella.plugins.manifest) and the module it pins. Admission
refuses a Plugin whose manifest is unsigned, altered or signed by no trusted publisher,
and the operator verifies it again before every run. The operator writes a Plugin's
status: what verified, the last run, and the quarantine that an attempt to use an
undeclared capability puts on it, cluster-wide, until a person re-enables it
(docs/plugins.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from stella.models.common import PINNED_IMAGE, Condition, Name, StrictModel
from stella.models.resource import KindInfo, Kinds, PrinterColumn

StepKind = Literal["Gate", "PreDeploy", "PostDeploy", "Notify"]
# The manifest entry point each kind of step runs.
ENTRY_OF_STEP: dict[str, str] = {
    "Gate": "gate",
    "PreDeploy": "preDeploy",
    "PostDeploy": "postDeploy",
    "Notify": "notify",
}
InputName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,62}$")]
InputValue = Annotated[str, Field(max_length=2048)]


class PluginStep(StrictModel):
    """A plugin an Environment runs at one point of each promotion, with its inputs."""

    plugin: Name = Field(description="The Plugin to run (kubectl get plugins).")
    at: StepKind = Field(
        description="Gate (before deploying: a failure keeps the Release waiting, retried), "
        "PreDeploy (once, right before the workloads change: a failure fails the "
        "promotion), PostDeploy (once the rollout completed: a failure fails it, rolled back "
        "when the Environment says so) or Notify (after the outcome; never blocks)."
    )
    inputs: dict[InputName, InputValue] = Field(
        default_factory=dict,
        max_length=32,
        description="The plugin's inputs, as its manifest declares them. Kept as evidence: "
        "never a secret (declare a Vault reference in the manifest instead).",
    )


class DsseSignatureSpec(StrictModel):
    keyid: Annotated[str, Field(min_length=1, max_length=256)] = Field(
        description="The signing key's id, as the PluginPublisher lists it."
    )
    sig: Annotated[str, Field(min_length=1, max_length=1024)] = Field(
        description="The base64 DER ECDSA P-256 signature over PAE(payloadType, payload)."
    )


class SignedManifest(StrictModel):
    """A DSSE envelope whose payload is the plugin manifest (stella plugin sign prints it)."""

    payload: Annotated[str, Field(min_length=1, max_length=65536)] = Field(
        description="The manifest JSON, base64."
    )
    payload_type: Literal["application/vnd.stella.plugin.manifest+json"] = Field(
        description="Always application/vnd.stella.plugin.manifest+json."
    )
    signatures: list[DsseSignatureSpec] = Field(
        default_factory=list, max_length=4, description="The publisher's signatures."
    )


class ModuleSource(StrictModel):
    """Where the WebAssembly module comes from; its sha256 must be the one the manifest pins."""

    model_config = StrictModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.image) != has(self.file)",
                    "message": "a module source is exactly one of image or file",
                },
                {
                    "rule": "!has(self.file) || self.file.startsWith('/')",
                    "message": "file must be an absolute path",
                },
            ]
        }
    }

    image: Annotated[str, Field(pattern=PINNED_IMAGE, max_length=512)] | None = Field(
        default=None,
        description="An OCI artifact pinned by digest (repo@sha256:...) with exactly one "
        "WebAssembly layer (application/wasm), e.g. pushed with oras; at most 4 MiB.",
    )
    file: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        default=None,
        description="For development: an absolute path on the operator's file system.",
    )

    @model_validator(mode="after")
    def _one(self) -> ModuleSource:
        if (self.image is None) == (self.file is None):
            raise ValueError("a module source is exactly one of image or file")
        if self.file is not None and not self.file.startswith("/"):
            raise ValueError("file must be an absolute path")
        return self


class PluginSpec(StrictModel):
    manifest: SignedManifest = Field(
        description="The signed manifest (a DSSE envelope): name, version, entry points, "
        "inputs, capabilities and limits, and the sha256 of the module."
    )
    module: ModuleSource = Field(description="Where the module's bytes come from.")


class PublicKeySpec(StrictModel):
    key_id: Annotated[str, Field(min_length=1, max_length=256)] = Field(
        description="The key id signatures name (stella plugin sign prints it)."
    )
    public_key: Annotated[str, Field(min_length=1, max_length=4096)] = Field(
        description="The ECDSA P-256 public key, PEM (-----BEGIN PUBLIC KEY-----)."
    )


class PluginPublisherSpec(StrictModel):
    keys: list[PublicKeySpec] = Field(
        min_length=1,
        max_length=16,
        description="The publisher's public keys. Its plugins' manifests name this "
        "PluginPublisher's name as publisher.",
    )
    description: Annotated[str, Field(max_length=1024)] = Field(
        default="", description="Who the publisher is, for people."
    )


class PluginPublisherStatus(StrictModel):
    conditions: list[Condition] = Field(default_factory=list, max_length=8)


class VerifiedPlugin(StrictModel):
    """What the operator's last verification of the signed manifest found."""

    name: Annotated[str, Field(max_length=63)] = Field(description="The manifest's name.")
    version: Annotated[str, Field(max_length=64)] = Field(description="The manifest's version.")
    publisher: Annotated[str, Field(max_length=63)] = Field(
        description="The PluginPublisher whose key verified the signature."
    )
    key_id: Annotated[str, Field(max_length=256)] = Field(description="That key's id.")
    manifest_digest: Annotated[str, Field(max_length=71)] = Field(
        description="sha256 of the signed manifest: this exact manifest's identity."
    )
    module_digest: Annotated[str, Field(max_length=71)] = Field(
        description="sha256 of the WebAssembly module the manifest pins."
    )


class Quarantine(StrictModel):
    """Set by the operator when a run tried an undeclared capability."""

    reason: Annotated[str, Field(max_length=128)] = Field(
        description="CapabilityViolation, and what it tried in message."
    )
    message: Annotated[str, Field(max_length=4096)] = Field(
        default="", description="What the plugin tried, for people."
    )
    since: datetime = Field(description="When the plugin was quarantined.")
    manifest_digest: Annotated[str, Field(max_length=71)] = Field(
        default="", description="The manifest that ran."
    )
    module_digest: Annotated[str, Field(max_length=71)] = Field(
        default="",
        description="The module that ran: no Plugin with this module runs, and none is "
        "admitted, while the quarantine stands.",
    )
    release: Annotated[str, Field(max_length=317)] = Field(
        default="", description="The Release whose promotion ran it, NAMESPACE/NAME."
    )
    environment: Annotated[str, Field(max_length=253)] = Field(
        default="", description="The Environment whose step ran it."
    )


class LastRun(StrictModel):
    """The plugin's most recent run (every run is evidence; this is only the latest)."""

    at: datetime = Field(description="When it finished.")
    outcome: Annotated[str, Field(max_length=64)] = Field(
        description="Passed, Failed, CapabilityViolation, OutOfFuel, MemoryLimit, Timeout "
        "or Trapped."
    )
    release: Annotated[str, Field(max_length=317)] = Field(
        default="", description="The Release, NAMESPACE/NAME."
    )
    environment: Annotated[str, Field(max_length=253)] = Field(
        default="", description="The Environment."
    )
    duration_seconds: float = Field(default=0.0, description="Wall-clock seconds.")
    fuel_used: int = Field(default=0, description="WebAssembly fuel used (about instructions).")
    memory_bytes: int = Field(default=0, description="Linear memory at the end, bytes.")


class PluginStatus(StrictModel):
    conditions: list[Condition] = Field(default_factory=list, max_length=8)
    verified: VerifiedPlugin | None = Field(
        default=None, description="What the last verification found."
    )
    quarantine: Quarantine | None = Field(
        default=None,
        description="Set while the plugin is quarantined: it runs nowhere until a person "
        "with the reenable verb on plugins/NAME re-enables it (docs/plugins.md).",
    )
    last_run: LastRun | None = Field(default=None, description="The latest run.")


PLUGIN = Kinds.register(
    KindInfo(
        kind="Plugin",
        plural="plugins",
        singular="plugin",
        scope="Cluster",
        short_names=("plg",),
        spec=PluginSpec,
        status=PluginStatus,
        description="A workflow plugin: a signed manifest and the WebAssembly module it pins.",
        printer_columns=(
            PrinterColumn("Publisher", ".status.verified.publisher"),
            PrinterColumn("Version", ".status.verified.version"),
            PrinterColumn("Quarantined", ".status.quarantine.reason"),
            PrinterColumn("Last", ".status.lastRun.outcome"),
            PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        ),
    )
)

PLUGIN_PUBLISHER = Kinds.register(
    KindInfo(
        kind="PluginPublisher",
        plural="pluginpublishers",
        singular="pluginpublisher",
        scope="Cluster",
        short_names=("plgpub",),
        spec=PluginPublisherSpec,
        status=PluginPublisherStatus,
        description="A publisher whose signed plugin manifests this cluster trusts.",
        printer_columns=(
            PrinterColumn("Keys", ".spec.keys[*].keyId"),
            PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        ),
    )
)
