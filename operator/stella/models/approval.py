"""Approval: one person's decision on one Release for one Environment."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from stella.models.common import Condition, Name, StrictModel, Username
from stella.models.resource import KindInfo, Kinds, PrinterColumn

Decision = Literal["Approve", "Reject"]


class ApprovalSpec(StrictModel):
    """One decision. Who decided is not a field: admission records the person who creates
    the Approval, as the API server authenticated them."""

    release: Name = Field(
        description="The name of the Release decided on, in this Approval's namespace "
        "(kubectl get rel)."
    )
    environment: Name = Field(
        description="The Environment the decision is for (kubectl get env); one of the "
        "Release's spec.environments."
    )
    decision: Decision = Field(
        description="Approve (counts towards the Environment's approvals.required) or "
        "Reject (stops the Release for this Environment, if you are a qualified approver)."
    )
    comment: Annotated[str, Field(max_length=1024)] = Field(
        default="",
        description="Why, e.g. a change ticket (CAB-1234). Kept as evidence: never put a "
        "secret here.",
    )


class ApprovalStatus(StrictModel):
    """Whether the decision counted, and why not."""

    observed_generation: int | None = Field(
        default=None,
        description="The metadata.generation the operator last acted on.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=8,
        description="The Counted condition: True when the decision counts; when False, "
        "its reason says why (SelfApproval, NotInApproverGroup, Duplicate, UnknownIdentity; "
        "ReleaseReplaced: made on an earlier Release of the same name; AlreadyDecided: made "
        "after the promotion into the Environment was decided) and its message what to do.",
    )
    counted: bool = Field(
        default=False,
        description="True when this decision counts for the Release and Environment.",
    )
    approver: Username | None = Field(
        default=None,
        description="Who made the decision, as the API server authenticated them at creation.",
    )


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
            # Why it does not count (SelfApproval, AlreadyDecided, ...), beside the false.
            PrinterColumn(
                "Reason",
                '.status.conditions[?(@.type=="Counted")].reason',
                description="why it counts or not",
            ),
            PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        ),
    )
)
