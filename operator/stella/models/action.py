"""Action: one person's request to act on an Environment (promote, clear a halt, suspend,
resume), as an object the API server authenticates and RBAC authorizes.

A human action is never a field or annotation on the object it acts on: any writer of
that object could set it. It is its own immutable object, whose actor admission stamps
from the API server's `userInfo` at CREATE (`stella.io/actor`) and whose right is the
custom verb of the action on `environments/<name>` (SubjectAccessReview), so a platform
team grants "may promote prod" with an ordinary ClusterRole. The operator carries each
Action out once, records it as evidence naming the actor, and writes the result in its
status. Approvals (approve/reject) and rollbacks (a Release that names an earlier one)
go through the same verbs; see docs/actions.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from stella.models.common import Condition, Name, StrictModel, Username
from stella.models.resource import KindInfo, Kinds, PrinterColumn

ActionType = Literal["Promote", "ClearHalt", "Suspend", "Resume"]
ActionPhase = Literal["Pending", "Done", "Refused"]

# The RBAC verb on `environments/<name>` (group stella.io) that each action needs.
VERB_OF_ACTION: Mapping[str, str] = {
    "Promote": "promote",
    "ClearHalt": "clear-halt",
    "Suspend": "suspend",
    "Resume": "suspend",
}
# The verbs of the other human actions, on the same resource.
APPROVE_VERB = "approve"  # an Approval, Approve or Reject
ROLLBACK_VERB = "rollback"  # a Release that names an earlier one with stella.io/rollback-of
ALL_VERBS: tuple[str, ...] = ("approve", "promote", "rollback", "clear-halt", "suspend")

ReleaseRef = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$",
        max_length=317,
        description="The Release as NAMESPACE/NAME, e.g. shop/shop-1-4-2.",
    ),
]


class ActionSpec(StrictModel):
    action: ActionType = Field(
        description="What to do: Promote (a Release into an Environment whose autoPromote "
        "is false), ClearHalt (lift a halt once investigated), Suspend or Resume "
        "(stop or restart deployments to the Environment)."
    )
    environment: Name = Field(description="The Environment acted on (kubectl get env).")
    release: ReleaseRef | None = Field(
        default=None,
        description="Promote only: the Release to promote, as NAMESPACE/NAME.",
    )
    reason: Annotated[str, Field(max_length=1024)] = Field(
        default="",
        description="Why (a ticket or a sentence). Required for ClearHalt and Suspend; kept "
        "as evidence, so never put a secret here.",
    )

    @model_validator(mode="after")
    def _shape(self) -> ActionSpec:
        if self.action == "Promote" and self.release is None:
            raise ValueError("a Promote action needs spec.release (NAMESPACE/NAME)")
        if self.action != "Promote" and self.release is not None:
            raise ValueError(f"spec.release is only for Promote, not {self.action}")
        if self.action in ("ClearHalt", "Suspend") and not self.reason.strip():
            raise ValueError(f"a {self.action} action needs spec.reason saying why")
        return self


class ActionStatus(StrictModel):
    phase: ActionPhase | None = Field(
        default=None,
        description="Pending until the operator has carried the action out; then Done, or "
        "Refused with a reason (e.g. the Release no longer exists).",
    )
    reason: Annotated[str, Field(max_length=128)] = Field(
        default="", description="A machine-readable reason for the phase."
    )
    message: Annotated[str, Field(max_length=4096)] = Field(
        default="", description="What happened, for people."
    )
    actor: Username | None = Field(
        default=None, description="Who asked, as the API server authenticated them."
    )
    processed_at: datetime | None = Field(
        default=None, description="When the operator carried the action out."
    )
    conditions: list[Condition] = Field(default_factory=list, max_length=8)


ACTION = Kinds.register(
    KindInfo(
        kind="Action",
        plural="actions",
        singular="action",
        scope="Cluster",
        short_names=("act",),
        spec=ActionSpec,
        status=ActionStatus,
        description="One person's request to promote, clear a halt, suspend or resume, "
        "authorized by the custom verb on the Environment and recorded as evidence.",
        spec_validations=(
            {"rule": "self == oldSelf", "message": "an Action is immutable once made"},
            {
                "rule": "self.action == 'Promote' ? has(self.release) : !has(self.release)",
                "message": "spec.release (NAMESPACE/NAME) is required for Promote and only "
                "allowed there",
            },
        ),
        printer_columns=(
            PrinterColumn("Action", ".spec.action"),
            PrinterColumn("Environment", ".spec.environment"),
            PrinterColumn("Release", ".spec.release"),
            PrinterColumn("Actor", ".status.actor"),
            PrinterColumn("Phase", ".status.phase"),
            # What came of it (Suspended, Cleared, or why it was Refused), beside the phase.
            PrinterColumn("Reason", ".status.reason", description="what came of it"),
            PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        ),
    )
)
