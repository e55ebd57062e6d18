"""Approval admission: who may decide, once, on what; and nobody edits or deletes a decision.

CREATE is refused when the Release or Environment does not exist, the Release does not
target the Environment, the person requested the Release (preventSelfApproval; a Release
with no recorded requester fails closed), the person lacks the `approve` verb on the
Environment (RBAC, admission.authz), is in none of the approver groups, or already
decided on this Release for this Environment. One exception to "once": a person who
approved may still reject (withdrawing consent only ever stops a Release, and
`policy.approvals.tally` lets a qualified Reject stop it). An Approval is bound to its
Release's UID and spec digest (policy.binding) and never changes afterwards; it may be
deleted only once it binds nothing (its Release is gone or was re-created), or with its
namespace.

One call at CREATE (issue 12): the mutating webhook admit-approval stamps the approver and
the binding and judges every rule above in the same call (`admit_approval`), then stamps
what it judged (JUDGED_ANNOTATION). The API server calls validate-approval at CREATE only
when the final object is not exactly what was judged, for this user (its matchCondition,
configuration.VALIDATE_APPROVAL_NEEDED): a body the schema must judge first, an identity
the matchCondition cannot write in CEL, or a later mutation. An Approval pays for one
webhook round trip instead of two, and nothing is admitted unjudged.
"""

from __future__ import annotations

from stella.admission._util import (
    clip,
    environment_spec,
    mapping,
    metadata,
    parse_model,
    schema_message,
    spec_of,
)
from stella.admission.authz import verb_denied
from stella.admission.base import (
    APPROVAL_DELETE,
    APPROVAL_DUPLICATE,
    APPROVAL_ENVIRONMENT_INVALID,
    APPROVAL_IMMUTABLE,
    APPROVAL_NOT_APPROVER,
    APPROVAL_NOT_TARGETED,
    APPROVAL_REQUESTER_UNKNOWN,
    APPROVAL_SELF_APPROVAL,
    APPROVAL_TAMPERING,
    APPROVAL_UNAUTHORIZED,
    APPROVAL_UNKNOWN_ENVIRONMENT,
    APPROVAL_UNKNOWN_RELEASE,
    FORGED_IDENTITY,
    IDENTITY_FORGED,
    SCHEMA,
    SECRET_LITERAL,
    SELF_APPROVAL,
    UNAUTHORIZED_APPROVER,
    AdmissionPolicy,
    Body,
    Request,
    Snapshot,
    Verdict,
    allow,
    deny,
)
from stella.admission.configuration import JUDGED_PREFIX
from stella.admission.identity import (
    JUDGED_ANNOTATION,
    expected_stamps,
    forged_claim,
    identity_changes,
    recorded_at_create,
    stamp_patch,
    unrecordable_user,
)
from stella.admission.index import decision_index
from stella.models.action import APPROVE_VERB
from stella.models.approval import ApprovalSpec
from stella.models.environment import EnvironmentSpec
from stella.policy.binding import binding_of, recorded_binding
from stella.policy.identity import recorded_identity
from stella.secrets.refs import looks_like_secret

# Spec fields a client might use to claim an identity (the CRD prunes unknown fields, but
# a claim is an attempt worth refusing loudly, not dropping silently).
IDENTITY_SPEC_FIELDS: frozenset[str] = frozenset(
    {
        "approver",
        "approvedby",
        "approvers",
        "requester",
        "requestedby",
        "user",
        "username",
        "userinfo",
        "identity",
        "decidedby",
        "by",
        "uid",
        "groups",
    }
)
_WITHDRAW = (
    "to withdraw an approval create a Reject for the same Release and Environment "
    "(`stella reject <release> <environment> --comment ...`)"
)


def validate_approval(req: Request, snap: Snapshot, policy: AdmissionPolicy) -> Verdict:
    if req.operation == "CREATE":
        return _create(req, snap, policy)
    if req.operation == "UPDATE":
        return _update(req)
    if req.operation == "DELETE":
        return _delete(req, snap, policy)
    return allow()


def judged_stamp(spec: ApprovalSpec) -> str:
    """What admit_approval judged, as the validating webhook's matchCondition rebuilds it
    from the final object (configuration.JUDGED_CEL; names hold no `/`)."""
    return f"{JUDGED_PREFIX}{spec.release}/{spec.environment}/{spec.decision}"


def admit_approval(req: Request, snap: Snapshot, policy: AdmissionPolicy) -> Verdict:
    """Mutating, at CREATE: refuse a client-written stamp, judge the Approval, and stamp
    the approver, the binding and what was judged, in one answer."""
    if req.operation != "CREATE":
        return allow()
    claimed = _claimed_identity(req) or unrecordable_user(req)
    if claimed is not None:
        return claimed
    stamps = expected_stamps(req, snap)
    parsed = parse_model(ApprovalSpec, spec_of(req.obj))
    if isinstance(parsed, ApprovalSpec):
        stamps[JUDGED_ANNOTATION] = judged_stamp(parsed)
    forged = forged_claim(req, stamps)
    if forged is not None:
        return forged
    if not isinstance(parsed, ApprovalSpec):
        # Not judged here: the API server's schema says what is wrong (it runs after
        # mutation), and validate-approval judges whatever passes it.
        return allow(patch=stamp_patch(req.obj, stamps))
    verdict = _judge(req, snap, policy, parsed, verb_asked_later=True)
    if not verdict.allowed:
        return verdict
    return allow(verdict.warnings, patch=stamp_patch(req.obj, stamps))


