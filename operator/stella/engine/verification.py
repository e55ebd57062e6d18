"""The Verifying stage of a promotion (issue 14): after the rollout, the Environment's
soak time and checks, before the Release counts as Deployed there.

Crash safety: the verification's start and every round's progress are in the Release's
status (EnvironmentProgress.verification), so a restart resumes the soak where it was.
A failed check is written before anything is rolled back: a restart then finds the
failure and finishes it (the restore is idempotent), never verifies again. On agent
targets the rollback is one task per target, named from the task it undoes, so a restart
finds the tasks it made (engine/agent_rollback.py)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from stella import metrics
from stella.engine import applications, job_checks, probes, workloads
from stella.engine.agent_rollback import Why
from stella.engine.namespace_promotion import restore
from stella.engine.promotion import Promotion, move, persist
from stella.engine.promotion import now as _now
from stella.engine.reconciler_protocol import ReconcilerParts
from stella.evidence.dora import failing_since
from stella.models.common import parse_time
from stella.models.environment import EnvironmentStatus
from stella.models.verification import VerificationPolicy
from stella.policy import parse_duration
from stella.policy.verification import advance, due, start


def needs_verification(policy: VerificationPolicy | None) -> bool:
    return policy is not None and (
        bool(policy.checks) or parse_duration(policy.soak).total_seconds() > 0
    )


class Verifications(ReconcilerParts):
    """Mixed into the Reconciler: uses its view, _finish (the Reconciler's), _passport
    (engine/gates.py) and _agents_failed_after_rollout (engine/agent_promotion.py); the
    Reconciler holds the Environment's lock around it (_observe)."""

    async def _deployed(
        self, promo: Promotion, elapsed: float, reason: str, message: str
    ) -> float | None:
        """Deployed, once the passport (publishPassport) is out: it attests what passed
        here, so it goes after the verification, never before."""
        now = _now()
        wait: float | None = await self._passport(promo, now)
        if wait is not None:
            return wait
        promo.p.deployed_at = now
        move(promo.p, "Deployed", reason, message)
        restoring = self._failing_since(promo.env_name)  # before _finish adds this one
        await self._finish(promo, "Deployed", elapsed)
        created = parse_time((promo.body.get("metadata") or {}).get("creationTimestamp"))
        if created is not None:
            metrics.LEAD_TIME.labels(promo.env_name).observe((now - created).total_seconds())
        if restoring is not None:
            metrics.TIME_TO_RESTORE.labels(promo.env_name).observe(
                (now - restoring).total_seconds()
            )
        return None

    def _failing_since(self, env_name: str) -> datetime | None:
        status = EnvironmentStatus.model_validate(
            (self.view.environment(env_name) or {}).get("status") or {}
        )
        return failing_since((h.outcome == "Deployed", h.at) for h in status.history)

    async def _rolled_out(self, promo: Promotion, elapsed: float, message: str) -> float | None:
        """The rollout is complete: Deployed, or Verifying first when the Environment asks."""
        p, policy = promo.p, promo.env_spec.verification
        if not needs_verification(policy):
            return await self._deployed(promo, elapsed, "Deployed", message)
        assert policy is not None
        p.verification = start(policy, _now())
        move(p, "Verifying", "Verifying", f"{message}; verifying before it counts as deployed")
        await persist(self.view, promo)  # the soak starts once, here
        return 0.5

    async def _follow_verification(self, promo: Promotion) -> float | None:
        p, env_name, spec = promo.p, promo.env_name, promo.spec
        policy = promo.env_spec.verification or VerificationPolicy()
        now = _now()
        progress = p.verification or start(policy, now)
        names = set(due(policy, progress, now))
        uid = promo.uid
        namespaces = job_checks.namespaces_of(promo.env_spec.targets)
        taken = await asyncio.gather(
            *(
                probes.sample(
                    c,
                    job_checks.JobRun(
                        job_checks.job_name(c.name, uid, env_name, p.attempt),
                        namespaces,
                        {"app.kubernetes.io/managed-by": "stella", "stella.io/check": c.name},
                    ),
                )
                for c in policy.checks
                if c.name in names
            )
        )
        samples = [s for s in taken if s is not None]
        for s in samples:
            metrics.VERIFICATION_SAMPLES.labels(env_name, s.check, s.result).inc()
        verdict = advance(policy, progress, samples, now)
        p.verification = verdict.progress
        elapsed = (now - progress.started_at).total_seconds()
        if verdict.outcome == "Verifying":
            move(p, "Verifying", verdict.reason, verdict.message)
            return verdict.requeue_after
        if verdict.outcome == "Verified":
            wait = await self._deployed(
                promo,
                elapsed,
                "Verified",
                f"{spec.version} is live and verified in {env_name}: {verdict.message}",
            )
            if wait is None:
                metrics.VERIFICATIONS.labels(env_name, "Verified").inc()
            return wait
        # Failed: durable first (reason VerificationFailed, the failed check in status),
        # then the rollback, then the outcome.
        move(p, "Verifying", verdict.reason, verdict.message)
        await persist(self.view, promo)
        metrics.VERIFICATIONS.labels(env_name, "Failed").inc()
        if workloads.has_agent_targets(promo.env_spec):
            # The images ran in the agents' clusters: rolled back there by one task per
            # target, as after a failed PostDeploy step (engine/agent_promotion.py).
            then: float | None = await self._agents_failed_after_rollout(
                promo, Why(verdict.reason, verdict.message), elapsed
            )
            return then
        why, outcome = verdict.message, "Failed"
        if promo.env_spec.rollout.rollback_on_failure and p.previous_images:
            if applications.targets(promo.env_spec):
                await asyncio.to_thread(
                    applications.put_back,
                    applications.targets(promo.env_spec),
                    p.previous_images,
                    spec,
                )
            else:
                await asyncio.to_thread(restore, p.previous_images)
            outcome = "RolledBack"
            why += "; rolled back to the images that ran before"
        move(p, "Failed", verdict.reason, why)
        await self._finish(promo, outcome, elapsed)
        return None
