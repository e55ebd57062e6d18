"""The approvals of a promotion: which Approvals count for this very Release (bound to its
UID and spec, as admission stamped them), the facts the pure tally reads, and each
Approval's status — whether it counted and why — written once its evidence is stored;
also for an Approval that arrives after the promotion was decided (policy.late_decisions).

Mixed into the Reconciler."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from stella.engine import kubeio
from stella.engine.evidence_hooks import EvidenceHooks
from stella.engine.promotion import Promotion, now
from stella.engine.view import Body, ClusterView, ReleaseKey
from stella.evidence.errors import EvidenceError
from stella.models import set_condition
from stella.models.release import ApprovalRecord
from stella.policy import ApprovalFact, Tally, recorded_identity
from stella.policy.approvals import counted_verdict
from stella.policy.binding import recorded_binding
from stella.policy.late_decisions import late_verdict

log = logging.getLogger("stella.engine")

ApprovalWrites = list[tuple[str, dict[str, Any]]]

# When a late decision's evidence could not be stored: the Release is finished (no resync
# picks it up again), so its reconcile asks to come back.
EVIDENCE_RETRY_SECONDS = 10.0


def has_verdict(approval: Body) -> bool:
    """The engine has written this Approval's Counted condition (whatever it says)."""
    conds = (approval.get("status") or {}).get("conditions") or ()
    return any(isinstance(c, Mapping) and c.get("type") == "Counted" for c in conds)


def unjudged(view: ClusterView, key: ReleaseKey, environments: Sequence[str]) -> bool:
    """Some Approval of this Release, for one of its Environments, has no verdict yet."""
    return any(not has_verdict(a) for env in environments for a in view.approvals_for(key, env))


class ApprovalMarks:
    """Mixed into the Reconciler: uses its view and evidence hooks."""

    view: ClusterView
    hooks: EvidenceHooks

    def _bound(self, promo: Promotion) -> list[Body]:
        """The Approvals of this Release here that were made on this very Release (its UID
        and exact spec, as admission stamped them): a re-created Release of the same name
        never inherits the decisions made on the old one."""
        return [
            a
            for a in self.view.approvals_for(promo.key, promo.env_name)
            if (b := recorded_binding(a)) is not None and b.matches(promo.body)
        ]

    def _approval_facts(self, promo: Promotion) -> list[ApprovalFact]:
        facts = []
        for a in self._bound(promo):
            meta, aspec = a.get("metadata", {}), a.get("spec", {})
            facts.append(
                ApprovalFact(
                    name=meta.get("name", ""),
                    approver=recorded_identity(a, "approver"),
                    decision=aspec.get("decision", "Approve"),
                    created=_parse_time(meta.get("creationTimestamp")),
                    comment=aspec.get("comment", ""),
                )
            )
        return facts

    async def _mark_approvals(self, promo: Promotion, t: Tally) -> ApprovalWrites:
        """Approval.status says whether it counted and why; evidence records it once.
        Returns the status writes to make (name, status) once the evidence is stored."""
        ns, env_name = promo.key[0], promo.env_name
        writes: ApprovalWrites = []
        bound = {id(a) for a in self._bound(promo)}
        for a in self.view.approvals_for(promo.key, env_name):
            name = a["metadata"]["name"]
            if id(a) not in bound:
                await self._mark_unbound(ns, a)
                continue
            counted, reason, message = t.verdict(name)
            if reason == "NotEvaluated":
                continue
            st = a.get("status") or {}
            if st.get("counted") == counted and any(
                c.get("reason") == reason for c in st.get("conditions", [])
            ):
                continue
            try:
                await self.hooks.approval(promo, a, counted, reason, message)
            except EvidenceError as exc:
                # The Approval's status waits for its evidence (the next reconcile retries);
                # the Release itself goes on to its gates and reports EvidencePending there.
                log.warning("approval %s/%s not recorded yet (%s); retrying", ns, name, exc.reason)
                continue
            writes.append((name, _status(a, counted, reason, message)))
        return writes

    async def _mark_late(self, promo: Promotion) -> float | None:
        """The Approvals of an Environment whose promotion is decided (deploy authorized,
        or ended) that have no verdict yet: made after the decision, they say so
        (AlreadyDecided) once their evidence is stored. One that the decision did count
        but whose status was never written (a crash between its evidence and its status)
        says what the decision recorded. Cheap when every Approval has its verdict: a
        finished Release is reconciled on each of its Approvals' events.
        Returns a retry delay when some evidence could not be stored yet."""
        waiting = [
            a for a in self.view.approvals_for(promo.key, promo.env_name) if not has_verdict(a)
        ]
        if not waiting:
            return None
        ns, p = promo.key[0], promo.p
        bound = {id(a) for a in self._bound(promo)}
        decided = {r.approval: r for r in p.approvals}
        retry: float | None = None
        for a in waiting:
            if id(a) not in bound:
                await self._mark_unbound(ns, a)
                continue
            name = a["metadata"]["name"]
            record = decided.get(name)
            if record is not None:
                counted = True
                reason, message = counted_verdict(record.approver, record.decision)
            else:
                counted = False
                decision = (a.get("spec") or {}).get("decision", "Approve")
                reason, message = late_verdict(promo.env_name, p.phase, p.since, decision)
            try:
                await self.hooks.approval(promo, a, counted, reason, message)
            except EvidenceError as exc:
                log.warning("approval %s/%s not recorded yet (%s); retrying", ns, name, exc.reason)
                retry = EVIDENCE_RETRY_SECONDS
                continue
            await self._write_approval_statuses(ns, [(name, _status(a, counted, reason, message))])
        return retry

    async def _write_approval_statuses(
        self, ns: str, writes: Sequence[tuple[str, dict[str, Any]]]
    ) -> None:
        for name, status in writes:
            out = await asyncio.to_thread(kubeio.patch_approval_status, ns, name, status)
            # Read-your-writes: the next reconcile (often before the watch delivers this
            # write) sees the verdict and does not write it again.
            if isinstance(out, Mapping) and (ns, name) in self.view.approvals:
                self.view.apply("Approval", "MODIFIED", out)

    async def _mark_unbound(self, ns: str, approval: Body) -> None:
        """An Approval made on an earlier Release of the same name says so, once."""
        st = approval.get("status") or {}
        if any(c.get("reason") == "ReleaseReplaced" for c in st.get("conditions", [])):
            return
        message = (
            "this decision was made on an earlier Release of the same name (another UID or "
            "other images) and does not count for the current one; decide again on it"
        )
        status = _status(approval, False, "ReleaseReplaced", message)
        await self._write_approval_statuses(ns, [(approval["metadata"]["name"], status)])


def _status(approval: Body, counted: bool, reason: str, message: str) -> dict[str, Any]:
    """An Approval's status: the verdict, and who decided as admission recorded them."""
    conds = set_condition([], "Counted", "True" if counted else "False", reason, message)
    ident = recorded_identity(approval, "approver")
    return {
        "counted": counted,
        "approver": ident.username if ident else None,
        "conditions": [c.wire() for c in conds],
    }


def approval_records(t: Tally, facts: Sequence[ApprovalFact]) -> list[ApprovalRecord]:
    """The approvals a Release's status lists for an Environment: every counted decision
    and every rejection of a known approver (at most 32)."""
    by_name = {f.name: f for f in facts}
    out = []
    for c in (*t.counted, *t.rejections):
        f = by_name.get(c.approval)
        if f is None or f.approver is None:
            continue
        out.append(
            ApprovalRecord(approver=c.username, decision=c.decision, at=c.at, approval=c.approval)
        )
    return out[:32]


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return now()
