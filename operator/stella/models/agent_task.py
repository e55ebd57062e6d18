"""AgentTask: one deployment an agent carries out in its own cluster, for one Release
into one Environment's agent target.

The engine writes the spec (the operator's namespace only; people and agents never write
AgentTasks); the agent reads it and reports through the hub, which writes the status. A
task is its own object so that neither a restarted hub nor a restarted agent loses or
repeats it: its name is fixed by the Release's uid, the Environment, the target and the
attempt, and an agent resumes an unfinished task it acknowledged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from stella.models.common import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    SHA256_HEX,
    Condition,
    Name,
    NamespaceName,
    StrictModel,
)
from stella.models.release import Component
from stella.models.resource import KindInfo, Kinds, PrinterColumn

TaskPhase = Literal["Pending", "Acknowledged", "Running", "Succeeded", "Failed"]
TERMINAL_TASK_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed"})
# The order a task's phase may move in (never back; a terminal phase is final).
TASK_PHASE_ORDER: dict[str, int] = {
    "Pending": 0,
    "Acknowledged": 1,
    "Running": 2,
    "Succeeded": 3,
    "Failed": 3,
}


# A task's own name: longer than a Name (the Release's uid, Environment and target are in it).
TaskName = Annotated[str, Field(pattern=DNS_SUBDOMAIN, min_length=1, max_length=253)]


class TaskRelease(StrictModel):
    """The Release a task deploys."""

    namespace: NamespaceName = Field(description="The Release's namespace.")
    name: Name = Field(description="The Release's name.")
    uid: Annotated[str, Field(max_length=64)] = Field(description="The Release's uid.")
    version: Annotated[str, Field(max_length=128)] = Field(description="Its spec.version.")


class TaskImage(StrictModel):
    component: Annotated[str, Field(max_length=63)] = Field(description="The component.")
    image: Annotated[str, Field(max_length=512)] = Field(description="The image it ran.")


class TaskRollback(StrictModel):
    """Set on a task that puts back what ran before another task of the same promotion
    (engine/agent_rollback.py)."""

    of: TaskName = Field(description="The task whose images this one undoes.")
    reason: Annotated[str, Field(max_length=128)] = Field(
        description="Why the promotion is rolled back, e.g. PluginFailed (a PostDeploy step)."
    )
    message: Annotated[str, Field(max_length=1024)] = Field(
        default="", description="What failed, for people."
    )


class AgentTaskSpec(StrictModel):
    """What to deploy, where, by when — nothing else (no credentials)."""

    agent: Name = Field(description="The Agent that must carry the task out.")
    environment: Name = Field(description="The Environment being promoted into.")
    release: TaskRelease = Field(description="The Release being deployed.")
    namespace: Annotated[str, Field(pattern=DNS_LABEL, max_length=63)] = Field(
        description="The namespace in the agent's cluster."
    )
    components: list[Component] = Field(
        min_length=1,
        max_length=64,
        description="Each image, pinned by digest, and the workload container it goes into.",
    )
    deadline: datetime = Field(description="When the rollout must have finished.")
    rollback_on_failure: bool = Field(
        default=True,
        description="Put the previous images back when the rollout fails or times out.",
    )
    attempt: int = Field(default=1, ge=1, description="Which attempt of the promotion.")
    replaces: TaskName | None = Field(
        default=None,
        description="The task this one takes over (its agent was revoked or deleted mid-task).",
    )
    previous_images: list[TaskImage] = Field(
        default_factory=list,
        max_length=64,
        description="What ran before, as the replaced task's agent recorded it (a rollback "
        "restores these, not what that agent may have applied already).",
    )
    rollback: TaskRollback | None = Field(
        default=None,
        description="Set when this task rolls an agent's cluster back after the promotion "
        "failed there (its components are the images that ran before).",
    )


class TaskReplacement(StrictModel):
    task: TaskName = Field(description="The task that took over.")
    agent: Name = Field(description="The agent it went to.")


class AgentTaskStatus(StrictModel):
    phase: TaskPhase = Field(
        default="Pending",
        description="Pending, Acknowledged (the agent took it), Running (it applied the "
        "images and follows the rollout), Succeeded or Failed.",
    )
    message: Annotated[str, Field(max_length=2048)] = Field(
        default="", description="What the agent last reported, for people."
    )
    certificate_serial: Annotated[str, Field(max_length=128)] | None = Field(
        default=None, description="The serial of the certificate the agent acknowledged with."
    )
    previous_images: list[TaskImage] = Field(
        default_factory=list,
        max_length=64,
        description="What ran before the task, per component (what a rollback restores).",
    )
    rolled_back: bool = Field(default=False, description="The previous images were put back.")
    replaced_by: TaskReplacement | None = Field(
        default=None,
        description="Set by the engine when the agent was revoked or deleted mid-task: the "
        "task that took over and its agent (this one stays Failed).",
    )
    credentials_issued: bool = Field(
        default=False,
        description="The task's one credentials answer went to its agent; another request "
        "for it is refused as a replay. Set also when that answer held no credentials (the "
        "Environment has none for its allowedRegistries): true does not mean a password went "
        "out, and a copy of the agent's session asking is caught either way.",
    )
    credentials_request: Annotated[str, Field(pattern=SHA256_HEX)] | None = Field(
        default=None,
        description="SHA-256 of the agent's certificate fingerprint and the key of the request "
        "that got the credentials: only that request, repeated after its answer was lost, "
        "gets them again.",
    )
    acknowledged_at: datetime | None = Field(default=None, description="When it was taken.")
    finished_at: datetime | None = Field(default=None, description="When it ended.")
    conditions: list[Condition] = Field(
        default_factory=list, max_length=8, description="Standard conditions (Ready when done)."
    )


AGENT_TASK = Kinds.register(
    KindInfo(
        kind="AgentTask",
        plural="agenttasks",
        singular="agenttask",
        scope="Namespaced",
        short_names=("atask",),
        spec=AgentTaskSpec,
        status=AgentTaskStatus,
        description="One deployment an agent carries out in its own cluster.",
        spec_validations=(
            {"rule": "self == oldSelf", "message": "an AgentTask is immutable once made"},
        ),
        printer_columns=(
            PrinterColumn("Agent", ".spec.agent"),
            PrinterColumn("Environment", ".spec.environment"),
            PrinterColumn("Release", ".spec.release.name"),
            PrinterColumn("Phase", ".status.phase"),
            PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        ),
    )
)
