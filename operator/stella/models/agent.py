"""Agent: a registered deployment agent that runs tasks for remote targets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from stella.models.common import CIDR, SHA256_HEX, Condition, LabelKey, LabelValue, StrictModel
from stella.models.resource import KindInfo, Kinds, PrinterColumn

Capability = Literal["deploy.kubernetes", "verify.digest", "exec.plugin"]


class Enrollment(StrictModel):
    """A one-time registration token, kept only as a hash."""

    token_sha256: Annotated[str, Field(pattern=SHA256_HEX)] = Field(
        description="SHA-256 (64 lowercase hex) of the registration token; the token itself "
        "is shown once by `stella agent enroll` and stored nowhere."
    )
    expires_at: datetime = Field(
        description="When the token stops working (RFC 3339); `stella agent enroll --expires`."
    )


class IssuedCertificate(StrictModel):
    """The client certificate the agents' CA issued at enrolment or renewal."""

    serial: Annotated[str, Field(max_length=128)] = Field(
        description="The certificate's serial number (colon-separated hex)."
    )
    fingerprint: Annotated[str, Field(pattern=SHA256_HEX)] = Field(
        description="SHA-256 of the certificate (64 lowercase hex); only this certificate "
        "is accepted from the agent."
    )
    not_after: datetime = Field(description="When the certificate expires.")


class AgentSpec(StrictModel):
    """A deployment agent that runs outside this cluster and dials in for tasks."""

    capabilities: list[Capability] = Field(
        default_factory=list,
        max_length=8,
        description="What the agent may do: deploy.kubernetes (apply to its own cluster), "
        "verify.digest (check digests against the registry), exec.plugin (run workflow "
        "plugins). A task needing a capability the agent lacks is never sent to it.",
    )
    labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        max_length=32,
        description="Labels an Environment target's agentSelector matches, e.g. {site: eu-1}.",
    )
    certificate_fingerprint: Annotated[str, Field(pattern=SHA256_HEX)] | None = Field(
        default=None,
        description="sha256 of the agent's client certificate (64 lowercase hex), set at "
        "enrolment; a connection presenting any other certificate is refused.",
    )
    revoked: bool = Field(
        default=False,
        description="Set true to contain the agent at once (stella agent revoke): its "
        "certificate and tokens stop working. Enrol it again to undo.",
    )
    allowed_networks: list[Annotated[str, Field(pattern=CIDR, max_length=43)]] = Field(
        default_factory=list,
        max_length=16,
        description="The networks (CIDR, e.g. 10.1.0.0/16) the agent may enrol and connect "
        "from; a request from elsewhere is refused and is a security signal. Empty: any.",
    )
    enrollment: Enrollment | None = Field(
        default=None,
        description="A pending one-time registration token, as `stella agent enroll` writes "
        "it: only its SHA-256 and its expiry. Used once; a second use is a security signal.",
    )


class AgentStatus(StrictModel):
    """What the operator last saw of the agent."""

    observed_generation: int | None = Field(
        default=None,
        description="The metadata.generation the operator last acted on.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=8,
        description="Standard conditions; Ready says whether the agent can take tasks.",
    )
    last_heartbeat: datetime | None = Field(
        default=None,
        description="When the agent last called in; an old value means it is Offline.",
    )
    certificate: IssuedCertificate | None = Field(
        default=None,
        description="The agent's current client certificate (serial, fingerprint, expiry).",
    )
    enrolled_token_sha256: Annotated[str, Field(pattern=SHA256_HEX)] | None = Field(
        default=None,
        description="SHA-256 of the registration token that was used (a second use of it "
        "is refused and raises a security signal).",
    )
    enrolled_at: datetime | None = Field(default=None, description="When the agent enrolled.")
    source_address: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="The address the agent last connected from."
    )
    reported_capabilities: list[Capability] = Field(
        default_factory=list,
        max_length=8,
        description="The capabilities the agent reported at its last heartbeat.",
    )
    revoked_at: datetime | None = Field(
        default=None,
        description="When the hub carried the revocation out (sessions ended, certificate "
        "revoked in the CA, evidence written).",
    )
    state: Literal["Pending", "Registered", "Online", "Offline", "Revoked"] = Field(
        default="Pending",
        description="Pending (not enrolled yet), Registered, Online, Offline (no recent "
        "heartbeat) or Revoked.",
    )


AGENT = Kinds.register(
    KindInfo(
        kind="Agent",
        plural="agents",
        singular="agent",
        scope="Cluster",
        short_names=("agent",),
        spec=AgentSpec,
        status=AgentStatus,
        description="A registered deployment agent: capabilities, certificate, heartbeat.",
        printer_columns=(
            PrinterColumn("State", ".status.state"),
            PrinterColumn("Revoked", ".spec.revoked", type="boolean"),
            PrinterColumn("Heartbeat", ".status.lastHeartbeat", type="date"),
            PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        ),
    )
)