def _claimed_identity(req: Request) -> Verdict | None:
    for key in mapping(spec_of(req.obj)):
        if isinstance(key, str) and key.lower() in IDENTITY_SPEC_FIELDS:
            return deny(
                IDENTITY_FORGED,
                f"spec.{key[:64]} is not a field of Approval: the approver is recorded by "
                "Stella from the API server's authenticated user and must not be set; remove "
                "it and apply again (`stella approve` creates Approvals correctly)",
                FORGED_IDENTITY,
            )
    return None


def _create(req: Request, snap: Snapshot, policy: AdmissionPolicy) -> Verdict:
    claimed = _claimed_identity(req)
    if claimed is not None:
        return claimed
    stamped = recorded_at_create(req, snap)
    if stamped is not None:
        return stamped
    parsed = parse_model(ApprovalSpec, spec_of(req.obj))
    if not isinstance(parsed, ApprovalSpec):
        return deny(SCHEMA, schema_message("Approval", parsed))
    return _judge(req, snap, policy, parsed)


def _judge(
    req: Request,
    snap: Snapshot,
    policy: AdmissionPolicy,
    spec: ApprovalSpec,
    *,
    verb_asked_later: bool = False,
) -> Verdict:
    """Every rule of a decision: the Environment and Release exist and match, no
    self-approval, the `approve` verb, an approver group, no second decision.

    verb_asked_later (admit-approval): an Approval that passes every other rule is
    admitted here without asking for the verb, because the API server asks its own
    authorizer in validate-approval's matchCondition and calls that webhook, which judges
    it all again, when the verb is missing (configuration.VALIDATE_APPROVAL_NEEDED). One
    SubjectAccessReview fewer in every Approval. A rule after the verb that refuses first
    asks for it, so a request failing both is refused for the verb, as always."""
    if spec.comment and looks_like_secret(spec.comment):
        return deny(
            SECRET_LITERAL,
            "spec.comment looks like a credential; remove it: an Approval is kept as evidence "
            "and must never hold a secret",
        )
    namespace = req.namespace or str(metadata(req.obj).get("namespace", ""))
    rel, env_name = spec.release, spec.environment
    env = environment_spec(snap, env_name)
    if env is None:
        return deny(
            APPROVAL_UNKNOWN_ENVIRONMENT,
            f"Environment {env_name} does not exist: fix spec.environment (kubectl get "
            "environments lists them)",
        )
    if isinstance(env, str):
        return deny(
            APPROVAL_ENVIRONMENT_INVALID,
            clip(
                f"Environment {env_name} is stored with an invalid spec ({env}); it cannot "
                f"be approved into until it is fixed"
            ),
        )
    release = snap.releases.get((namespace, rel))
    if release is None:
        return deny(
            APPROVAL_UNKNOWN_RELEASE,
            f"Release {rel} does not exist in namespace {namespace}: fix spec.release, or "
            "create the Approval in the Release's namespace",
        )
    targets = mapping(spec_of(release)).get("environments")
    if not isinstance(targets, list) or env_name not in targets:
        return deny(
            APPROVAL_NOT_TARGETED,
            f"Release {rel} does not target Environment {env_name}: fix spec.environment "
            f"(Release {rel} targets {', '.join(str(t) for t in targets or [])})",
        )
    who = req.user.username
    if env.approvals.prevent_self_approval:
        requester = recorded_identity(release, "requester")
        if requester is None:
            return deny(
                APPROVAL_REQUESTER_UNKNOWN,
                f"the requester of Release {rel} was not recorded at admission, so "
                "self-approval cannot be ruled out; recreate the Release (it is stamped "
                "when created through Stella's admission)",
            )
        if req.user.same_person(requester):
            what = (
                "to stop your own Release, ask an approver to reject it, or create a newer "
                "Release: it supersedes this one wherever it has not started deploying"
                if spec.decision == "Reject"
                else "ask another approver"
            )
            return deny(
                APPROVAL_SELF_APPROVAL,
                f"{who} requested Release {rel} and may not decide on it for "
                f"{env_name} (preventSelfApproval); {what}",
                SELF_APPROVAL,
            )
    refused = _after_the_verb(req, snap, env, spec, namespace, release)
    if refused is not None or not verb_asked_later:  # the verb comes first, as always
        verb = "approve" if spec.decision == "Approve" else "reject"
        denied = verb_denied(
            req,
            policy,
            APPROVE_VERB,
            env_name,
            APPROVAL_UNAUTHORIZED,
            f"{verb} Release {namespace}/{rel} for {env_name}",
        )
        if denied is not None:
            return denied
    if refused is not None:
        return refused
    return allow(_late_warning(release, rel, env_name))


