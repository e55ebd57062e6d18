"""One Release, reconciled: each Environment of its path in order, through the stages of
a promotion, around one per-environment context (engine/promotion.py: Promotion):

  decide     here: the Environment's pure gates (stella.policy.decide) over the approvals'
             tally (engine/approvals.py), prerequisites, freeze windows, halts, locks;
  authorize  the checks right before a deploy (engine/gates.py: digests, supply chain),
             the plugins' Gate and PreDeploy steps (engine/plugin_steps.py), the lock
             (engine/locks.py) and the authorization evidence (engine/evidence_hooks.py);
  act        namespaces and Argo CD Applications here (engine/namespace_promotion.py),
             agents elsewhere (engine/agent_promotion.py);
  observe    the rollout (engine/namespace_promotion.py, engine/application_promotion.py,
             engine/agent_promotion.py), then the verification (engine/verification.py);
  record     here (_finish): the outcome evidence, the Release status, the lock released.

Crash safety, step by step (the operator may be SIGKILLed between any two lines):
  1. the Environment's in-flight lock is taken with the Environment's resourceVersion, so
     two writers never both deploy there;
  2. the authorization packet is stored (evidence), keyed by release uid + attempt, so a
     retry finds it instead of writing a second one;
  3. the Release status says Deploying with the images to restore, before any workload
     is touched;
  4. workloads are patched with a strategic merge that is a no-op when repeated;
  5. the rollout is followed; Release status is finished first, the lock released last.
A restart re-enters at whichever step was not yet durable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from stella import metrics
from stella.engine import applications, kubeio, workloads
from stella.engine.actions import promoters
from stella.engine.agent_promotion import AgentPromotions
from stella.engine.application_promotion import ApplicationPromotions
from stella.engine.approvals import ApprovalMarks, approval_records
from stella.engine.approved_digests import ApprovedDigests
from stella.engine.deletions import LEGACY_FINALIZER, has_legacy_finalizer
from stella.engine.evidence_hooks import EvidenceHooks
from stella.engine.locks import EnvironmentLocks
from stella.engine.namespace_promotion import NamespacePromotions
from stella.engine.plugin_steps import PluginSteps
from stella.engine.promotion import (
    Authorization,
    Promotion,
    is_rollback,
    move,
    now,
    persist,
    persist_status,
    release_path,
)
from stella.engine.supply_chain import SupplyChainGate
from stella.engine.verification import Verifications
from stella.engine.view import Body, ClusterView, ReleaseKey, release_key_str, release_order
from stella.models import EnvironmentSpec, ReleaseSpec, ReleaseStatus, set_condition
from stella.models.environment import EnvironmentStatus
from stella.models.errors import human_errors
from stella.models.release import IN_PROGRESS_PHASES, TERMINAL_PHASES, EnvironmentProgress
from stella.policy import (
    ApprovalFact,
    GateInput,
    PathError,
    Tally,
    decide,
    degraded,
    ready,
    recorded_identity,
    requester_shown,
    summary_line,
    tally,
)
from stella.registry import RegistryClient
from stella.secrets import VaultClient
from stella.settings import load

# Phases a Release's first evaluation does not announce with an Event (see _announce).
_QUIET_AT_FIRST = frozenset({"Superseded", "WaitingForPrerequisites"})


class Reconciler(
    NamespacePromotions,
    ApprovalMarks,
    Verifications,
    ApplicationPromotions,
    AgentPromotions,
    PluginSteps,
):
    """The pipeline; each stage's steps are a mixin named for what it holds."""

    def __init__(
        self,
        view: ClusterView,
        hooks: EvidenceHooks,
        registry: RegistryClient,
        vault: VaultClient | None,
        digests: ApprovedDigests | None = None,
    ) -> None:
        self.view = view
        self.digests = digests
        self.hooks = hooks
        self.registry = registry
        self.vault = vault
        self.locks = EnvironmentLocks(view)
        self.supply_chain = SupplyChainGate(registry, vault, hooks.recorder.signer)
        self._env_models: dict[str, tuple[Body, EnvironmentSpec, EnvironmentStatus]] = {}
        settings = load()
        self.max_promotions = settings.max_promotions  # T10: in flight across Environments
        self.plugin_runs_max = settings.plugin_runs_max

    # ---- entry -------------------------------------------------------------------------
    async def reconcile(self, key: ReleaseKey) -> float | None:
        body = self.view.release(key)
        if body is None:
            return None
        if has_legacy_finalizer(body):
            await asyncio.to_thread(kubeio.drop_release_finalizer, key, body, LEGACY_FINALIZER)
        if body.get("metadata", {}).get("deletionTimestamp"):
            return None
        try:
            spec = ReleaseSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            await self._write_invalid(
                key, body, f"the Release spec is invalid: {human_errors(exc)}"
            )
            return None
        status = ReleaseStatus.model_validate(body.get("status") or {})
        progress = _progress_by_env(status, spec)
        generation = body.get("metadata", {}).get("generation")

        first = not status.conditions
        before: Mapping[str, Any]
        if not first:
            before = status.model_dump(mode="json")
        else:
            # A Release never evaluated: "seen, every Environment Pending" is the baseline
            # its first evaluation is compared with (and announced against). It is not
            # written on its own (issue 12: one status write per Release per reconcile; it
            # was a second write per Release on every cold start); the evaluation's status
            # is written below — or, when a deploy starts, with the deploy's own write.
            status.conditions = set_condition(
                [],
                "Ready",
                "False",
                "Pending",
                "the promotion engine is evaluating this release",
                generation,
            )
            status.environments = list(progress.values())
            status.summary = summary_line(status.environments, spec.environments)
            # A first evaluation is always written; of the baseline only its phases are
            # read (by _announce), so it is not dumped whole (issue 12: CPU per Release).
            before = {
                "environments": [{"name": p.name, "phase": p.phase} for p in progress.values()]
            }

        requeue: float | None = None
        rollback = is_rollback(body, spec)
        try:
            # A rollback re-enters one environment its Release already passed the path to.
            path = (
                list(spec.environments) if rollback else release_path(self.view, spec.environments)
            )
        except PathError as exc:
            path = list(spec.environments)
            for env_name, p in progress.items():
                if p.phase in IN_PROGRESS_PHASES:
                    # A rollout already under way is followed to its end — or, when its
                    # Environment was deleted meanwhile, ended as Blocked with that reason.
                    wait = await self._one_environment(key, body, spec, progress, env_name)
                    requeue = _sooner(requeue, wait)
                elif p.phase not in TERMINAL_PHASES and p.reason != "EnvironmentDeleted":
                    move(p, "Blocked", exc.reason, exc.message)
        else:
            for env_name in path:
                wait = await self._one_environment(key, body, spec, progress, env_name)
                requeue = _sooner(requeue, wait)

        status.environments = [progress[e] for e in spec.environments]
        status.summary = summary_line(status.environments, path, self._live(key, spec))
        for type_, c in (
            ("Ready", ready(status.environments, path)),
            ("Degraded", degraded(status.environments, path)),
        ):
            status.conditions = set_condition(
                status.conditions, type_, c.status, c.reason, c.message, generation
            )
        status.observed_generation = generation
        if first or status.model_dump(mode="json") != before:
            # Who asked, for `kubectl get rel` (display only; nothing reads it back). Set
            # only here, so it rides on a write that is made anyway, never one of its own:
            # a Release finished before the field existed keeps an empty REQUESTER.
            status.requester = requester_shown(body)
            await self._announce(body, before, status, first)
            await self._write_status(key, status.wire())
        return requeue

    # ---- one environment ---------------------------------------------------------------
    async def _one_environment(
        self,
        key: ReleaseKey,
        body: Body,
        spec: ReleaseSpec,
        progress: dict[str, EnvironmentProgress],
        env_name: str,
    ) -> float | None:
        p = progress[env_name]
        env_body = self.view.environment(env_name)
        if env_body is None:
            if p.phase in IN_PROGRESS_PHASES:
                metrics.PROMOTIONS_IN_FLIGHT.labels(env_name).dec()
            if p.phase not in TERMINAL_PHASES:
                move(p, "Blocked", "EnvironmentDeleted", f"environment {env_name} no longer exists")
            return None
        env_spec, env_status = self._environment_models(env_name, env_body)
        key_s = release_key_str(key)

        promo = Promotion(key, body, spec, progress, env_name, env_spec)
        if p.phase in ("Deploying", "Verifying"):
            # Decided here: an Approval made since says it came too late (AlreadyDecided).
            late = await self._mark_late(promo)
            return _sooner(late, await self._observe(promo))
        if p.phase in TERMINAL_PHASES:
            if env_status.in_flight == key_s:
                await self.locks.release(promo)
            return await self._mark_late(promo)

        if not self._namespace_allowed(key[0], env_spec):
            move(
                p,
                "Blocked",
                "NamespaceNotAllowed",
                f"namespace {key[0]} does not match releaseNamespaces of environment {env_name}; "
                "label the namespace or change the Environment",
            )
            return None

        facts = self._approval_facts(promo)
        requester = recorded_identity(body, "requester")
        t = tally(env_spec.approvals, requester, facts)
        # The Approvals' status is written after the deploy has started: their evidence is
        # stored first (it precedes the authorization in the chain), their status is only
        # what a person reads, and it cost one API write before every promotion.
        approval_writes = await self._mark_approvals(promo, t)
        try:
            return await self._decide_and_act(promo, env_status, t, facts)
        finally:
            await self._write_approval_statuses(key[0], approval_writes)

    # ---- decide ------------------------------------------------------------------------
    async def _decide_and_act(
        self,
        promo: Promotion,
        env_status: EnvironmentStatus,
        t: Tally,
        facts: Sequence[ApprovalFact],
    ) -> float | None:
        key, body, spec, progress, p = promo.key, promo.body, promo.spec, promo.progress, promo.p
        env_name, env_spec, key_s = promo.env_name, promo.env_spec, promo.holder
        records = approval_records(t, facts)
        if records != p.approvals:  # each assignment is validated: only when it changed
            p.approvals = records
        rollback = is_rollback(body, spec)
        asked_by = promoters(self.view.actions_for(env_name, "Promote"), body)
        decision = decide(
            GateInput(
                release=key_s,
                environment=env_name,
                spec=env_spec,
                tally=t,
                now=datetime.now(UTC),
                halted=env_status.halted,
                suspension=env_status.suspended,
                current_phase=p.phase,
                current_reason=p.reason,
                current_message=p.message,
                # A rollback's release passed the prerequisites when it first came here.
                prerequisites=(
                    dict.fromkeys(env_spec.requires, "Deployed")
                    if rollback
                    else {r: progress[r].phase for r in env_spec.requires if r in progress}
                ),
                in_flight=env_status.in_flight
                if env_status.in_flight not in (None, key_s)
                else None,
                superseded_by=self._newer_release(key, env_name),
                promotion_requested=rollback or bool(asked_by),
                rollback=rollback,
            )
        )
        if not decision.may_deploy:
            if env_status.in_flight == key_s:
                # Took the lock, then a gate closed (a freeze began, a crash mid-start):
                # let the next release go rather than hold the environment.
                await self.locks.release(promo)
            if (
                p.phase == "WaitingForApproval"
                and decision.phase != "WaitingForApproval"
                and p.since
            ):
                metrics.APPROVAL_WAIT.labels(env_name).observe((now() - p.since).total_seconds())
            move(p, decision.phase, decision.reason, decision.message)
            return decision.requeue_after
        return await self._act(promo, Authorization(t, decision.checks, asked_by))

    # ---- authorize and act, observe: by the Environment's kind of targets ----------------
    async def _act(self, promo: Promotion, why: Authorization) -> float | None:
        """The gates before a deploy, the authorization evidence, then the deploy."""
        if workloads.has_agent_targets(promo.env_spec):
            return await self._start_agent_deploy(promo, why)
        return await self._start_deploy(promo, why)

    async def _observe(self, promo: Promotion) -> float | None:
        """The rollout under way (Deploying), followed until it completes, fails or times
        out, then the verification (Verifying) when the Environment asks for one."""
        # Re-assert the lock: a no-op unless a crash cut the start short.
        await self.locks.acquire(promo.env_name, promo.holder, force_self=True)
        if promo.p.phase == "Verifying":
            return await self._follow_verification(promo)
        if workloads.has_agent_targets(promo.env_spec):
            return await self._follow_agents(promo)
        if applications.targets(promo.env_spec):
            return await self._follow_applications(promo)
        return await self._follow_rollout(promo)

    # ---- record ------------------------------------------------------------------------
    async def _finish(self, promo: Promotion, outcome: str, elapsed: float) -> None:
        """Record the outcome (retried until stored), write the Release, release the lock."""
        body, p, env_name = promo.body, promo.p, promo.env_name
        await self.hooks.outcome(promo, outcome)
        await persist(self.view, promo)
        await self.locks.release(promo, outcome=outcome)
        metrics.PROMOTIONS.labels(env_name, outcome).inc()
        metrics.PROMOTIONS_IN_FLIGHT.labels(env_name).dec()
        metrics.DEPLOY_DURATION.labels(env_name, outcome).observe(elapsed)
        await kubeio.emit(
            body,
            outcome,
            f"{env_name}: {p.message}",
            "Normal" if outcome == "Deployed" else "Warning",
        )
        await self._plugin_notify(promo)

    # ---- helpers -----------------------------------------------------------------------
    def _environment_models(
        self, env_name: str, env_body: Body
    ) -> tuple[EnvironmentSpec, EnvironmentStatus]:
        """An Environment's spec and status parsed once per version the view holds, not
        once per Release reconciled (the view replaces a body on every change and never
        edits one in place; the models are only read)."""
        hit = self._env_models.get(env_name)
        if hit is not None and hit[0] is env_body:
            return hit[1], hit[2]
        env_spec = EnvironmentSpec.model_validate(env_body.get("spec") or {})
        env_status = EnvironmentStatus.model_validate(env_body.get("status") or {})
        self._env_models[env_name] = (env_body, env_spec, env_status)
        return env_spec, env_status

    async def _write_status(self, key: ReleaseKey, status: Mapping[str, Any]) -> None:
        await persist_status(self.view, key, status)

    def _live(self, key: ReleaseKey, spec: ReleaseSpec) -> set[str]:
        """The Environments whose status says this Release is the one running there."""
        mine = release_key_str(key)
        return {
            env
            for env in spec.environments
            if ((self.view.environment(env) or {}).get("status") or {}).get("currentRelease")
            == mine
        }

    def _namespace_allowed(self, namespace: str, env_spec: EnvironmentSpec) -> bool:
        if env_spec.release_namespaces is None:
            return True
        return env_spec.release_namespaces.matches(self.view.namespace_labels(namespace))

    def _newer_release(self, key: ReleaseKey, env_name: str) -> str | None:
        """The newest other Release of the same namespace targeting this environment, if it
        is newer than this one (a namespace is one application's stream of releases).
        Read from the view's index: O(1) while that namespace's releases do not change."""
        mine = self.view.release(key)
        if mine is None:
            return None
        newest = self.view.newest_release(key[0], env_name)
        if newest is None or newest == key:
            return None
        other = self.view.release(newest)
        if other is None or release_order(other) <= release_order(mine):
            return None
        return release_key_str(newest)

    async def _write_invalid(self, key: ReleaseKey, body: Body, message: str) -> None:
        conds = set_condition([], "Ready", "False", "InvalidSpec", message)
        conds = set_condition(conds, "Degraded", "True", "InvalidSpec", message)
        await asyncio.to_thread(
            kubeio.patch_release_status, key, {"conditions": [c.wire() for c in conds]}
        )

    async def _announce(
        self, body: Body, before: Mapping[str, Any], status: ReleaseStatus, first: bool = False
    ) -> None:
        """An Event per Environment whose phase changed. A Release's first evaluation
        announces only what asks something of a person or went wrong: Superseded (a newer
        Release came first) and WaitingForPrerequisites there are where it starts, not
        something that happened (issue 12: five Events per old Release on a cold start);
        its status says them."""
        old = {e["name"]: e["phase"] for e in before.get("environments", [])}
        for p in status.environments:
            if first and p.phase in _QUIET_AT_FIRST:
                continue
            if old.get(p.name) != p.phase:
                metrics.TRANSITIONS.labels(p.name, p.phase).inc()
                kind = (
                    "Warning"
                    if p.phase in {"Failed", "Rejected", "Halted", "Blocked"}
                    else "Normal"
                )
                await kubeio.emit(body, p.phase, f"{p.name}: {p.message}", kind)


# ---- pure helpers ----------------------------------------------------------------------
def _progress_by_env(status: ReleaseStatus, spec: ReleaseSpec) -> dict[str, EnvironmentProgress]:
    have = {p.name: p for p in status.environments}
    return {e: have.get(e) or EnvironmentProgress(name=e, since=now()) for e in spec.environments}


def _sooner(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


__all__ = ["Reconciler"]
