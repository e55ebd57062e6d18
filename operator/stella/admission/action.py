"""Action admission: a person's request to promote, clear a halt, suspend or resume.

CREATE is refused unless the actor was stamped from userInfo (admission.identity), the
person holds the action's verb on the Environment (admission.authz), the Environment
exists, and — for Promote — the Release exists, targets the Environment, is bound by UID
and spec digest, and the Environment does not promote by itself. An Action never changes.
"""

from __future__ import annotations

from stella.admission._util import (
    clip,
    environment_spec,
    mapping,
    parse_model,
    schema_message,
    spec_of,
)
from stella.admission.authz import verb_denied
from stella.admission.base import (
    ACTION_IMMUTABLE,
    ACTION_NOT_TARGETED,
    ACTION_NOTHING_TO_DO,
    ACTION_UNAUTHORIZED,
    ACTION_UNKNOWN_ENVIRONMENT,
    ACTION_UNKNOWN_RELEASE,
    IDENTITY_TAMPERING_SIGNAL,
    SCHEMA,
    SECRET_LITERAL,
    AdmissionPolicy,
    Request,
    Snapshot,
    Verdict,
    allow,
    deny,
)
from stella.admission.identity import identity_changes, recorded_at_create
from stella.models.action import VERB_OF_ACTION, ActionSpec
from stella.secrets.refs import looks_like_secret

_WORDS = {
    "Promote": "promote into",
    "ClearHalt": "clear the halt of",
    "Suspend": "suspend",
    "Resume": "resume",
}


def validate_action(req: Request, snap: Snapshot, policy: AdmissionPolicy) -> Verdict:
    if req.operation == "CREATE":
        return _create(req, snap, policy)
    if req.operation == "UPDATE":
        changed = identity_changes(req.old, req.obj)
        if changed or spec_of(req.old) != spec_of(req.obj):
            return deny(
                ACTION_IMMUTABLE,
                f"{', '.join(changed) or 'spec'} changed: an Action is a record of one "
                "person's request and never changes; create a new Action instead",
                IDENTITY_TAMPERING_SIGNAL if changed else None,
            )
    return allow()


def _create(req: Request, snap: Snapshot, policy: AdmissionPolicy) -> Verdict:
    parsed = parse_model(ActionSpec, spec_of(req.obj))
    if not isinstance(parsed, ActionSpec):
        return deny(SCHEMA, schema_message("Action", parsed))
    spec = parsed
    stamped = recorded_at_create(req, snap)
    if stamped is not None:
        return stamped
    if spec.reason and looks_like_secret(spec.reason):
        return deny(
            SECRET_LITERAL,
            "spec.reason looks like a credential; remove it: an Action is kept as evidence "
            "and must never hold a secret",
        )
    env_name = spec.environment
    env = environment_spec(snap, env_name)
    if env is None:
        known = ", ".join(sorted(snap.environments)[:20]) or "none"
        return deny(
            ACTION_UNKNOWN_ENVIRONMENT,
            clip(
                f"Environment {env_name} does not exist (existing: {known}); fix spec.environment"
            ),
        )
    what = f"{_WORDS[spec.action]} {env_name}"
    if spec.action == "Promote":
        what = f"promote {spec.release} into {env_name}"
    denied = verb_denied(
        req, policy, VERB_OF_ACTION[spec.action], env_name, ACTION_UNAUTHORIZED, what
    )
    if denied is not None:
        return denied
    if spec.action != "Promote" or spec.release is None:
        return allow()
    ns, _, name = spec.release.partition("/")
    release = snap.releases.get((ns, name))
    if release is None:
        return deny(
            ACTION_UNKNOWN_RELEASE,
            f"Release {spec.release} does not exist: fix spec.release (NAMESPACE/NAME; "
            f"kubectl get rel -n {ns} lists them)",
        )
    targets = mapping(spec_of(release)).get("environments")
    if not isinstance(targets, list) or env_name not in targets:
        listed = ", ".join(str(t) for t in targets or [])
        return deny(
            ACTION_NOT_TARGETED,
            clip(f"Release {spec.release} does not target {env_name} (it targets {listed})"),
        )
    if not isinstance(env, str) and env.auto_promote:
        return deny(
            ACTION_NOTHING_TO_DO,
            f"{env_name} promotes automatically (autoPromote is not false): there is nothing "
            f"to promote; {spec.release} enters {env_name} once its gates pass "
            f"(stella status {spec.release})",
        )
    return allow()
