"""Following a promotion through Argo CD Applications (issue 14): the override is set
(engine/applications.py); this waits until Argo CD reports every Application Synced to
it and Healthy within the rollout timeout, and fails — putting the previous override
back when the Environment says so — on Degraded, a vanished Application or the
deadline."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from stella.engine import applications
from stella.engine.promotion import Promotion, move
from stella.engine.reconciler_protocol import ReconcilerParts
from stella.policy.duration import parse_duration

POLL = 2.0


class ApplicationPromotions(ReconcilerParts):
    """Mixed into the Reconciler: uses its _rolled_out and _finish (the Reconciler holds
    the Environment's lock around this, engine/reconcile.py: _observe)."""

    async def _follow_applications(self, promo: Promotion) -> float | None:
        spec, p, env_spec = promo.spec, promo.p, promo.env_spec
        apps = applications.targets(env_spec)
        current = await asyncio.to_thread(applications.read, apps)
        gone = applications.missing(apps, current)
        now = datetime.now(UTC)
        elapsed = (now - (p.since or now)).total_seconds()
        timeout = parse_duration(env_spec.rollout.timeout).total_seconds()
        states = applications.states(apps, current, spec)
        p.application_revisions = applications.revisions(states, p.application_revisions)
        if not gone and states and all(s.state == "Synced" for _, s in states):
            then: float | None = await self._rolled_out(
                promo,
                elapsed,
                f"{spec.version} is live in {promo.env_name}: "
                + "; ".join(f"Application {a.namespace}/{a.name} {s.message}" for a, s in states),
            )
            return then
        degraded = [(a, s) for a, s in states if s.state == "Degraded"]
        if not (gone or degraded or elapsed > timeout):
            # Re-assert the override (a no-op unless a crash cut the start short, or someone
            # put another image there meanwhile), never after the deadline: a rollback must
            # not be undone by a retry.
            await asyncio.to_thread(applications.write, apps, spec)
            move(
                p,
                "Deploying",
                "SyncingApplication",
                "; ".join(f"Application {a.namespace}/{a.name}: {s.message}" for a, s in states),
            )
            return POLL
        if gone:
            reason, why = "ApplicationNotFound", "; ".join(gone)
        elif degraded:
            reason = "ApplicationDegraded"
            why = "; ".join(f"Application {a.namespace}/{a.name}: {s.message}" for a, s in degraded)
        else:
            reason = "SyncTimeout"
            why = f"not Synced and Healthy within {env_spec.rollout.timeout}: " + "; ".join(
                f"Application {a.namespace}/{a.name}: {s.message}" for a, s in states
            )
        outcome = "Failed"
        if env_spec.rollout.rollback_on_failure and p.previous_images:
            await asyncio.to_thread(applications.put_back, apps, p.previous_images, spec)
            outcome = "RolledBack"
            why += "; the Applications' image overrides were put back"
        move(p, "Failed", reason, why)
        await self._finish(promo, outcome, elapsed)
        return None
