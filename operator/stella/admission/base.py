"""The admission vocabulary: requests, verdicts, the snapshot protocol, settings, rule ids.

Everything in this package is pure: it is given the pieces of an AdmissionReview request
and an in-memory snapshot of Stella's objects, and returns a Verdict. No kopf, no
Kubernetes client, no clock, no network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from stella.policy.identity import Identity

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
Body = Mapping[str, Any]
ReleaseKey = tuple[str, str]  # (namespace, name)

WORKLOAD_KINDS: frozenset[str] = frozenset(
    {"Pod", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet"}
)
STELLA_KINDS: frozenset[str] = frozenset({"Release", "Approval", "Action", "Environment", "Agent"})

# ---- rule ids (stable: metrics label values, log fields, test expectations) --------------
OK = "ok"
SCHEMA = "schema"
INTERNAL = "internal"
RATELIMIT = "ratelimit"
NOT_SYNCED = "admission.not-synced"
IDENTITY_FORGED = "identity.forged"
IDENTITY_TAMPERING = "identity.tampering"
IDENTITY_UNSTAMPED = "identity.unstamped"
IDENTITY_TOO_LONG = "identity.too-long"
SECRET_LITERAL = "secret.literal"  # noqa: S105 (a rule id)
RELEASE_DIGEST_PINNED = "release.digest-pinned"
RELEASE_IMAGE_INVALID = "release.image-invalid"
RELEASE_UNKNOWN_ENVIRONMENT = "release.unknown-environment"
RELEASE_ENVIRONMENT_INVALID = "release.environment-invalid"
RELEASE_REGISTRY_NOT_ALLOWED = "release.registry-not-allowed"
RELEASE_NAMESPACE_NOT_ALLOWED = "release.namespace-not-allowed"
RELEASE_IMMUTABLE = "release.immutable"
RELEASE_ROLLBACK_INVALID = "release.rollback-invalid"
RELEASE_ROLLBACK_UNAUTHORIZED = "release.rollback-unauthorized"
APPROVAL_UNKNOWN_RELEASE = "approval.unknown-release"
APPROVAL_UNKNOWN_ENVIRONMENT = "approval.unknown-environment"
APPROVAL_ENVIRONMENT_INVALID = "approval.environment-invalid"
APPROVAL_NOT_TARGETED = "approval.not-targeted"
APPROVAL_SELF_APPROVAL = "approval.self-approval"
APPROVAL_REQUESTER_UNKNOWN = "approval.requester-unknown"
APPROVAL_NOT_APPROVER = "approval.not-approver"
APPROVAL_UNAUTHORIZED = "approval.unauthorized"
APPROVAL_DUPLICATE = "approval.duplicate"
APPROVAL_IMMUTABLE = "approval.immutable"
APPROVAL_DELETE = "approval.delete"
ACTION_UNAUTHORIZED = "action.unauthorized"
ACTION_UNKNOWN_ENVIRONMENT = "action.unknown-environment"
ACTION_UNKNOWN_RELEASE = "action.unknown-release"
ACTION_NOT_TARGETED = "action.not-targeted"
ACTION_NOTHING_TO_DO = "action.nothing-to-do"
ACTION_IMMUTABLE = "action.immutable"
ENVIRONMENT_CYCLE = "environment.cycle"
ENVIRONMENT_UNKNOWN_REQUIRES = "environment.unknown-requires"
ENVIRONMENT_FREEZE_WINDOW = "environment.freeze-window"
ENVIRONMENT_LITERAL_SECRET = "environment.literal-secret"  # noqa: S105
ENVIRONMENT_CREDENTIALS_HOSTS = "environment.credentials-hosts"
AGENT_FINGERPRINT = "agent.fingerprint"
AGENT_ENROLLMENT = "agent.enrollment"
WORKLOAD_DIGEST_PINNED = "workload.digest-pinned"
WORKLOAD_DIGEST_NOT_APPROVED = "workload.digest-not-approved"
WORKLOAD_ENVIRONMENT_INVALID = "workload.environment-invalid"
PLUGIN_REFUSED = "plugin.refused"
PLUGIN_REENABLE = "plugin.reenable"
PLUGIN_PUBLISHER_KEY = "plugin.publisher-key"
RELEASE_QUOTA = "release.quota"
RELEASE_LOOP = "release.loop"
RECEIVER_UNKNOWN_ENVIRONMENT = "receiver.unknown-environment"
RECEIVER_NAMESPACE_NOT_ALLOWED = "receiver.namespace-not-allowed"

RULES: tuple[str, ...] = (
    OK,
    SCHEMA,
    INTERNAL,
    RATELIMIT,
    NOT_SYNCED,
    IDENTITY_FORGED,
    IDENTITY_TAMPERING,
    IDENTITY_UNSTAMPED,
    IDENTITY_TOO_LONG,
    SECRET_LITERAL,
    RELEASE_DIGEST_PINNED,
    RELEASE_IMAGE_INVALID,
    RELEASE_UNKNOWN_ENVIRONMENT,
    RELEASE_ENVIRONMENT_INVALID,
    RELEASE_REGISTRY_NOT_ALLOWED,
    RELEASE_NAMESPACE_NOT_ALLOWED,
    RELEASE_IMMUTABLE,
    RELEASE_ROLLBACK_INVALID,
    RELEASE_ROLLBACK_UNAUTHORIZED,
    APPROVAL_UNKNOWN_RELEASE,
    APPROVAL_UNKNOWN_ENVIRONMENT,
    APPROVAL_ENVIRONMENT_INVALID,
    APPROVAL_NOT_TARGETED,
    APPROVAL_SELF_APPROVAL,
    APPROVAL_REQUESTER_UNKNOWN,
    APPROVAL_NOT_APPROVER,
    APPROVAL_UNAUTHORIZED,
    APPROVAL_DUPLICATE,
    APPROVAL_IMMUTABLE,
    APPROVAL_DELETE,
    ACTION_UNAUTHORIZED,
    ACTION_UNKNOWN_ENVIRONMENT,
    ACTION_UNKNOWN_RELEASE,
    ACTION_NOT_TARGETED,
    ACTION_NOTHING_TO_DO,
    ACTION_IMMUTABLE,
    ENVIRONMENT_CYCLE,
    ENVIRONMENT_UNKNOWN_REQUIRES,
    ENVIRONMENT_FREEZE_WINDOW,
    ENVIRONMENT_LITERAL_SECRET,
    ENVIRONMENT_CREDENTIALS_HOSTS,
    AGENT_FINGERPRINT,
    AGENT_ENROLLMENT,
    WORKLOAD_DIGEST_PINNED,
    WORKLOAD_DIGEST_NOT_APPROVED,
    WORKLOAD_ENVIRONMENT_INVALID,
    PLUGIN_REFUSED,
    PLUGIN_REENABLE,
    PLUGIN_PUBLISHER_KEY,
    RELEASE_QUOTA,
    RELEASE_LOOP,
    RECEIVER_UNKNOWN_ENVIRONMENT,
    RECEIVER_NAMESPACE_NOT_ALLOWED,
)

# ---- security signals (logged as security events, counted in a metric) ------------------
SELF_APPROVAL = "SelfApproval"
FORGED_IDENTITY = "ForgedIdentity"
APPROVAL_TAMPERING = "ApprovalTampering"
IDENTITY_TAMPERING_SIGNAL = "IdentityTampering"
UNAUTHORIZED_APPROVER = "UnauthorizedApprover"
UNAPPROVED_DIGEST = "UnapprovedDigest"
UNAUTHORIZED_ACTION = "UnauthorizedAction"
UNTRUSTED_PLUGIN = "UntrustedPlugin"
RELEASE_LOOP_SIGNAL = "ReleaseLoop"

SIGNALS: tuple[str, ...] = (
    SELF_APPROVAL,
    FORGED_IDENTITY,
    APPROVAL_TAMPERING,
    IDENTITY_TAMPERING_SIGNAL,
    UNAUTHORIZED_APPROVER,
    UNAPPROVED_DIGEST,
    UNAUTHORIZED_ACTION,
    UNTRUSTED_PLUGIN,
    RELEASE_LOOP_SIGNAL,
)


@dataclass(frozen=True)
class Request:
    """The parts of an AdmissionReview request the rules need (built by the glue)."""

    operation: Operation
    kind: str  # "Release" | "Approval" | "Environment" | "Agent" | "Pod" | "Deployment" | ...
    namespace: str | None
    name: str | None
    user: Identity  # from userInfo (username, uid, groups)
    obj: Mapping[str, Any] | None  # the new object (None on DELETE)
    old: Mapping[str, Any] | None  # the old object (UPDATE/DELETE)
    dry_run: bool = False


@dataclass(frozen=True)
class Verdict:
    """The answer to one request. `message` says what is wrong and what to do."""

    allowed: bool
    rule: str  # one of RULES
    message: str  # empty when allowed
    warnings: tuple[str, ...] = ()
    security_signal: str | None = None  # one of SIGNALS
    patch: tuple[dict[str, Any], ...] = ()  # JSON-patch ops (mutate only)
    # A refusal that lifts by itself (a rate limit, a quota): answered 429 with this as
    # the Status' retryAfterSeconds.
    retry_after: float | None = None


class Snapshot(Protocol):
    """What admission reads: raw bodies as the API server sent them (ClusterView fits)."""

    @property
    def releases(self) -> Mapping[ReleaseKey, Body]: ...

    @property
    def environments(self) -> Mapping[str, Body]: ...

    @property
    def approvals(self) -> Mapping[ReleaseKey, Body]: ...

    @property
    def namespaces(self) -> Mapping[str, Body]: ...

    def approvals_for(self, key: ReleaseKey, environment: str) -> Sequence[Body]: ...

    # False until the snapshot holds a complete LIST of every kind: rules that need other
    # objects decide nothing before that (fail closed, NOT_SYNCED).
    @property
    def synced(self) -> bool: ...


class Authorizer(Protocol):
    """Kubernetes RBAC, asked for one custom verb on one Environment (SubjectAccessReview
    for `stella.io/environments/<name>`). True/False is the API server's answer; None means
    it could not be asked, and every rule treats None as a refusal (fail closed)."""

    def may(self, user: Identity, verb: str, environment: str) -> bool | None: ...


class DenyAll:
    """The authorizer of a policy nobody configured: nothing is authorized."""

    def may(self, user: Identity, verb: str, environment: str) -> bool | None:
        return None


@dataclass(frozen=True)
class AdmissionPolicy:
    """Admission settings."""

    # The operator's own identity: exempt from rate limits only. It has no power over
    # identities, decisions or requests (it never creates them on anyone's behalf).
    operator_username: str
    # Who may approve/promote/roll back/clear a halt/suspend where (RBAC custom verbs).
    authorizer: Authorizer = field(default_factory=DenyAll)
    # Namespaces labelled <this>=true are Stella-managed for workload admission.
    managed_namespace_label: str = "stella.io/managed"
    # Approvals in a namespace that is being deleted may be deleted by anyone (the namespace
    # controller): otherwise refusing those deletes would leave the namespace Terminating
    # forever. Deleting a namespace is itself a privileged act.
    allow_approval_delete_in_terminating_namespace: bool = True


def allow(warnings: Sequence[str] = (), patch: Sequence[dict[str, Any]] = ()) -> Verdict:
    return Verdict(True, OK, "", tuple(warnings), None, tuple(patch))


def deny(
    rule: str,
    message: str,
    signal: str | None = None,
    warnings: Sequence[str] = (),
) -> Verdict:
    return Verdict(False, rule, message, tuple(warnings), signal)
