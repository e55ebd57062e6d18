"""Agent: a registered deployment agent that runs tasks for remote targets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from stella.models.common import SHA256_HEX, Condition, LabelKey, LabelValue, StrictModel
from stella.models.resource import KindInfo, Kinds, PrinterColumn

Capability = Literal["deploy.kubernetes", "verify.digest", "exec.plugin"]


class AgentSpec(StrictModel):
    capabilities: list[Capability] = Field(default_factory=list, max_length=8)
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=32)
    certificate_fingerprint: Annotated[str, Field(pattern=SHA256_HEX)] | None = None
    revoked: bool = False


class AgentStatus(StrictModel):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list, max_length=8)
    last_heartbeat: datetime | None = None
    state: Literal["Pending", "Registered", "Online", "Offline", "Revoked"] = "Pending"


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
