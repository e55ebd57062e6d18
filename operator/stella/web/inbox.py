"""Who may decide what now: admission's own Approval rule, asked for one person.

The console never keeps a second copy of the separation-of-duties rules. To know whether
a person may approve a Release for an Environment, it builds the Approval they would
create, as the mutating webhook would stamp it, and runs admission's validating rule
(`stella.admission.approval.validate_approval`) over the console's view with an
Authorizer that asks the API server about that person only. An allowed verdict offers the
buttons; a refusal shows admission's own message (self-approval, not an approver, already
decided, no `approve` verb). The API server still decides the real request. Pure: the
view and the authorizer are given.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from stella.admission.approval import validate_approval
from stella.admission.base import AdmissionPolicy, Authorizer, Request, Snapshot, Verdict
from stella.admission.identity import expected_stamps
from stella.policy.identity import Identity

WAITING = "WaitingForApproval"


@dataclass(frozen=True)
class Decidable:
    """One Release waiting in one Environment, and whether this person may decide."""

    namespace: str
    release: str
    version: str
    environment: str
    message: str  # the operator's word on what is missing
    verdict: Verdict

    @property
    def may_decide(self) -> bool:
        return self.verdict.allowed


def may_decide(
    snap: Snapshot,
    person: Identity,
    authorizer: Authorizer,
    namespace: str,
    release: str,
    environment: str,
    decision: str = "Approve",
) -> Verdict:
    """admission's verdict on `person` creating this Approval now."""
    obj: dict[str, Any] = {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Approval",
        "metadata": {"namespace": namespace, "generateName": f"{release}-"},
        "spec": {"release": release, "environment": environment, "decision": decision},
    }
    draft = Request("CREATE", "Approval", namespace, None, person, obj, None)
    obj["metadata"]["annotations"] = expected_stamps(draft, snap)
    req = Request("CREATE", "Approval", namespace, None, person, obj, None, dry_run=True)
    policy = AdmissionPolicy(operator_username="", authorizer=authorizer)
    return validate_approval(req, snap, policy)


def waiting(
    snap: Snapshot, releases: list[Mapping[str, Any]]
) -> Iterator[tuple[str, str, str, str, str]]:
    """(namespace, release, version, environment, message) of every Environment where a
    Release waits for approval."""
    for body in releases:
        meta = body.get("metadata") or {}
        status = body.get("status") or {}
        for entry in status.get("environments") or []:
            if isinstance(entry, Mapping) and entry.get("phase") == WAITING:
                yield (
                    str(meta.get("namespace") or ""),
                    str(meta.get("name") or ""),
                    str((body.get("spec") or {}).get("version") or ""),
                    str(entry.get("name") or ""),
                    str(entry.get("message") or ""),
                )


def inbox(
    snap: Snapshot,
    person: Identity,
    authorizer: Authorizer,
    releases: list[Mapping[str, Any]],
) -> list[Decidable]:
    """Everything waiting for approval among `releases` (those the person may read), each
    with admission's verdict for this person; the ones they may decide come first."""
    out = [
        Decidable(
            ns, name, version, env, message, may_decide(snap, person, authorizer, ns, name, env)
        )
        for ns, name, version, env, message in waiting(snap, releases)
    ]
    out.sort(key=lambda d: (not d.may_decide, d.namespace, d.release, d.environment))
    return out
