"""Environment: one stage of the promotion path (cluster-scoped)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, WithJsonSchema, model_validator

from stella.models.common import (
    DNS_LABEL,
    REGISTRY_HOST,
    Condition,
    Duration,
    LabelSelector,
    Name,
    NamespaceName,
    StrictModel,
    Username,
    VaultRef,
    vault_ref_rule,
)
from stella.models.plugin import PluginStep
from stella.models.resource import KindInfo, Kinds, PrinterColumn
from stella.models.supply_chain import PassportPolicy, ProvenancePolicy, SignaturePolicy
from stella.models.verification import VerificationPolicy

WorkloadKind = Literal["Deployment", "StatefulSet", "DaemonSet"]

# RFC 3339 with the offset optional: a time without one is wall-clock time in the freeze
# window's timeZone (policy.freeze reads it so), which `format: date-time` would refuse.
WALL_OR_OFFSET_TIME = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?$"
)
WallOrOffsetTime = Annotated[
    datetime,
    WithJsonSchema({"type": "string", "pattern": WALL_OR_OFFSET_TIME, "maxLength": 40}),
]


class WorkloadRef(StrictModel):
    """The workload and container a component's image goes into."""

    kind: WorkloadKind = Field(
        default="Deployment",
        description="Deployment (the default), StatefulSet or DaemonSet.",
    )
    name: Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=63)] = Field(
        description="The workload's metadata.name in each target namespace, e.g. web "
        "(kubectl get deploy -n NAMESPACE)."
    )
    container: Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=63)] = Field(
        description="The container whose image Stella sets, as named in the pod template "
        "(kubectl get deploy web -o jsonpath='{.spec.template.spec.containers[*].name}')."
    )


class ComponentOverride(StrictModel):
    """A target's own mapping of one component to a workload, when it differs."""

    component: Annotated[str, Field(pattern=DNS_LABEL, max_length=63)] = Field(
        description="The name of a Release component (spec.components[].name) that this "
        "target maps differently."
    )
    workload: WorkloadRef = Field(
        description="The workload and container to update in this target instead of the "
        "one the Release names."
    )


# A Helm parameter name as `helm --set` takes it: web.image, images[0].ref, web_image.
HELM_PARAMETER = r"^[A-Za-z0-9_.\[\]-]+$"


class HelmImageParameter(StrictModel):
    """The Helm parameter of an Application's chart that holds one component's image."""

    component: Annotated[str, Field(pattern=DNS_LABEL, max_length=63)] = Field(
        description="A Release component (spec.components[].name)."
    )
    parameter: Annotated[str, Field(pattern=HELM_PARAMETER, max_length=253)] = Field(
        description="The Helm parameter Stella sets to the component's pinned image "
        "(repo@sha256:<digest>), e.g. web.image: what Argo CD Image Updater's "
        "helm.image-spec names."
    )


class ApplicationTarget(StrictModel):
    """An Argo CD Application that deploys this Environment (issue 14)."""

    name: Name = Field(description="The Application's name, e.g. shop-staging.")
    namespace: NamespaceName = Field(
        default="argocd", description="The Application's namespace (default argocd)."
    )
    helm_parameters: list[HelmImageParameter] = Field(
        default_factory=list,
        max_length=50,
        description="For an Application whose source is a Helm chart: the parameter "
        "(spec.source.helm.parameters) holding each component's image. Stella then sets "
        "these instead of the kustomize image override, and every component of a Release "
        "must have one. In a managed namespace the API server refuses an unpinned value in "
        "a parameter named here (docs/argocd.md).",
    )


class Target(StrictModel):
    """Where an environment deploys: a namespace here, or agents elsewhere."""

    model_config = StrictModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.__namespace__) != has(self.application)",
                    "message": "a target names either a namespace (in this cluster, or with "
                    "agentSelector in the agents' clusters) or an Argo CD application",
                },
                {
                    "rule": "!has(self.application) || !has(self.agentSelector)",
                    "message": "an application target takes no agentSelector",
                },
            ]
        }
    }

    namespace: NamespaceName | None = Field(
        default=None,
        description="The namespace whose workloads Stella updates: in this cluster (it must "
        "exist), or, with agentSelector, in the agent's own cluster.",
    )
    agent_selector: LabelSelector | None = Field(
        default=None,
        description="Deploy through an agent instead (kubectl get agents): one Ready agent "
        "whose labels match, with the deploy.kubernetes capability, carries the deployment "
        "out in its own cluster's namespace (docs/agents.md).",
    )
    application: ApplicationTarget | None = Field(
        default=None,
        description="Deploy through an Argo CD Application instead: Stella sets its "
        "kustomize image override and waits until Argo CD reports it Synced and Healthy "
        "(docs/argocd.md).",
    )
    overrides: list[ComponentOverride] = Field(
        default_factory=list,
        max_length=50,
        description="Per-component workload mappings for this target only, when its "
        "workloads are named differently from what the Release says.",
    )

    @model_validator(mode="after")
    def _one_kind_of_target(self) -> Target:
        if (self.namespace is None) == (self.application is None):
            raise ValueError(
                "a target names either a namespace (in this cluster, or with agentSelector "
                "in the agents' clusters) or an Argo CD application"
            )
        if self.application is not None and self.agent_selector is not None:
            raise ValueError("an application target takes no agentSelector")
        return self


