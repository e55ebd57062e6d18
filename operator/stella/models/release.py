"""Release: an immutable set of digest-pinned components and the environments it targets."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator

from stella.models.common import (
    DNS_LABEL,
    PINNED_IMAGE,
    Condition,
    Name,
    StrictModel,
)
from stella.models.environment import WorkloadRef
from stella.models.resource import KindInfo, Kinds, PrinterColumn

Phase = Literal[
    "Pending",
    "WaitingForPrerequisites",
    "WaitingForApproval",
    "Frozen",
    "Deploying",
    "Deployed",
    "Failed",
    "Rejected",
    "Superseded",
    "Halted",
    "Blocked",
]
TERMINAL_PHASES: frozenset[str] = frozenset({"Deployed", "Failed", "Rejected", "Superseded"})

_PINNED = re.compile(PINNED_IMAGE)
PinnedImage = Annotated[
    str,
    Field(
        pattern=PINNED_IMAGE,
        max_length=512,
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.contains('@sha256:')",
                    "messageExpression": "'image ' + self + ' is not pinned by digest; write it as "
                    "repo@sha256:<64 hex> (stella release create --from-tags resolves tags once)'",
                }
            ]
        },
    ),
]


class Component(StrictModel):
    name: Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=63)]
    image: PinnedImage
    workload: WorkloadRef

    @field_validator("image", mode="before")
    @classmethod
    def _pinned(cls, value: object) -> object:
        # The schema pattern says the same; this message says what to do about it.
        if isinstance(value, str) and not _PINNED.fullmatch(value):
            raise ValueError(
                f"image {value[:200]!r} is not pinned by digest; write it as "
                "repo@sha256:<64 lowercase hex> (resolve a tag once with "
                "`stella release create --from-tags` or `skopeo inspect`)"
            )
        return value


class ReleaseSpec(StrictModel):
    version: Annotated[
        str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
    ]
    components: list[Component] = Field(min_length=1, max_length=50)
    environments: list[Name] = Field(min_length=1, max_length=16)
    description: Annotated[str, Field(max_length=1024)] = ""

    @field_validator("components")
    @classmethod
    def _unique_components(cls, value: list[Component]) -> list[Component]:
        names = [c.name for c in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"component names must be unique; repeated: {', '.join(dupes)}")
        return value

    @field_validator("environments")
    @classmethod
    def _unique_environments(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("environments must not repeat")
        return value


class ApprovalRecord(StrictModel):
    approver: Annotated[str, Field(max_length=253)]
    decision: Literal["Approve", "Reject"]
    at: datetime
    approval: Annotated[str, Field(max_length=253)]


class WorkloadImage(StrictModel):
    """One container's image as it was before a deploy: what a rollback restores."""

    namespace: Annotated[str, Field(max_length=63)]
    kind: Annotated[str, Field(max_length=32)]
    name: Annotated[str, Field(max_length=253)]
    container: Annotated[str, Field(max_length=63)]
    image: Annotated[str, Field(max_length=512)]


class EnvironmentProgress(StrictModel):
    """Where this Release stands in one environment."""

    name: Name
    phase: Phase = "Pending"
    reason: Annotated[str, Field(max_length=128)] = "Pending"
    message: Annotated[str, Field(max_length=4096)] = ""
    since: datetime | None = None
    approvals: list[ApprovalRecord] = Field(default_factory=list, max_length=32)
    deployed_at: datetime | None = None
    attempt: Annotated[int, Field(ge=0)] = 0
    previous_images: list[WorkloadImage] = Field(default_factory=list, max_length=200)


class ReleaseStatus(StrictModel):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list, max_length=16)
    environments: list[EnvironmentProgress] = Field(default_factory=list, max_length=16)
    # One line for `kubectl get rel`: "dev=Deployed staging=WaitingForApproval prod=Pending".
    summary: Annotated[str, Field(max_length=1024)] = ""


RELEASE = Kinds.register(
    KindInfo(
        kind="Release",
        plural="releases",
        singular="release",
        scope="Namespaced",
        short_names=("rel",),
        spec=ReleaseSpec,
        status=ReleaseStatus,
        description="An immutable, digest-pinned set of components promoted through environments.",
        spec_validations=(
            {
                "rule": "self == oldSelf",
                "message": "a Release is immutable; create a new Release for a new version",
            },
        ),
        printer_columns=(
            PrinterColumn("Version", ".spec.version"),
            PrinterColumn("Progress", ".status.summary", description="phase per environment"),
            PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status'),
            PrinterColumn("Reason", '.status.conditions[?(@.type=="Ready")].reason', priority=1),
            PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        ),
    )
)
