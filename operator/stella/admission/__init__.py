"""Admission rules (issue #4): pure functions from an AdmissionReview request and an
in-memory snapshot to a Verdict. No kopf, no Kubernetes client, no I/O; the webhook glue
in stella.handlers builds a Request, calls validate()/mutate(), and answers.

Every rule, by its stable id (RULES; a Verdict names one, metrics label by it):

ok                            admitted
schema                        the body does not parse as the kind's spec (first error)
internal                      a rule failed unexpectedly: refused (fail closed), logged
ratelimit                     too many requests from one identity (ratelimit.py)
admission.not-synced          the view is not synced yet: nothing needing other objects is
                              decided (fail closed; retry in seconds)
identity.forged               the client wrote a stamp: an identity (annotation, label, spec
                              field), the Release a decision binds to, or a rollback stamp
identity.tampering            a stamp or a rollback request changed after CREATE (by anyone)
identity.unstamped            CREATE without the stamps the mutating webhook records
identity.too-long             CREATE by a username longer than Stella records (1,024 characters)
secret.literal                a free-text field (description, comment) looks like a credential
release.digest-pinned         an image is not repo@sha256:<64 hex>
release.image-invalid         an image reference that does not parse
release.unknown-environment   a target Environment does not exist
release.environment-invalid   a target Environment is stored with an invalid spec (fail closed)
release.registry-not-allowed  an image's registry is not in a target's allowedRegistries
release.namespace-not-allowed the namespace does not match a target's releaseNamespaces
release.immutable             spec changed after creation
release.rollback-invalid      a rollback Release (stella.io/rollback-of) that targets more than
                              one Environment, names a Release never Deployed there (by UID,
                              from the Environment's history), or changes its components
release.rollback-unauthorized the person lacks the `rollback` verb on the Environment
approval.unknown-release      no such Release in the Approval's namespace
approval.unknown-environment  no such Environment
approval.environment-invalid  the Environment is stored with an invalid spec (fail closed)
approval.not-targeted         the Release does not target the Environment
approval.self-approval        the requester decides on their own Release (preventSelfApproval)
approval.requester-unknown    no recorded requester while preventSelfApproval (fail closed)
approval.not-approver         the person is in none of the Environment's approverGroups
approval.unauthorized         the person lacks the `approve` verb on the Environment (RBAC)
approval.duplicate            the person already decided (an Approve may still be withdrawn
                              by a Reject)
approval.immutable            spec, approver, finalizers or ownerReferences changed
approval.delete               an Approval deleted while it still binds its Release
action.unauthorized           the person lacks the action's verb on the Environment (promote,
                              clear-halt, suspend), or RBAC could not be asked (fail closed)
action.unknown-environment    the Action names an Environment that does not exist
action.unknown-release        a Promote names a Release that does not exist
action.not-targeted           a Promote names a Release that does not target the Environment
action.nothing-to-do          a Promote into an Environment that promotes automatically
action.immutable              an Action's spec or stamps changed
environment.cycle             spec.requires makes a cycle
environment.unknown-requires  spec.requires names an Environment that does not exist
environment.freeze-window     a freeze window with a bad cron, time zone or duration
environment.literal-secret    registryCredentials is not a vault: reference
environment.credentials-hosts registryCredentials set and allowedRegistries empty: sent to no one
agent.fingerprint             certificateFingerprint is not 64 lowercase hex
agent.enrollment              a registration token valid for more than 24 hours
workload.digest-pinned        a container image in a managed namespace is not pinned
workload.digest-not-approved  a digest no Release is Deploying/Deployed with in an Environment
                              that targets the namespace with requireApprovedDigests
workload.environment-invalid  such an Environment is stored with an invalid spec (fail closed)
plugin.refused                a Plugin whose signed manifest is unsigned, altered, signed by no
                              trusted PluginPublisher, or invalid (admission/plugin.py)
plugin.reenable               a re-enable of a quarantined Plugin not made by the sender in
                              their own name, not naming its quarantine, or without the
                              `reenable` verb on plugins/NAME; a quarantined Plugin deleted
                              without that verb
plugin.publisher-key          a PluginPublisher key that is not an ECDSA P-256 public key
release.quota                 the namespace already holds its quota of unfinished Releases
                              (T10; the release-create policy in the API server, 403)
release.loop                  the same Release created again and again in one namespace
                              within the loop window (T10; that policy, 403; the operator
                              raises ReleaseLoop when it publishes the loop)
receiver.unknown-environment  a Receiver names an Environment that does not exist (or one
                              stored with an invalid spec: fail closed)
receiver.namespace-not-allowed a Receiver's namespace may not release into one of its
                              Environments (their releaseNamespaces)

On a Release CREATE, release.unknown-environment, release.environment-invalid,
release.namespace-not-allowed, release.registry-not-allowed, release.quota and release.loop
are decided inside the API server (ValidatingAdmissionPolicy release-create.stella.io, from
the parameter release_params.py computes); the webhook is called only for what that
policy cannot decide (configuration.VALIDATE_RELEASE_NEEDED) and then applies its own
rules as before.

Security signals (Verdict.security_signal, SIGNALS): SelfApproval, ForgedIdentity,
ApprovalTampering, IdentityTampering, UnauthorizedApprover, UnapprovedDigest,
UnauthorizedAction, UntrustedPlugin, ReleaseLoop.
"""

from stella.admission.base import (
    RULES,
    SIGNALS,
    STELLA_KINDS,
    WORKLOAD_KINDS,
    AdmissionPolicy,
    Operation,
    Request,
    Snapshot,
    Verdict,
)
from stella.admission.ratelimit import RateLimiter, TokenBucket, ratelimited
from stella.admission.review import mutate, rate_limited_call, validate

__all__ = [
    "RULES",
    "SIGNALS",
    "STELLA_KINDS",
    "WORKLOAD_KINDS",
    "AdmissionPolicy",
    "Operation",
    "RateLimiter",
    "Request",
    "Snapshot",
    "TokenBucket",
    "Verdict",
    "mutate",
    "rate_limited_call",
    "ratelimited",
    "validate",
]