class ApprovalPolicy(StrictModel):
    """Who must approve a Release before it is deployed here."""

    required: Annotated[int, Field(ge=0, le=10)] = Field(
        default=0,
        description="How many distinct people must approve (0-10; 0: no approval needed). "
        "Each person counts once, and never the Release's requester while "
        "preventSelfApproval is true.",
    )
    approver_groups: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list,
        max_length=32,
        description="Groups (as the API server authenticates people, e.g. "
        "release-approvers) whose members' approvals count. Empty: anyone identified "
        "except the requester.",
    )
    prevent_self_approval: bool = Field(
        default=True,
        description="When true (the default), the person who created the Release can "
        "never approve it (separation of duties).",
    )


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

    name: Annotated[str, Field(max_length=63)] | None = Field(
        default=None,
        description="A name for messages, e.g. weekend (else the window is named by its "
        "position, #1).",
    )
    schedule: Annotated[str, Field(min_length=9, max_length=128)] | None = Field(
        default=None,
        description="Recurring windows: a 5-field cron expression (minute hour "
        "day-of-month month day-of-week) read as wall-clock time in timeZone, e.g. "
        "'0 18 * * FRI'; each time it fires starts a window lasting duration. Quote it in "
        "YAML.",
    )
    duration: Duration | None = Field(
        default=None,
        description="Recurring windows: how long each one lasts, as elapsed time in Go "
        "syntax: 90s, 10m, 1h30m, 62h (no days: write 48h).",
    )
    time_zone: Annotated[str, Field(max_length=64)] = Field(
        default="UTC",
        description="The IANA time zone schedule (and a start/end without an offset) is "
        "read in, e.g. Europe/Berlin. Default UTC.",
    )
    start: WallOrOffsetTime | None = Field(
        default=None,
        description="Absolute windows: the first instant frozen (inclusive), e.g. "
        '"2024-12-20T00:00:00" (wall-clock time in timeZone) or with an offset, '
        '"2024-12-20T00:00:00Z" / "2024-12-20T00:00:00+01:00". Quote it in YAML.',
    )
    end: WallOrOffsetTime | None = Field(
        default=None,
        description="Absolute windows: the first instant no longer frozen (exclusive), "
        "written like start.",
    )

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
        if (
            self.start is not None
            and self.end is not None
            # One with an offset, one without: only the time zone can order them, and
            # policy.freeze.validate_freeze_window does (admission refuses it there).
            and (self.start.tzinfo is None) == (self.end.tzinfo is None)
            and self.end <= self.start
        ):
            raise ValueError("a freeze window must end after it starts")
        return self


class RolloutPolicy(StrictModel):
    """How long a deployment may take, and what happens when it fails."""

    timeout: Duration = Field(
        default="10m",
        description="How long the updated workloads may take to become ready before the "
        "deployment counts as Failed: 90s, 10m, 1h30m. Default 10m.",
    )
    rollback_on_failure: bool = Field(
        default=True,
        description="When true (the default), a failed deployment puts back the images "
        "that ran before.",
    )


