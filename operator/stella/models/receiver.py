"""Receiver: one inbound webhook of the gateway (`stella web`, `/hooks/NAMESPACE/NAME`).

A platform team creates a Receiver in a Release namespace to let CI (a generic signed
JSON event) ask for Releases there, for the Environments it names, with images only from
the repositories it lists. Deliveries are signed with an HMAC secret kept in Vault (never
here); each accepted one becomes a Release pinned by digest (a tag is resolved once, at
receipt) created *as the receiver's own ServiceAccount*, so admission records that
identity as the requester and separation of duties knows who asked (docs/console.md).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from stella.models.common import DNS_LABEL, Condition, Name, StrictModel, VaultRef, vault_ref_rule
from stella.models.environment import WorkloadRef
from stella.models.resource import KindInfo, Kinds, PrinterColumn

# host[:port]/path, no tag or digest
REPOSITORY = r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?/[a-z0-9]+([._/-][a-z0-9]+)*$"


class ReceiverComponent(StrictModel):
    """A component a delivery may name, the repository its image must come from, and the
    workload it updates."""

    name: Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=63)] = Field(
        description="The component's name in the Releases created."
    )
    repository: Annotated[str, Field(pattern=REPOSITORY, max_length=255)] = Field(
        description="host[:port]/path: the only repository this component's image may come from."
    )
    workload: WorkloadRef = Field(description="The workload and container the image updates.")


class ReceiverSpec(StrictModel):
    model_config = ConfigDict(
        **StrictModel.model_config,
        json_schema_extra={"x-kubernetes-validations": [vault_ref_rule("secret")]},
    )

    format: Literal["Generic", "Distribution"] = Field(
        default="Generic",
        description="Generic: a JSON event {version, components: [{name, image}]} signed "
        "with X-Stella-Timestamp, X-Stella-Nonce and X-Stella-Signature (sha256=HMAC of "
        "'<timestamp>.<nonce>.<body>'). Distribution: a distribution registry's push "
        "notifications, authenticated by 'Authorization: Bearer <key>' (the registry's "
        "endpoint headers), each event fresh and never seen before.",
    )
    secret: VaultRef = Field(
        description="The key (HMAC key, or the registry's bearer key), as a Vault reference "
        "vault:<mount>/<path>#<key>."
    )
    service_account_name: Annotated[str, Field(pattern=DNS_LABEL, max_length=63)] = Field(
        description="The ServiceAccount (in this namespace) Releases are created as: the "
        "requester admission records. The gateway impersonates it, so the gateway needs "
        "`impersonate` on this one ServiceAccount (docs/console.md)."
    )
    environments: list[Name] = Field(
        min_length=1, max_length=16, description="The Environments each Release targets."
    )
    components: list[ReceiverComponent] = Field(
        min_length=1, max_length=32, description="The components a delivery may name."
    )
    max_body_bytes: Annotated[int, Field(ge=256, le=1024 * 1024)] = Field(
        default=65536, description="The largest delivery accepted (413 beyond)."
    )
    rate_per_minute: Annotated[int, Field(ge=1, le=6000)] = Field(
        default=60, description="Accepted deliveries per minute (429 with Retry-After beyond)."
    )
    burst: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=10, description="... and how many may come at once."
    )


class ReceiverStatus(StrictModel):
    conditions: list[Condition] = Field(default_factory=list, max_length=8)


RECEIVER = Kinds.register(
    KindInfo(
        kind="Receiver",
        plural="receivers",
        singular="receiver",
        scope="Namespaced",
        short_names=("rcv",),
        spec=ReceiverSpec,
        status=ReceiverStatus,
        description="An inbound webhook of Stella's gateway: who may ask for Releases here, "
        "for which Environments and images, signed with which Vault-held secret.",
        printer_columns=(
            PrinterColumn("Identity", ".spec.serviceAccountName"),
            PrinterColumn("Environments", ".spec.environments"),
        ),
    )
)
