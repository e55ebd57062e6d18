"""Environment: one stage of the promotion path (cluster-scoped)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from stella.models.common import (
    DNS_LABEL,
    REGISTRY_HOST,
    Condition,
    Duration,
    LabelSelector,
    Name,
    NamespaceName,
    StrictModel,
    VaultRef,
    vault_ref_rule,
)
from stella.models.resource import KindInfo, Kinds, PrinterColumn

WorkloadKind = Literal["Deployment", "StatefulSet", "DaemonSet"]


class WorkloadRef(StrictModel):
    """The workload and container a component's image goes into."""

    kind: WorkloadKind = "Deployment"
    name: Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=63)]
    container: Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=63)]


class ComponentOverride(StrictModel):
    """A target's own mapping of one component to a workload, when it differs."""

    component: Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]
    workload: WorkloadRef


class Target(StrictModel):
    """Where an environment deploys: a namespace here, or agents elsewhere."""

    model_config = StrictModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.__namespace__) != has(self.agentSelector)",
                    "message": "a target names exactly one of namespace or agentSelector",
                }
            ]
        }
    }

    namespace: NamespaceName | None = None
    agent_selector: LabelSelector | None = None
    overrides: list[ComponentOverride] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _one_kind_of_target(self) -> Target:
        if (self.namespace is None) == (self.agent_selector is None):
            raise ValueError("a target names exactly one of namespace or agentSelector")
        return self


class ApprovalPolicy(StrictModel):
    required: Annotated[int, Field(ge=0, le=10)] = 0
    approver_groups: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=32
    )
    prevent_self_approval: bool = True


class FreezeWindow(StrictModel):
    """A period in which nothing is deployed: recurring (cron + duration) or absolute."""

    model_config = StrictModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.schedule) != has(self.start)",
                    "message": "a freeze window is either recurring (schedule, duration) "
                    "or absolute (start, end)",
                },
                {
                    "rule": "has(self.schedule) == has(self.duration)",
                    "message": "a recurring freeze window needs both schedule and duration",
                },
                {
                    "rule": "has(self.start) == has(self.end)",
                    "message": "an absolute freeze window needs both start and end",
                },
            ]
        }
    }

    name: Annotated[str, Field(max_length=63)] | None = None
    schedule: Annotated[str, Field(min_length=9, max_length=128)] | None = None
    duration: Duration | None = None
    time_zone: Annotated[str, Field(max_length=64)] = "UTC"
    start: datetime | None = None
    end: datetime | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> FreezeWindow:
        if (self.schedule is None) == (self.start is None):
            raise ValueError(
                "a freeze window is either recurring (schedule, duration) or absolute (start, end)"
            )
        if (self.schedule is None) != (self.duration is None):
            raise ValueError("a recurring freeze window needs both schedule and duration")
        if (self.start is None) != (self.end is None):
            raise ValueError("an absolute freeze window needs both start and end")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("a freeze window must end after it starts")
        return self


class RolloutPolicy(StrictModel):
    timeout: Duration = "10m"
    rollback_on_failure: bool = True


class EnvironmentSpec(StrictModel):
    model_config = ConfigDict(
        **StrictModel.model_config,
        json_schema_extra={"x-kubernetes-validations": [vault_ref_rule("registryCredentials")]},
    )

    requires: list[Name] = Field(default_factory=list, max_length=16)
    release_namespaces: LabelSelector | None = None
    targets: list[Target] = Field(default_factory=list, max_length=32)
    allowed_registries: list[Annotated[str, Field(pattern=REGISTRY_HOST, max_length=253)]] = Field(
        default_factory=list, max_length=32
    )
    registry_credentials: VaultRef | None = None
    approvals: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    freeze_windows: list[FreezeWindow] = Field(default_factory=list, max_length=32)
    auto_promote: bool = True
    rollout: RolloutPolicy = Field(default_factory=RolloutPolicy)
    # Workload admission: only digests of Releases approved here may run in its namespaces.
    require_approved_digests: bool = False
    # Rollback re-promotes through the same gates unless this says it may skip approvals.
    rollback_skips_approval: bool = False
    # A person halts or resumes the environment; the operator halts it itself in status.
    suspended: bool = False
    # Report (Event + metric) when a component's tag no longer points at its pinned digest.
    # Drift is reported, never followed: the pinned digest is what runs.
    report_drift: bool = False


class HaltState(StrictModel):
    reason: Annotated[str, Field(max_length=128)]
    message: Annotated[str, Field(max_length=4096)] = ""
    since: datetime


class HistoryEntry(StrictModel):
    """One finished promotion into this environment (a bounded list, newest first)."""

    release: Annotated[str, Field(max_length=317)]
    version: Annotated[str, Field(max_length=64)]
    outcome: Literal["Deployed", "Failed", "RolledBack"]
    at: datetime
    attempt: Annotated[int, Field(ge=0)] = 0
    approvers: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list, max_length=16
    )
    message: Annotated[str, Field(max_length=1024)] = ""


HISTORY_LIMIT = 20


class EnvironmentStatus(StrictModel):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list, max_length=16)
    current_release: Annotated[str, Field(max_length=317)] | None = None
    in_flight: Annotated[str, Field(max_length=317)] | None = None
    halted: HaltState | None = None
    path: list[Name] = Field(default_factory=list, max_length=64)
    history: list[HistoryEntry] = Field(default_factory=list, max_length=HISTORY_LIMIT)


ENVIRONMENT = Kinds.register(
    KindInfo(
        kind="Environment",
        plural="environments",
        singular="environment",
        scope="Cluster",
        short_names=("env",),
        spec=EnvironmentSpec,
        status=EnvironmentStatus,
        description="A stage in the promotion path: its targets, approvals, freeze windows.",
        printer_columns=(
            PrinterColumn("Requires", ".spec.requires", description="prerequisite stages"),
            PrinterColumn("Current", ".status.currentRelease", description="deployed release"),
            PrinterColumn("Halted", ".status.halted.reason"),
            PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status'),
            PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        ),
    )
)