class EnvironmentSpec(StrictModel):
    """A stage of the promotion path: what must come first, where it deploys, who must
    approve and when nothing may be deployed."""

    model_config = ConfigDict(
        **StrictModel.model_config,
        json_schema_extra={"x-kubernetes-validations": [vault_ref_rule("registryCredentials")]},
    )

    requires: list[Name] = Field(
        default_factory=list,
        max_length=16,
        description="Environments a Release must have been Deployed to before it may enter "
        "this one, e.g. [staging]. This is what orders the promotion path; they must exist.",
    )
    release_namespaces: LabelSelector | None = Field(
        default=None,
        description="Which namespaces' Releases may target this Environment, by namespace "
        "labels, e.g. {matchLabels: {team: shop}}. Unset: Releases from any namespace.",
    )
    targets: list[Target] = Field(
        default_factory=list,
        max_length=32,
        description="Where this Environment deploys: each a namespace in this cluster "
        "(namespace: shop-prod) or agents elsewhere (agentSelector).",
    )
    allowed_registries: list[Annotated[str, Field(pattern=REGISTRY_HOST, max_length=253)]] = Field(
        default_factory=list,
        max_length=32,
        description="Registry hosts (with port if any, e.g. registry.example.com or "
        "127.0.0.1:5000) that Releases targeting this Environment may use, and the only "
        "hosts registryCredentials are sent to. Empty: any registry, and then "
        "registryCredentials is refused.",
    )
    registry_credentials: VaultRef | None = Field(
        default=None,
        description="A Vault reference vault:<mount>/<path>#<key> to the registry password "
        "or token (the same secret holds username), e.g. vault:secret/registry/prod#password. "
        "Sent only to the registries listed in allowedRegistries, which must not be empty. "
        "Never the secret itself; see docs/secrets.md.",
    )
    approvals: ApprovalPolicy = Field(
        default_factory=ApprovalPolicy,
        description="How many approvals a Release needs here, and from whom.",
    )
    freeze_windows: list[FreezeWindow] = Field(
        default_factory=list,
        max_length=32,
        description="Periods in which nothing is deployed here: recurring (schedule, "
        "duration, timeZone) or absolute (start, end). An invalid window freezes until it "
        "is fixed.",
    )
    auto_promote: bool = Field(
        default=True,
        description="When false, a Release that passes every gate waits (AwaitingPromotion) "
        "until a person promotes it (stella promote RELEASE ENV).",
    )
    rollout: RolloutPolicy = Field(
        default_factory=RolloutPolicy,
        description="The deployment's timeout and whether a failure rolls back.",
    )
    verification: VerificationPolicy | None = Field(
        default=None,
        description="What must hold after a rollout here before a Release counts as "
        "Deployed (and the next Environment may start): a soak time and checks (Prometheus "
        "queries, HTTP GETs). Unset: Deployed once the rollout is available.",
    )
    require_approved_digests: bool = Field(
        default=False,
        description="When true, workloads in this Environment's target namespaces (labelled "
        "stella.io/managed=true) may only run image digests of Releases approved for it.",
    )
    require_signatures: SignaturePolicy | None = Field(
        default=None,
        description="When set, every component's image must carry a signature by one of "
        "these trusted keys or identities (cosign sign --key, or a Sigstore bundle), checked "
        "against the registry before each deploy (docs/supply-chain.md).",
    )
    require_provenance: ProvenancePolicy | None = Field(
        default=None,
        description="When set, every component's image must carry SLSA provenance signed by "
        "a trusted builder key, from an allowed builder and source repository; the source "
        "revision goes into the evidence (docs/supply-chain.md).",
    )
    publish_passport: bool = Field(
        default=False,
        description="When true, after each promotion Stella attaches its passport to every "
        "deployed image, as cosign attaches attestations: a SLSA verification summary and an "
        "approval attestation signed with the evidence key. Needs push access to the "
        "registry (docs/supply-chain.md).",
    )
    require_passport: PassportPolicy | None = Field(
        default=None,
        description="When set, every image must carry Stella's passport for these "
        "Environments (e.g. [staging]), read from the registry before deploy: an approval "
        "made by this or another Stella counts wherever the image goes.",
    )
    rollback_skips_approval: bool = Field(
        default=False,
        description="When true, a rollback (stella rollback ENV) needs no new approvals; "
        "halts, suspension and freeze windows still apply.",
    )
    suspended: bool = Field(
        default=False,
        description="Set true to stop all deployments here (Releases show Halted, reason "
        "EnvironmentSuspended); false to let them go on.",
    )
    plugins: list[PluginStep] = Field(
        default_factory=list,
        max_length=16,
        description="Workflow plugins run in each promotion here, in order: gates before "
        "deploying, steps before and after (docs/plugins.md).",
    )
    report_drift: bool = Field(
        default=False,
        description="When true, report (Event and metric) when a deployed component's tag "
        "no longer points at its pinned digest. Drift is only reported: the pinned digest is "
        "what runs.",
    )


class HaltState(StrictModel):
    """Why the operator halted the Environment; a person clears it once investigated."""

    reason: Annotated[str, Field(max_length=128)] = Field(
        description="Why the operator halted deployments, e.g. DigestMismatch."
    )
    message: Annotated[str, Field(max_length=4096)] = Field(
        default="",
        description="What happened and what to do; clear the halt with stella env clear "
        "ENV --reason ... once investigated.",
    )
    since: datetime = Field(description="When the halt began.")


