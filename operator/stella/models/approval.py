"""Approval: one person's decision on one Release for one Environment."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from stella.models.common import Condition, Name, StrictModel
from stella.models.resource import KindInfo, Kinds, PrinterColumn

Decision = Literal["Approve", "Reject"]


class ApprovalSpec(StrictModel):
    release: Name
    environment: Name
    decision: Decision
    comment: Annotated[str, Field(max_length=1024)] = ""


class ApprovalStatus(StrictModel):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list, max_length=8)
    counted: bool = False
    approver: Annotated[str, Field(max_length=253)] | None = None


APPROVAL = Kinds.register(
    KindInfo(
        kind="Approval",
        plural="approvals",
        singular="approval",
        scope="Namespaced",
        short_names=("appr",),
        spec=ApprovalSpec,
        status=ApprovalStatus,
        description="One approve/reject decision by one person for a Release into an Environment.",
        spec_validations=(
            {"rule": "self == oldSelf", "message": "an Approval is immutable once made"},
        ),
        printer_columns=(
            PrinterColumn("Release", ".spec.release"),
            PrinterColumn("Environment", ".spec.environment"),
            PrinterColumn("Decision", ".spec.decision"),
            PrinterColumn("Approver", ".status.approver"),
            PrinterColumn("Counted", ".status.counted", type="boolean"),
            PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        ),
    )
)
