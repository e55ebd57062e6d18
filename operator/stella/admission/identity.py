"""Stamps at admission: what only Stella writes on an object, from the API server's word.

At CREATE the mutating webhook writes, as annotations:
- the identity of the person (IDENTITY_ANNOTATIONS): requester of a Release, approver of
  an Approval, actor of an Action, from `userInfo`;
- the binding of an Approval or a Promote Action to one Release (policy.binding): its UID
  and the digest of its exact spec;
- the rollback stamp of a Release that asks to roll an Environment back (policy.rollback);
- on an Approval judged in that same call (admission.approval.admit_approval), what was
  judged (JUDGED_ANNOTATION: `release/environment/decision`). The validating webhook's
  matchCondition skips an Approval whose judged stamp and approver stamp still match the
  final object and the request's user; any other Approval is judged again there.

A client-written value that differs from what Stella would write is refused, not
overwritten, so the attempt is visible (ForgedIdentity); the validating webhook
recomputes every stamp and refuses a CREATE that lacks one. Afterwards nobody — not the
operator either, whose code never needs to — may add, change or remove a stamp or the
rollback request it was computed from. So the engine can tell a stamped request from a
copied one: a copy either carries someone else's stamp (refused at CREATE) or none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stella.admission._util import annotations_of, labels_of, mapping, metadata, spec_of
from stella.admission.base import (
    FORGED_IDENTITY,
    IDENTITY_FORGED,
    IDENTITY_TOO_LONG,
    IDENTITY_UNSTAMPED,
    Body,
    Request,
    Snapshot,
    Verdict,
    allow,
    deny,
)
from stella.models.common import USERNAME_MAX
from stella.policy.binding import (
    BINDING_ANNOTATION,
    binding_of,
    format_binding,
    parse_binding,
)
from stella.policy.identity import IDENTITY_ANNOTATIONS, Role, format_identity, parse_identity
from stella.policy.rollback import (
    ROLLBACK_OF,
    ROLLBACK_STAMP,
    RollbackStamp,
    format_rollback,
    parse_rollback,
)

IDENTITY_KEYS: frozenset[str] = frozenset(IDENTITY_ANNOTATIONS.values())
JUDGED_ANNOTATION = "stella.io/judged"
STAMP_KEYS: frozenset[str] = IDENTITY_KEYS | {
    BINDING_ANNOTATION,
    ROLLBACK_STAMP,
    JUDGED_ANNOTATION,
}
# Requests a client writes at CREATE and nobody changes afterwards (a stamp derives from it).
REQUEST_KEYS: frozenset[str] = frozenset({ROLLBACK_OF})
# Annotations that were once read as requests, before actions were authorized: writing one
# now is an attempt to act without the verb, refused with the way that works.
RETIRED_REQUESTS: Mapping[str, str] = {
    "stella.io/promote": "promotions are Actions authorized by the `promote` verb: run "
    "`stella promote NS/RELEASE ENV`",
    "stella.io/clear-halt": "halts are cleared by Actions authorized by the `clear-halt` verb: "
    "run `stella env clear ENV --reason ...`",
    "stella.io/cleared-by": "who cleared a halt is recorded by Stella from the API server: run "
    "`stella env clear ENV --reason ...`",
}
ROLE_OF_KIND: Mapping[str, Role] = {
    "Release": "requester",
    "Approval": "approver",
    "Action": "actor",
}


def pointer_token(key: str) -> str:
    """One JSON-pointer reference token (RFC 6901): '~' -> '~0', '/' -> '~1'."""
    return key.replace("~", "~0").replace("/", "~1")


def expected_stamps(req: Request, snap: Snapshot) -> dict[str, str]:
    """Every stamp Stella writes on this object at CREATE, computed from the request and
    the objects it names. Pure; junk bodies give fewer stamps, never an exception."""
    role = ROLE_OF_KIND.get(req.kind)
    if role is None:
        return {}
    out = {IDENTITY_ANNOTATIONS[role]: format_identity(req.user)}
    spec = mapping(spec_of(req.obj))
    namespace = req.namespace or str(metadata(req.obj).get("namespace") or "")
    target: Body | None = None
    if req.kind == "Approval":
        release = spec.get("release")
        if isinstance(release, str) and release:
            target = snap.releases.get((namespace, release))
    elif req.kind == "Action" and spec.get("action") == "Promote":
        ref = spec.get("release")
        if isinstance(ref, str) and ref.count("/") == 1:
            ns, _, name = ref.partition("/")
            target = snap.releases.get((ns, name))
    elif req.kind == "Release":
        of = annotations_of(req.obj).get(ROLLBACK_OF)
        envs = spec.get("environments")
        if isinstance(of, str) and isinstance(envs, list) and len(envs) == 1:
            ns, _, name = of.partition("/") if "/" in of else (namespace, "/", of)
            found = snap.releases.get((ns, name))
            uid = metadata(found).get("uid") if found is not None else None
            if isinstance(uid, str) and uid and isinstance(envs[0], str):
                out[ROLLBACK_STAMP] = format_rollback(
                    RollbackStamp(of=f"{ns}/{name}", uid=uid, environment=envs[0])
                )
    if target is not None:
        binding = binding_of(target)
        if binding is not None:
            out[BINDING_ANNOTATION] = format_binding(binding)
    return out


_ROLE_WORDS: Mapping[Role, str] = {
    "requester": "who asks for a Release",
    "approver": "who decides on one",
    "actor": "who acts on one",
}


def unrecordable_user(req: Request) -> Verdict | None:
    """A CREATE whose sender's username is longer than Stella records (USERNAME_MAX):
    refused, never stamped cut short (a cut name could be someone else's) and never left
    to fail later in the engine's status and evidence writes. Kubernetes itself sets no
    limit; a service account's name fits (339 characters at most)."""
    role = ROLE_OF_KIND.get(req.kind)
    if role is None or req.operation != "CREATE":
        return None
    size = len(req.user.username)
    if size <= USERNAME_MAX:
        return None
    return deny(
        IDENTITY_TOO_LONG,
        f"your username is {size} characters long; Stella records {_ROLE_WORDS[role]} in at "
        f"most {USERNAME_MAX} characters: send this {req.kind} as a user with a shorter name "
        "(your identity provider's username claim or prefix, or a service account)",
    )


def _how(kind: str) -> str:
    if kind == "Approval":
        return "remove it and apply again (`stella approve` creates Approvals correctly)"
    if kind == "Action":
        return "remove it and apply again (`stella promote` and `stella env` create Actions)"
    return "remove it and apply again"


def forged_claim(req: Request, expected: Mapping[str, str]) -> Verdict | None:
    """At CREATE: refuse any stamp the client wrote itself that is not exactly Stella's.

    A stamp equal to what Stella writes is fine (re-applying an object exported after
    admission stamped it, by the same person, about the same Release). Nobody is exempt.
    """
    for key in sorted(STAMP_KEYS & {k for k in labels_of(req.obj) if isinstance(k, str)}):
        return _forged(f"metadata.labels[{key}]", req.kind)
    ann = annotations_of(req.obj)
    for key in sorted(STAMP_KEYS & {k for k in ann if isinstance(k, str)}):
        if not _same_stamp(key, ann[key], expected.get(key)):
            return _forged(f"metadata.annotations[{key}]", req.kind)
    return None


def _same_stamp(key: str, raw: object, expected: str | None) -> bool:
    """The same record, however its JSON is formatted (mutation rewrites it canonically)."""
    if expected is None or not isinstance(raw, str):
        return False
    if raw == expected:
        return True
    if key == JUDGED_ANNOTATION:
        return False  # plain text, compared exactly (as the webhook's matchCondition does)
    if key in IDENTITY_KEYS:
        return parse_identity(raw) is not None and parse_identity(raw) == parse_identity(expected)
    if key == BINDING_ANNOTATION:
        return parse_binding(raw) is not None and parse_binding(raw) == parse_binding(expected)
    return parse_rollback(raw) is not None and parse_rollback(raw) == parse_rollback(expected)


def _forged(where: str, kind: str) -> Verdict:
    return deny(
        IDENTITY_FORGED,
        f"{where} was set by the client; identities and the Release a decision is about are "
        f"recorded by Stella from the API server's authenticated request and must not be "
        f"set: {_how(kind)}",
        FORGED_IDENTITY,
    )


def stamp_patch(obj: Body | None, stamps: Mapping[str, str]) -> tuple[dict[str, Any], ...]:
    """JSON-patch ops writing `stamps` as annotations (creating maps as needed)."""
    if not stamps:
        return ()
    if not isinstance(obj, Mapping) or not isinstance(obj.get("metadata"), Mapping):
        return ({"op": "add", "path": "/metadata", "value": {"annotations": dict(stamps)}},)
    ann = metadata(obj).get("annotations")
    if not isinstance(ann, Mapping):
        return ({"op": "add", "path": "/metadata/annotations", "value": dict(stamps)},)
    return tuple(
        {"op": "add", "path": f"/metadata/annotations/{pointer_token(k)}", "value": v}
        for k, v in sorted(stamps.items())
        if ann.get(k) != v
    )


def recorded_at_create(req: Request, snap: Snapshot) -> Verdict | None:
    """At CREATE (validating, after mutation): every stamp present and exactly Stella's.

    The judged stamp is taken as it stands: it only ever lets this webhook be skipped (and
    only where it matches the final object), and where this webhook runs it judges the
    whole Approval again whatever the stamp says."""
    too_long = unrecordable_user(req)
    if too_long is not None:
        return too_long
    expected = expected_stamps(req, snap)
    judged = annotations_of(req.obj).get(JUDGED_ANNOTATION)
    if req.kind == "Approval" and isinstance(judged, str):
        expected[JUDGED_ANNOTATION] = judged
    forged = forged_claim(req, expected)
    if forged is not None:
        return forged
    ann = annotations_of(req.obj)
    for key in sorted(expected):
        if not _same_stamp(key, ann.get(key), expected[key]):
            return deny(
                IDENTITY_UNSTAMPED,
                f"this {req.kind} was not stamped at admission (annotation {key} is missing); "
                "the Stella mutating webhook must run before this one: check that the "
                "MutatingWebhookConfiguration of Stella is installed and its service is "
                "reachable, then apply again",
            )
    return None


def identity_changes(old: Body | None, new: Body | None) -> list[str]:
    """Stamps and stamped requests added, changed or removed between two versions."""
    changed: list[str] = []
    old_ann, new_ann = annotations_of(old), annotations_of(new)
    old_lab, new_lab = labels_of(old), labels_of(new)
    for key in sorted(STAMP_KEYS | REQUEST_KEYS):
        if old_ann.get(key) != new_ann.get(key):
            changed.append(f"metadata.annotations[{key}]")
        if old_lab.get(key) != new_lab.get(key):
            changed.append(f"metadata.labels[{key}]")
    return changed


def retired_request(req: Request) -> Verdict | None:
    """A retired request annotation written (at CREATE, or added/changed at UPDATE)."""
    new, old = annotations_of(req.obj), annotations_of(req.old)
    for key in sorted(RETIRED_REQUESTS):
        if key in new and (req.operation == "CREATE" or new.get(key) != old.get(key)):
            return deny(
                IDENTITY_FORGED,
                f"metadata.annotations[{key}] is not honoured and not allowed: "
                f"{RETIRED_REQUESTS[key]}; remove the annotation",
                FORGED_IDENTITY,
            )
    return None


def mutate_identity(req: Request, snap: Snapshot) -> Verdict:
    """Stamp the person (and the Release a decision is about) at CREATE."""
    if req.operation != "CREATE" or req.kind not in ROLE_OF_KIND:
        return allow()
    too_long = unrecordable_user(req)
    if too_long is not None:
        return too_long
    expected = expected_stamps(req, snap)
    forged = forged_claim(req, expected)
    if forged is not None:
        return forged
    return allow(patch=stamp_patch(req.obj, expected))
