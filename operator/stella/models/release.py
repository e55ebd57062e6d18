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
    Username,
)
from stella.models.environment import WorkloadRef
from stella.models.resource import KindInfo, Kinds, PrinterColumn
from stella.models.verification import VerificationProgress

Phase = Literal[
    "Pending",
    "WaitingForPrerequisites",
    "WaitingForApproval",
    "Frozen",
    "Deploying",
    "Verifying",
    "Deployed",
    "Failed",
    "Rejected",
    "Superseded",
    "Halted",
    "Blocked",
]
TERMINAL_PHASES: frozenset[str] = frozenset({"Deployed", "Failed", "Rejected", "Superseded"})
# A deployment under way: rolling out, then (when the Environment asks) verifying. The
# Environment's lock is held and the Release's images run there throughout.
IN_PROGRESS_PHASES: frozenset[str] = frozenset({"Deploying", "Verifying"})

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
    """One image of the Release and the workload container it goes into."""

    name: Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=63)] = Field(
        description="A short name for the component, unique in the Release, e.g. web "
        "(lowercase letters, digits and '-')."
    )
    image: PinnedImage = Field(
        description="The image pinned by digest: repo@sha256:<64 lowercase hex>, e.g. "
        "registry.example.com/shop/web@sha256:2c26...e7ae (a tag before the digest is "
        "allowed and ignored). To pin a tag once: stella release create --from-tags, or "
        "skopeo inspect --format '{{.Digest}}' docker://IMAGE:TAG."
    )
    workload: WorkloadRef = Field(
        description="The workload and container whose image this component sets in each "
        "target namespace (an Environment target may override it)."
    )

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
    """What to deploy and where. Immutable: for a new version, create a new Release."""

    version: Annotated[
        str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
    ] = Field(
        description="The version people know this Release by, e.g. 1.4.2 (letters, digits, "
        "'.', '_', '+', '-'). Quote it when YAML could read it as a number: "
        'version: "1.10" (unquoted, 1.10 is the number 1.1).'
    )
    components: list[Component] = Field(
        min_length=1,
        max_length=50,
        description="The images to deploy (1-50), each pinned by digest and mapped to a "
        "workload container.",
    )
    environments: list[Name] = Field(
        min_length=1,
        max_length=16,
        description="The Environments to promote into (kubectl get env), e.g. [dev, "
        "staging, prod]. Stella goes in path order (each Environment's requires), whatever "
        "the order here.",
    )
    description: Annotated[str, Field(max_length=1024)] = Field(
        default="",
        description="Free text for people (what changed, a ticket). Never put a secret here.",
    )

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
    """One Approval the operator took into account for an Environment."""

    approver: Username = Field(description="Who decided, as the API server authenticated them.")
    decision: Literal["Approve", "Reject"] = Field(description="Approve or Reject.")
    at: datetime = Field(description="When the Approval was created.")
    approval: Annotated[str, Field(max_length=253)] = Field(
        description="The Approval object's name (kubectl get appr NAME)."
    )


class WorkloadImage(StrictModel):
    """One container's image as it was before a deploy: what a rollback restores."""

    namespace: Annotated[str, Field(max_length=63)] = Field(description="The workload's namespace.")
    kind: Annotated[str, Field(max_length=32)] = Field(
        description="Deployment, StatefulSet or DaemonSet."
    )
    name: Annotated[str, Field(max_length=253)] = Field(description="The workload's name.")
    container: Annotated[str, Field(max_length=63)] = Field(description="The container.")
    image: Annotated[str, Field(max_length=512)] = Field(
        description="The image the container ran before this Release was deployed."
    )


class ApplicationRevision(StrictModel):
    """The git revision an Argo CD Application reported after comparing against the
    override of this attempt (issue 14): what the outcome evidence records."""

    namespace: Annotated[str, Field(max_length=63)] = Field(
        description="The Application's namespace."
    )
    name: Annotated[str, Field(max_length=253)] = Field(description="The Application.")
    revision: Annotated[str, Field(max_length=128)] = Field(
        description="The revision in its status.sync.revision."
    )