def _after_the_verb(
    req: Request,
    snap: Snapshot,
    env: EnvironmentSpec,
    spec: ApprovalSpec,
    namespace: str,
    release: Body,
) -> Verdict | None:
    """The rules judged after the `approve` verb: an approver group, no second decision."""
    who, env_name = req.user.username, spec.environment
    groups = env.approvals.approver_groups
    if groups and not req.user.in_any(groups):
        return deny(
            APPROVAL_NOT_APPROVER,
            clip(
                f"{who} is not in an approver group of Environment {env_name} "
                f"({' or '.join(groups)}); ask a member of {' or '.join(groups)} to decide"
            ),
            UNAUTHORIZED_APPROVER,
        )
    return _duplicate(req, snap, namespace, spec.release, env_name, spec.decision, release)


def _duplicate(
    req: Request,
    snap: Snapshot,
    namespace: str,
    rel: str,
    env_name: str,
    decision: str,
    release: object,
) -> Verdict | None:
    """A second decision by one person on one Release for one Environment. Only decisions
    bound to THIS Release count: one made on an earlier Release of the same name (deleted
    and re-created) or before bindings existed (chart 0.1.0) decides nothing, so it must
    not stop its author from deciding on the Release that is here now."""
    own_name = req.name or metadata(req.obj).get("name")
    current = binding_of(mapping(release))
    for name, prior, prior_decision, bound in decision_index(snap).decisions(
        namespace, rel, env_name
    ):
        if own_name and name == own_name:
            continue
        if prior is None or not req.user.same_person(prior):
            continue
        if current is not None and bound != current:
            continue
        if decision == "Reject" and prior_decision == "Approve":
            continue  # withdrawing consent is always possible
        after = (
            "a rejection is final for this Release: a new version needs a new Release"
            if prior_decision == "Reject"
            else _WITHDRAW
        )
        return deny(
            APPROVAL_DUPLICATE,
            f"{req.user.username} already decided on Release {rel} for {env_name} "
            f"(Approval {name}: {prior_decision}); each person decides once and an Approval "
            f"cannot be changed; {after}",
        )
    return None


def _late_warning(release: object, rel: str, env_name: str) -> list[str]:
    progress = mapping(mapping(release).get("status")).get("environments")
    if not isinstance(progress, list):
        return []
    for entry in progress:
        entry_map = mapping(entry)
        if entry_map.get("name") == env_name and entry_map.get("phase") in {
            "Deployed",
            "Failed",
            "Rejected",
            "Superseded",
        }:
            return [
                f"Release {rel} is already {entry_map.get('phase')} in {env_name}; "
                "this decision is recorded but changes nothing"
            ]
    return []


def _update(req: Request) -> Verdict:
    changed = identity_changes(req.old, req.obj)
    if changed:
        return deny(
            APPROVAL_IMMUTABLE,
            f"{', '.join(changed)} changed: the approver of an Approval is recorded at "
            f"creation and never changes, not even by an operator; {_WITHDRAW}",
            APPROVAL_TAMPERING,
        )
    if spec_of(req.old) != spec_of(req.obj):
        return deny(
            APPROVAL_IMMUTABLE,
            f"an Approval is immutable once made: spec cannot change; {_WITHDRAW}, or "
            "create a new Approval",
            APPROVAL_TAMPERING,
        )
    old_meta, new_meta = metadata(req.old), metadata(req.obj)
    for field in ("finalizers", "ownerReferences"):
        if old_meta.get(field) != new_meta.get(field):
            # Nobody needs to: a finalizer could hold a namespace in Terminating, an owner
            # reference would let the garbage collector delete a decision.
            return deny(
                APPROVAL_IMMUTABLE,
                f"metadata.{field} of an Approval never changes; {req.user.username} may "
                "not change it: revert the change",
                APPROVAL_TAMPERING,
            )
    return allow()


def _delete(req: Request, snap: Snapshot, policy: AdmissionPolicy) -> Verdict:
    namespace = req.namespace or str(metadata(req.old).get("namespace", ""))
    if policy.allow_approval_delete_in_terminating_namespace and _terminating(snap, namespace):
        return allow()
    release = mapping(spec_of(req.old)).get("release")
    current = snap.releases.get((namespace, release)) if isinstance(release, str) else None
    binding = recorded_binding(mapping(req.old))
    if current is None or binding is None or not binding.matches(current):
        return allow()  # it binds nothing any more: its Release is gone or was re-created
    return deny(
        APPROVAL_DELETE,
        f"Approvals are evidence of a decision and cannot be deleted by {req.user.username} "
        f"while Release {namespace}/{release} exists; {_WITHDRAW}",
        APPROVAL_TAMPERING,
    )


def _terminating(snap: Snapshot, namespace: str) -> bool:
    body = snap.namespaces.get(namespace)
    if body is None:
        return False
    if metadata(body).get("deletionTimestamp"):
        return True
    return mapping(mapping(body).get("status")).get("phase") == "Terminating"