class HistoryEntry(StrictModel):
    """One finished promotion into this environment (a bounded list, newest first)."""

    release: Annotated[str, Field(max_length=317)] = Field(
        description="The Release deployed, as NAMESPACE/NAME."
    )
    uid: Annotated[str, Field(max_length=64)] | None = Field(
        default=None,
        description="The UID of the Release: a rollback may only name this very Release, "
        "never another created later under the same name.",
    )
    version: Annotated[str, Field(max_length=64)] = Field(description="The Release's spec.version.")
    outcome: Literal["Deployed", "Failed", "RolledBack"] = Field(
        description="Deployed, Failed, or RolledBack (failed and the previous images put back)."
    )
    at: datetime = Field(description="When the promotion finished.")
    attempt: Annotated[int, Field(ge=0)] = Field(
        default=0, description="Which attempt of this Release in this Environment it was."
    )
    approvers: list[Username] = Field(
        default_factory=list,
        max_length=16,
        description="The people whose approvals counted for this promotion.",
    )
    message: Annotated[str, Field(max_length=1024)] = Field(
        default="", description="What happened, for people."
    )


HISTORY_LIMIT = 20


class Suspension(StrictModel):
    """A suspension asked for by a person with an Action (stella env suspend)."""

    by: Username = Field(description="Who suspended, as the API server authenticated them.")
    at: datetime = Field(description="When the API server received the Suspend action.")
    reason: Annotated[str, Field(max_length=1024)] = Field(
        default="", description="Why, as given with the action."
    )
    action: Annotated[str, Field(max_length=253)] = Field(
        default="", description="The Action that suspended the environment."
    )


# spec.requires at its longest: 16 names of 63 characters and the commas between them.
REQUIRES_SHOWN_MAX = 16 * 63 + 15


class EnvironmentStatus(StrictModel):
    """What the operator observes of the Environment."""

    observed_generation: int | None = Field(
        default=None, description="The metadata.generation the operator last acted on."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Standard conditions; Ready is False while the Environment is halted, "
        "suspended or misconfigured, with the reason; Degraded is True while it is halted "
        "or misconfigured (what Argo CD's health check reads, docs/argocd.md).",
    )
    current_release: Annotated[str, Field(max_length=317)] | None = Field(
        default=None,
        description="The Release running here now, as NAMESPACE/NAME.",
    )
    in_flight: Annotated[str, Field(max_length=317)] | None = Field(
        default=None,
        description="The Release being deployed right now, if any (one at a time).",
    )
    halted: HaltState | None = Field(
        default=None,
        description="Set when the operator halted deployments (e.g. a digest mismatch); "
        "nothing is deployed until a person clears it (stella env clear ENV --reason ...).",
    )
    suspended: Suspension | None = Field(
        default=None,
        description="Set while a person's Suspend action holds deployments back; a Resume "
        "action (stella env resume) clears it. spec.suspended is the declarative switch.",
    )
    path: list[Name] = Field(
        default_factory=list,
        max_length=64,
        description="The promotion path up to this Environment, in order (from requires).",
    )
    # kube-apiserver prints a list column as JSON (["dev","staging"]), and a jsonPath such
    # as .spec.requires[*] prints only its first element: the REQUIRES column reads this.
    requires: Annotated[str, Field(max_length=REQUIRES_SHOWN_MAX)] | None = Field(
        default=None,
        description="spec.requires as one comma-separated line (dev,staging), for the "
        "REQUIRES column of kubectl get env; display only, the operator reads spec.requires.",
    )
    history: list[HistoryEntry] = Field(
        default_factory=list,
        max_length=HISTORY_LIMIT,
        description=f"The last {HISTORY_LIMIT} finished promotions here, newest first "
        "(what stella rollback chooses from).",
    )


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
            PrinterColumn("Requires", ".status.requires", description="prerequisite stages"),
            PrinterColumn("Current", ".status.currentRelease", description="deployed release"),
            PrinterColumn("Halted", ".status.halted.reason"),
            PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status'),
            # Why not Ready (Suspended, Halted, PathInvalid...): without it a suspended
            # Environment was a bare False in `kubectl get env`.
            PrinterColumn(
                "Reason",
                '.status.conditions[?(@.type=="Ready")].reason',
                description="why Ready is what it is",
            ),
            PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        ),
    )
)
