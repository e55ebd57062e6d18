"""Identity at admission: stamp requester/approver from userInfo, refuse every other writer.

The record is the JSON annotation `stella.policy.identity.recorded_identity` reads
(IDENTITY_ANNOTATIONS). At CREATE the mutating webhook writes it from the API server's
authenticated user; a client-written value that differs is refused, not overwritten, so
the attempt is visible (ForgedIdentity). Afterwards nobody but the operator may change or
remove it (IdentityTampering on Releases, ApprovalTampering on Approvals: nobody at all).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stella.admission._util import annotations_of, labels_of, metadata
from stella.admission.base import (
    FORGED_IDENTITY,
    IDENTITY_FORGED,
    IDENTITY_UNSTAMPED,
    AdmissionPolicy,
    Body,
    Request,
    Verdict,
    allow,
    deny,
)
from stella.policy.identity import (
    IDENTITY_ANNOTATIONS,
    Identity,
    Role,
    format_identity,
    parse_identity,
)

IDENTITY_KEYS: frozenset[str] = frozenset(IDENTITY_ANNOTATIONS.values())
ROLE_OF_KIND: Mapping[str, Role] = {"Release": "requester", "Approval": "approver"}


def pointer_token(key: str) -> str:
    """One JSON-pointer reference token (RFC 6901): '~' -> '~0', '/' -> '~1'."""
    return key.replace("~", "~0").replace("/", "~1")


def _how(role: Role) -> str:
    if role == "approver":
        return "remove it and apply again (`stella approve` creates Approvals correctly)"
    return "remove it and apply again"


def forged_claim(
    obj: Body | None, role: Role, user: Identity, policy: AdmissionPolicy
) -> Verdict | None:
    """At CREATE: refuse identity the client wrote itself (labels or annotations).

    The role's own annotation is fine when it records exactly this user (re-applying an
    object that was exported after admission stamped it). The operator may supply it.
    """
    for key in sorted(IDENTITY_KEYS & {k for k in labels_of(obj) if isinstance(k, str)}):
        return _forged(f"metadata.labels[{key}]", role)
    own = IDENTITY_ANNOTATIONS[role]
    ann = annotations_of(obj)
    for key in sorted(IDENTITY_KEYS - {own}):
        if key in ann:
            return _forged(f"metadata.annotations[{key}]", role)
    if own in ann and user.username != policy.operator_username:
        raw = ann[own]
        claimed = parse_identity(raw) if isinstance(raw, str) else None
        if claimed != user:
            return _forged(f"metadata.annotations[{own}]", role)
    return None


def _forged(where: str, role: Role) -> Verdict:
    return deny(
        IDENTITY_FORGED,
        f"{where} was set by the client; identities are recorded by Stella from the API "
        f"server's authenticated user and must not be set: {_how(role)}",
        FORGED_IDENTITY,
    )


def stamp_patch(obj: Body | None, role: Role, user: Identity) -> tuple[dict[str, Any], ...]:
    """JSON-patch ops recording `user` in the role's annotation (creating maps as needed)."""
    key = IDENTITY_ANNOTATIONS[role]
    value = format_identity(user)
    if not isinstance(obj, Mapping) or not isinstance(obj.get("metadata"), Mapping):
        return ({"op": "add", "path": "/metadata", "value": {"annotations": {key: value}}},)
    ann = metadata(obj).get("annotations")
    if not isinstance(ann, Mapping):
        return ({"op": "add", "path": "/metadata/annotations", "value": {key: value}},)
    if ann.get(key) == value:
        return ()
    return ({"op": "add", "path": f"/metadata/annotations/{pointer_token(key)}", "value": value},)


def recorded_at_create(req: Request, role: Role, policy: AdmissionPolicy) -> Verdict | None:
    """At CREATE (validating, after mutation): the record is present and is this user."""
    forged = forged_claim(req.obj, role, req.user, policy)
    if forged is not None:
        return forged
    raw = annotations_of(req.obj).get(IDENTITY_ANNOTATIONS[role])
    if isinstance(raw, str) and parse_identity(raw) is not None:
        return None
    return deny(
        IDENTITY_UNSTAMPED,
        f"the {role} of this {req.kind} was not recorded at admission (annotation "
        f"{IDENTITY_ANNOTATIONS[role]} is missing or malformed); the Stella mutating webhook "
        "must run before this one: check that the MutatingWebhookConfiguration of Stella "
        "is installed and its service is reachable, then apply again",
    )


def identity_changes(old: Body | None, new: Body | None) -> list[str]:
    """Identity annotations/labels added, changed or removed between two versions."""
    changed: list[str] = []
    old_ann, new_ann = annotations_of(old), annotations_of(new)
    old_lab, new_lab = labels_of(old), labels_of(new)
    for key in sorted(IDENTITY_KEYS):
        if old_ann.get(key) != new_ann.get(key):
            changed.append(f"metadata.annotations[{key}]")
        if old_lab.get(key) != new_lab.get(key):
            changed.append(f"metadata.labels[{key}]")
    return changed


def mutate_identity(req: Request, policy: AdmissionPolicy) -> Verdict:
    """Stamp the requester (Release) or approver (Approval) at CREATE."""
    role = ROLE_OF_KIND.get(req.kind)
    if req.operation != "CREATE" or role is None:
        return allow()
    forged = forged_claim(req.obj, role, req.user, policy)
    if forged is not None:
        return forged
    if req.user.username == policy.operator_username:
        raw = annotations_of(req.obj).get(IDENTITY_ANNOTATIONS[role])
        if isinstance(raw, str) and parse_identity(raw) is not None:
            return allow()  # the operator records identities on behalf of people
    return allow(patch=stamp_patch(req.obj, role, req.user))
