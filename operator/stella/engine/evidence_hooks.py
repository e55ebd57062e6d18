"""What the engine records as evidence, built from what it decided.

Event ids are made of stable facts (release uid, environment, attempt), so a retry after a
crash finds the packet already stored and never writes a second one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from stella.engine.promotion import Authorization, Promotion
from stella.engine.view import Body
from stella.evidence.application_changes import application_evidence
from stella.evidence.event import EvidenceEvent
from stella.evidence.packet import (
    AgentRef,
    ApprovalEvidence,
    CheckEvidence,
    Outcome,
    PolicyEvidence,
    ReleaseRef,
)
from stella.evidence.recorder import Recorder
from stella.models import ReleaseSpec
from stella.models.common import parse_time
from stella.models.release import WorkloadImage
from stella.policy import recorded_identity
from stella.policy.approvals import groups_for_evidence
from stella.policy.binding import binding_of
from stella.policy.rollback import ROLLBACK_STAMP, parse_rollback

_OUTCOME_KIND = {
    "Deployed": "PromotionDeployed",
    "Failed": "PromotionFailed",
    "RolledBack": "PromotionRolledBack",
}


def _ref(promo: Promotion) -> ReleaseRef:
    meta = promo.body.get("metadata", {})
    binding = binding_of(promo.body)
    return ReleaseRef(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=meta.get("uid"),
        version=promo.spec.version,
        spec_digest=binding.spec_digest if binding else None,
        created_at=parse_time(meta.get("creationTimestamp")),
    )


def _images(spec: ReleaseSpec) -> list[str]:
    return [c.image for c in spec.components]


def _rollback_of(body: Body) -> str | None:
    ann = (body.get("metadata") or {}).get("annotations") or {}
    stamp = parse_rollback(ann.get(ROLLBACK_STAMP))
    return stamp.of if stamp else None


def _uid(body: Body) -> str:
    meta = body.get("metadata", {})
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


def _requester(body: Body) -> str | None:
    ident = recorded_identity(body, "requester")
    return ident.username if ident else None


class EvidenceHooks:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def authorized(
        self,
        promo: Promotion,
        why: Authorization,
        attempt: int,
        *,
        agents: Sequence[Mapping[str, str]] = (),
        supply_chain: Sequence[Mapping[str, Any]] = (),
        applications: Sequence[WorkloadImage] = (),
    ) -> None:
        """The decision to deploy attempt `attempt`, with every input that justified it
        (why). agents: for a promotion into agent targets, each agent chosen and the
        serial of the certificate it holds (the evidence names who will deploy).
        supply_chain: per image, who signed it and its provenance (builder, source
        repository and revision). applications: for Argo CD Application targets, the
        override entries about to be replaced (the Release status' previousImages of kind
        Application)."""
        body, spec, env = promo.body, promo.spec, promo.env_name
        t, checks, promoted_by = why.tally, why.checks, why.promoted_by
        approvals = []
        for c in t.counted:
            approvals.append(
                ApprovalEvidence(
                    approval=c.approval,
                    approver=c.username,
                    decision=c.decision,
                    at=c.at,
                    counted=True,
                    reason="Counted",
                )
            )
        for r in t.refused:
            approvals.append(
                ApprovalEvidence(
                    approval=r.approval,
                    approver=r.username or "unknown",
                    decision=r.decision,
                    at=datetime.now(UTC),
                    counted=False,
                    reason=str(r.reason),
                )
            )
        await self.recorder.arecord(
            EvidenceEvent(
                kind="PromotionAuthorized",
                event_id=f"{_uid(body)}/{env}/attempt-{attempt}/authorized",
                environment=env,
                release=_ref(promo),
                images=_images(promo.spec),
                approvals=approvals[:64],
                # The person whose request set this promotion going: who promoted (where
                # autoPromote is false), else the requester (a rollback's requester is the
                # person who rolled back, authorized by the `rollback` verb).
                actor=(promoted_by[0] if promoted_by else _requester(body)),
                policy=PolicyEvidence(
                    inputs={
                        "requester": _requester(body),
                        "promotedBy": list(promoted_by)[:16],
                        "rollback": _rollback_of(body),
                        "required": t.required,
                        "approverGroups": list(t.approver_groups),
                        "approvers": list(t.approvers),
                        "attempt": attempt,
                        **({"agents": [dict(a) for a in agents][:16]} if agents else {}),
                        **(
                            {"supplyChain": [dict(c) for c in supply_chain][:64]}
                            if supply_chain
                            else {}
                        ),
                    },
                    outcome="Allowed",
                    reasons=[f"{c.gate}: {c.detail}"[:1024] for c in checks],
                ),
                outcome=Outcome(
                    result="Authorized",
                    reason="Promoting",
                    applications=application_evidence(applications, spec.components),
                ),
            )
        )

    async def agent_revoked(
        self,
        promo: Promotion,
        task: Mapping[str, Any],
        why: str,
        serial: str,
        replacement: Mapping[str, str] | None,
    ) -> None:
        """An agent revoked (or deleted) mid-task: which task, the certificate it held, and
        the task and agent (with its certificate) that took over, if any."""
        body, env, attempt = promo.body, promo.env_name, promo.p.attempt
        name = str(task["metadata"]["name"])
        agent = str((task.get("spec") or {}).get("agent") or "")
        await self.recorder.arecord(
            EvidenceEvent(
                kind="AgentRevoked",
                event_id=f"{_uid(body)}/{env}/attempt-{attempt}/task-{name}/agent-{why}",
                environment=env,
                release=_ref(promo),
                images=_images(promo.spec),
                agent=AgentRef(name=agent),
                policy=PolicyEvidence(
                    inputs={
                        "task": name,
                        "agent": agent,
                        "certificateSerial": serial,
                        "why": why,
                        "attempt": attempt,
                        "replacement": dict(replacement) if replacement else None,
                    },
                    outcome="Allowed" if replacement else "Denied",
                    reasons=[f"agent {agent} was {why} before finishing task {name}"],
                ),
                outcome=Outcome(
                    result="Redispatched" if replacement else "NotRedispatched",
                    reason=f"Agent{why.capitalize()}",
                    message=(
                        f"task {name} of agent {agent} (certificate {serial}) failed: the agent "
                        f"was {why}; "
                        + (
                            f"taken over by agent {replacement['agent']} (certificate "
                            f"{replacement.get('certificateSerial', '-')}) as task "
                            f"{replacement['task']}"
                            if replacement
                            else "no other Ready agent matches the target"
                        )
                    )[:4096],
                ),
            )
        )

    async def outcome(self, promo: Promotion, outcome: str) -> None:
        body, spec, env, p = promo.body, promo.spec, promo.env_name, promo.p
        await self.recorder.arecord(
            EvidenceEvent(
                kind=_OUTCOME_KIND[outcome],
                event_id=f"{_uid(body)}/{env}/attempt-{p.attempt}/{outcome}",
                environment=env,
                release=_ref(promo),
                images=_images(promo.spec),
                actor=_requester(body),
                outcome=Outcome(
                    result=outcome,
                    reason=p.reason,
                    message=p.message[:4096],
                    applications=application_evidence(
                        p.previous_images,
                        spec.components,
                        {f"{r.namespace}/{r.name}": r.revision for r in p.application_revisions},
                    ),
                    verification_started_at=p.verification.started_at if p.verification else None,
                    checks=[
                        CheckEvidence(
                            name=c.name, state=c.state, samples=c.samples, message=c.message
                        )
                        for c in p.verification.checks
                    ]
                    if p.verification
                    else None,
                ),
            )
        )

    async def approval(
        self,
        promo: Promotion,
        approval: Mapping[str, Any],
        counted: bool,
        reason: str,
        message: str,
    ) -> None:
        env, meta = promo.env_name, approval.get("metadata", {})
        ident = recorded_identity(approval, "approver")
        created = meta.get("creationTimestamp") or datetime.now(UTC).isoformat()
        at = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
        await self.recorder.arecord(
            EvidenceEvent(
                kind="ApprovalCounted" if counted else "ApprovalRefused",
                event_id=f"approval/{meta.get('uid') or meta.get('name')}/{reason}",
                environment=env,
                release=_ref(promo),
                images=_images(promo.spec),
                approvals=[
                    ApprovalEvidence(
                        approval=str(meta.get("name", "")),
                        approver=ident.username if ident else "unknown",
                        groups=groups_for_evidence(
                            ident.groups, promo.env_spec.approvals.approver_groups
                        )
                        if ident
                        else [],
                        decision=approval.get("spec", {}).get("decision", "Approve"),
                        at=at,
                        counted=counted,
                        reason=reason,
                    )
                ],
                actor=ident.username if ident else None,
                outcome=Outcome(
                    result="Counted" if counted else "Refused",
                    reason=reason,
                    message=message[:4096],
                ),
            )
        )

    async def halted(self, promo: Promotion, reason: str, message: str) -> None:
        env = promo.env_name
        attempt_free_id = f"{_uid(promo.body)}/{env}/{reason}"
        for kind in ("DigestMismatch", "EnvironmentHalted"):
            if kind == "DigestMismatch" and reason not in {"DigestMismatch", "ManifestNotFound"}:
                continue
            await self.recorder.arecord(
                EvidenceEvent(
                    kind=kind,
                    event_id=f"{attempt_free_id}/{kind}",
                    environment=env,
                    release=_ref(promo),
                    images=_images(promo.spec),
                    outcome=Outcome(result="Halted", reason=reason, message=message[:4096]),
                )
            )

    async def supply_chain_refused(self, promo: Promotion, attempt: int, report: Any) -> None:
        """An image refused by requireSignatures/requireProvenance: nothing deployed."""
        body, env = promo.body, promo.env_name
        await self.recorder.arecord(
            EvidenceEvent(
                kind="SupplyChainRefused",
                event_id=f"{_uid(body)}/{env}/attempt-{attempt}/supply-chain",
                environment=env,
                release=_ref(promo),
                images=_images(promo.spec),
                actor=_requester(body),
                policy=PolicyEvidence(
                    inputs={"supplyChain": report.evidence()[:64]},
                    outcome="Denied",
                    reasons=[f"{c.reason}: {c.message}"[:1024] for c in report.failures][:64],
                ),
                outcome=Outcome(
                    result="Refused", reason=report.reason, message=report.message[:4096]
                ),
            )
        )
