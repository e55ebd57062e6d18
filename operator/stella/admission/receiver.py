"""Receiver admission: a webhook gateway's Receiver may only name Environments that exist
and that its own namespace may release into (their spec.releaseNamespaces), so a
misconfiguration is refused when it is written — not at the first delivery, whose Release
admission would refuse anyway. Checked at CREATE and at every UPDATE of the spec."""

from __future__ import annotations

from stella.admission._util import clip, environment_spec, parse_model, schema_message, spec_of
from stella.admission.base import (
    RECEIVER_NAMESPACE_NOT_ALLOWED,
    RECEIVER_UNKNOWN_ENVIRONMENT,
    SCHEMA,
    AdmissionPolicy,
    Request,
    Snapshot,
    Verdict,
    allow,
    deny,
)
from stella.admission.release import namespace_denial
from stella.models.environment import EnvironmentSpec
from stella.models.receiver import ReceiverSpec


def validate_receiver(req: Request, snap: Snapshot, policy: AdmissionPolicy) -> Verdict:
    if req.operation not in ("CREATE", "UPDATE"):
        return allow()
    if req.operation == "UPDATE" and spec_of(req.old) == spec_of(req.obj):
        return allow()  # status, labels: nothing the gateway acts on changed
    parsed = parse_model(ReceiverSpec, spec_of(req.obj))
    if not isinstance(parsed, ReceiverSpec):
        return deny(SCHEMA, schema_message("Receiver", parsed))
    envs: dict[str, EnvironmentSpec] = {}
    missing, invalid = [], []
    for name in parsed.environments:
        found = environment_spec(snap, name)
        if found is None:
            missing.append(name)
        elif isinstance(found, str):
            invalid.append(f"{name} ({found})")
        else:
            envs[name] = found
    if missing or invalid:
        problems = [f"Environment {n} does not exist" for n in missing]
        problems += [f"Environment {n} is stored with an invalid spec" for n in invalid]
        return deny(
            RECEIVER_UNKNOWN_ENVIRONMENT,
            clip(
                f"{'; '.join(problems)}: this Receiver could never create a Release for it. "
                "Create the Environment first (kubectl get env lists them) or fix "
                "spec.environments"
            ),
        )
    return (
        namespace_denial(
            snap,
            req.namespace or "",
            envs,
            RECEIVER_NAMESPACE_NOT_ALLOWED,
            "put the Receiver in an allowed",
        )
        or allow()
    )
