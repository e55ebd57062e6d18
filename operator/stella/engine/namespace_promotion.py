"""The steps of a promotion into targets in this cluster: start it (the targets read and
the digests verified, the gates, the lock, the authorization evidence, the Release status
durable, then the workloads patched) and follow the rollout of the Deployments,
StatefulSets and DaemonSets of its namespace targets until it completes, fails or times
out (rolling back when the Environment says so).

Argo CD Application targets share the start (their override is set instead of a patch);
their rollout is followed in engine/application_promotion.py, an agent's in
engine/agent_promotion.py.

Mixed into the Reconciler."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from stella import metrics
from stella.engine import applications, kubeio, workloads
from stella.engine.approved_digests import ApprovedDigests
from stella.engine.gates import PromotionGates
from stella.engine.promotion import Authorization, Promotion, move, now, persist
from stella.engine.quotas import QUOTA_RETRY, over_quota
from stella.engine.reconciler_protocol import ReconcilerParts
from stella.evidence.errors import EvidenceError
from stella.models.release import WorkloadImage
from stella.policy import parse_duration
from stella.registry import verify_release_images
from stella.supplychain.check import SupplyChainReport

DEPLOY_POLL = 2.0


class NamespacePromotions(PromotionGates, ReconcilerParts):
    """Mixed into the Reconciler: uses its registry, approved digests, quota, the gates,
    the plugin steps, and _rolled_out and _finish (engine/reconciler_protocol.py)."""

    digests: ApprovedDigests | None
    max_promotions: int

    async def _start_deploy(self, promo: Promotion, why: Authorization) -> float | None:
        body, spec, p = promo.body, promo.spec, promo.p
        env_name, env_spec, key_s = promo.env_name, promo.env_spec, promo.holder
        updates = workloads.plan(spec, env_spec)
        apps = applications.targets(env_spec)
        if not updates and not apps:
            move(
                p,
                "Blocked",
                "NoTargets",
                f"environment {env_name} has no namespace targets; add spec.targets",
            )
            return None
        unmapped = applications.unmapped(apps, spec)
        if unmapped:
            move(p, "Blocked", "HelmParameterMissing", "nothing deployed: " + "; ".join(unmapped))
            return None
        if updates and apps:
            move(
                p,
                "Blocked",
                "MixedTargets",
                f"environment {env_name} deploys both to namespaces and through Argo CD "
                "Applications; give each its own Environment",
            )
            return None
        # The workloads' read and the registry check are independent reads: run together
        # (issue 12: one round trip less per promotion). A missing workload still decides
        # first, as when they ran one after the other; that check's report is then unused.
        got, report = await asyncio.gather(
            asyncio.to_thread(read_workloads, updates)
            if updates
            else asyncio.to_thread(applications.read, apps),
            verify_release_images(
                self.registry, [c.image for c in spec.components], self._credentials(env_spec)
            ),
        )
        current: Any = got  # workloads by (ns, kind, name), or Applications by (ns, name)
        missing = (
            missing_workloads(updates, current) if updates else applications.missing(apps, current)
        )
        if missing:
            move(
                p,
                "Blocked",
                "WorkloadNotFound",
                "nothing deployed: "
                + "; ".join(missing)
                + " — create the workload or map the component to an existing one",
            )
            return 30.0
        chain = await self._gates_before_deploy(promo, report)
        if not isinstance(chain, SupplyChainReport):
            return chain
        busy = over_quota(self.view.environments, env_name, self.max_promotions)
        if busy is not None:
            move(p, "Pending", "PromotionQuota", busy)
            return QUOTA_RETRY
        if not await self.locks.acquire(env_name, key_s):
            move(
                p,
                "Pending",
                "InFlight",
                f"another release is deploying to {env_name}; waiting for it",
            )
            return 10.0
        attempt = p.attempt + 1
        previous = [
            WorkloadImage(
                namespace=u.namespace,
                kind=u.kind,
                name=u.name,
                container=u.container,
                image=workloads.current_images(current[(u.namespace, u.kind, u.name)])[u.container],
            )
            for u in updates
        ] or applications.before(apps, current, spec)
        try:
            await self.hooks.authorized(
                promo,
                why,
                attempt,
                supply_chain=chain.evidence(),
                applications=previous if apps else (),
            )
        except EvidenceError as exc:
            return await self._evidence_pending(promo, exc)
        p.previous_images = previous
        p.attempt = attempt
        p.verification = None  # a new attempt is verified anew, never by an old one's checks
        p.application_revisions = []
        if apps:
            move(p, "Deploying", "SyncingApplication", f"setting {applications.describe(apps)}")
        else:
            move(p, "Deploying", "RollingOut", f"updating {describe(updates)}")
        p.since = now()
        # Durable before any workload changes: a restart resumes the rollout, not a new deploy.
        await persist(self.view, promo)
        metrics.PROMOTIONS_IN_FLIGHT.labels(env_name).inc()
        if self.digests is not None:  # the API server's policy must know these digests first
            await self.digests.before_deploy(updates)
        if apps:
            await asyncio.to_thread(applications.write, apps, spec)
        else:
            await asyncio.to_thread(patch_all, updates, key_s, f"{env_name}/{attempt}")
        await kubeio.emit(
            body, "Deploying", f"{env_name}: deploying {spec.version} (attempt {attempt})"
        )
        return DEPLOY_POLL

    async def _follow_rollout(self, promo: Promotion) -> float | None:
        spec, p = promo.spec, promo.p
        env_name, env_spec, key_s = promo.env_name, promo.env_spec, promo.holder
        updates = workloads.plan(spec, env_spec)
        current = await asyncio.to_thread(read_workloads, updates)
        missing = missing_workloads(updates, current)
        started = p.since or now()
        elapsed = (now() - started).total_seconds()
        timeout = parse_duration(env_spec.rollout.timeout).total_seconds()
        states = [
            (u, workloads.rollout_state(u.kind, current[(u.namespace, u.kind, u.name)]))
            for u in updates
            if (u.namespace, u.kind, u.name) in current
        ]
        # The deadline is checked before re-applying the patch: after a rollback, a retry
        # must restore again, never re-deploy the failed images.
        if not (missing or elapsed > timeout):
            stale = [
                u
                for u in updates
                if (u.namespace, u.kind, u.name) in current
                and workloads.current_images(current[(u.namespace, u.kind, u.name)]).get(
                    u.container
                )
                != u.image
            ]
            if stale:
                await asyncio.to_thread(patch_all, stale, key_s, f"{env_name}/{p.attempt}")
                return DEPLOY_POLL
        complete = not missing and all(state == "Complete" for _, (state, _) in states)
        after = await self._plugin_steps_after_rollout(promo) if complete else None
        if complete and after is None:
            then: float | None = await self._rolled_out(
                promo,
                elapsed,
                f"{spec.version} is live in {env_name}: "
                + "; ".join(f"{u.name} {msg}" for u, (_, msg) in states),
            )
            return then
        if missing or elapsed > timeout or after is not None:
            why = (
                ("workloads disappeared: " + "; ".join(missing))
                if missing
                else after.message
                if after is not None
                else (
                    f"rollout did not complete within {env_spec.rollout.timeout}: "
                    + "; ".join(f"{u.name} {msg}" for u, (_, msg) in states)
                )
            )
            outcome = "Failed"
            if env_spec.rollout.rollback_on_failure and p.previous_images:
                await asyncio.to_thread(restore, p.previous_images)
                outcome = "RolledBack"
                why += "; rolled back to the images that ran before"
            reason = "RolloutTimeout" if not missing else "WorkloadNotFound"
            move(p, "Failed", after.reason if after is not None and not missing else reason, why)
            await self._finish(promo, outcome, elapsed)
            return None
        return DEPLOY_POLL


# ---- the workloads' reads and writes (run in threads) ----------------------------------
def describe(updates: Sequence[workloads.ImageUpdate]) -> str:
    return ", ".join(f"{u.kind} {u.namespace}/{u.name} ({u.container})" for u in updates)


def read_workloads(
    updates: Sequence[workloads.ImageUpdate],
) -> dict[tuple[str, str, str], dict[str, Any]]:
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for ns, kind, name in workloads.group_by_workload(updates):
        w = kubeio.get_workload(ns, kind, name)
        if w is not None:
            out[(ns, kind, name)] = w
    return out


def missing_workloads(
    updates: Sequence[workloads.ImageUpdate], current: Mapping[tuple[str, str, str], Any]
) -> list[str]:
    problems = []
    for (ns, kind, name), ups in workloads.group_by_workload(updates).items():
        w = current.get((ns, kind, name))
        if w is None:
            problems.append(f"{kind} {ns}/{name} does not exist")
            continue
        for c in workloads.missing_containers(w, ups):
            problems.append(f"{kind} {ns}/{name} has no container {c}")
    return problems


def patch_all(updates: Sequence[workloads.ImageUpdate], release_key: str, attempt: str) -> None:
    for (ns, kind, name), ups in workloads.group_by_workload(updates).items():
        kubeio.patch_workload(ns, kind, name, workloads.image_patch(ups, release_key, attempt))


def restore(images: Sequence[WorkloadImage]) -> None:
    """Rollback: every workload's containers back to the images they ran before."""
    grouped: dict[tuple[str, str, str], list[WorkloadImage]] = {}
    for i in images:
        grouped.setdefault((i.namespace, i.kind, i.name), []).append(i)
    for (ns, kind, name), imgs in grouped.items():
        kubeio.patch_workload(
            ns,
            kind,
            name,
            {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [{"name": i.container, "image": i.image} for i in imgs]
                        }
                    }
                }
            },
        )