class EnvironmentProgress(StrictModel):
    """Where this Release stands in one environment."""

    name: Name = Field(description="The Environment.")
    phase: Phase = Field(
        default="Pending",
        description="Pending, WaitingForPrerequisites, WaitingForApproval, Frozen, "
        "Deploying, Verifying, Deployed, Failed, Rejected, Superseded, Halted or Blocked; "
        "docs/concepts.md says what each means and what to do.",
    )
    reason: Annotated[str, Field(max_length=128)] = Field(
        default="Pending",
        description="A CamelCase word saying why the phase, e.g. ApprovalsMissing.",
    )
    message: Annotated[str, Field(max_length=4096)] = Field(
        default="",
        description="What is happening here and what to do next, for people.",
    )
    since: datetime | None = Field(default=None, description="When the phase began.")
    approvals: list[ApprovalRecord] = Field(
        default_factory=list,
        max_length=32,
        description="The Approvals seen for this Environment.",
    )
    deployed_at: datetime | None = Field(
        default=None, description="When the deployment here finished successfully."
    )
    attempt: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description="How many times a deployment here has started (a restart mid-rollout "
        "starts a new attempt).",
    )
    verification: VerificationProgress | None = Field(
        default=None,
        description="The verification of the current attempt (the Environment's soak time "
        "and checks), while Verifying and after.",
    )
    previous_images: list[WorkloadImage] = Field(
        default_factory=list,
        max_length=200,
        description="The images that ran before this Release was deployed here: what a "
        "rollback on failure puts back.",
    )
    application_revisions: list[ApplicationRevision] = Field(
        default_factory=list,
        max_length=32,
        description="For Argo CD Application targets: the revision each Application "
        "reported for this attempt's override (docs/argocd.md).",
    )


class ReleaseStatus(StrictModel):
    """Where the Release stands in each of its Environments."""

    observed_generation: int | None = Field(
        default=None, description="The metadata.generation the operator last acted on."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Standard conditions; Ready is True once the Release is Deployed in "
        "every Environment it targets, else False with the reason of the first one (in path "
        "order) holding it up; Degraded is True while it is Failed, Rejected, Blocked or "
        "halted in one (what Argo CD's health check reads, docs/argocd.md).",
    )
    environments: list[EnvironmentProgress] = Field(
        default_factory=list,
        max_length=16,
        description="One entry per targeted Environment, in path order.",
    )
    # One line for `kubectl get rel`: "dev=Deployed staging=WaitingForApproval prod=Pending".
    summary: Annotated[str, Field(max_length=1024)] = Field(
        default="",
        description="The phase per Environment in one line, as kubectl get rel shows it: "
        "dev=Deployed staging=WaitingForApproval prod=Pending.",
    )
    # For `kubectl get rel` only: the stamp is JSON, which a printer column cannot parse.
    requester: Username | None = Field(
        default=None,
        description="Who created the Release, as the API server authenticated them (the "
        "username of the stella.io/requester stamp admission wrote); display only, every "
        "check reads the stamp.",
    )


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
            # ReleaseSpec's validators, as the API server's own schema rules: a plain Release
            # CREATE reaches no webhook (the release-create policy judges it).
            {
                "rule": "self.components.all(c, self.components.exists_one(d, d.name == c.name))",
                "message": "component names must be unique: two components share a name; "
                "give each its own",
            },
            {
                "rule": "self.environments.all(e, self.environments.exists_one(f, f == e))",
                "message": "environments must not repeat",
            },
        ),
        printer_columns=(
            PrinterColumn("Version", ".spec.version"),
            PrinterColumn("Requester", ".status.requester", description="who created it"),
            PrinterColumn("Progress", ".status.summary", description="phase per environment"),
            PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status'),
            PrinterColumn("Reason", '.status.conditions[?(@.type=="Ready")].reason', priority=1),
            PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        ),
    )
)
