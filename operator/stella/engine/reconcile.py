"""One Release, reconciled: decide each environment in path order, deploy when the gates
say so, follow the rollout, finish exactly once.

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
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from stella import metrics
from stella.engine import applications, kubeio, workloads
from stella.engine.actions import promoters
from stella.engine.agent_promotion import AgentPromotions
from stella.engine.application_promotion import ApplicationPromotions
from stella.engine.approved_digests import ApprovedDigests
from stella.engine.deletions import LEGACY_FINALIZER, has_legacy_finalizer
from stella.engine.evidence_hooks import EvidenceHooks
from stella.engine.locks import EnvironmentLocks
from stella.engine.plugin_steps import PluginSteps
from stella.engine.quotas import QUOTA_RETRY, over_quota
from stella.engine.supply_chain import SupplyChainGate
from stella.engine.verification import Verifications
from stella.engine.view import Body, ClusterView, ReleaseKey, release_key_str, release_order
from stella.evidence.errors import EvidenceError
from stella.models import EnvironmentSpec, ReleaseSpec, ReleaseStatus, set_condition
from stella.models.environment import EnvironmentStatus, HaltState
from stella.models.errors import human_errors
from stella.models.release import (
    IN_PROGRESS_PHASES,
    TERMINAL_PHASES,
    EnvironmentProgress,
    WorkloadImage,
)
from stella.policy import (
    ApprovalFact,
    GateInput,
    PathError,
    Tally,
    decide,
    degraded,
    parse_duration,
    path_for,
    ready,
    recorded_identity,
    summary_line,
    tally,
)
from stella.policy.binding import recorded_binding
from stella.policy.rollback import ROLLBACK_STAMP, parse_rollback
from stella.registry import RegistryClient, RegistryError, verify_release_images
from stella.registry.verify import vault_credentials
from stella.secrets import VaultClient
from stella.secrets.errors import SecretsError
from stella.settings import load
from stella.supplychain.check import SupplyChainReport

log = logging.getLogger("stella.engine")

DEPLOY_POLL = 2.0
# Phases a Release's first evaluation does not announce with an Event (see _announce).
_QUIET_AT_FIRST = frozenset({"Superseded", "WaitingForPrerequisites"})


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class Promotion:
    """One Release into one Environment, for the length of one reconcile: what every
    stage of a promotion (decide, authorize, act, observe, record) reads, passed as one
    object instead of seven to nine arguments."""

    key: ReleaseKey
    body: Body
    spec: ReleaseSpec
    progress: dict[str, EnvironmentProgress]
    env_name: str
    env_spec: EnvironmentSpec

    @property
    def p(self) -> EnvironmentProgress:
        """This Environment's entry of the Release status (edited in place)."""
        return self.progress[self.env_name]

    @property
    def holder(self) -> str:
        """The Release as the Environment's lock names it (namespace/name)."""
        return release_key_str(self.key)


class Reconciler(Verifications, ApplicationPromotions, AgentPromotions, PluginSteps):
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
        before = status.model_dump(mode="json")
        progress = _progress_by_env(status, spec)
        generation = body.get("metadata", {}).get("generation")

        first = not status.conditions
        if first:
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
            before = status.model_dump(mode="json")

        requeue: float | None = None
        rollback = _is_rollback(body, spec)
        try:
            # A rollback re-enters one environment its Release already passed the path to.
            path = (
                list(spec.environments) if rollback else path_for(spec.environments, self._graph())
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
                    _move(p, "Blocked", exc.reason, exc.message)
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
                _move(
                    p, "Blocked", "EnvironmentDeleted", f"environment {env_name} no longer exists"
                )
            return None
        env_spec, env_status = self._environment_models(env_name, env_body)
        key_s = release_key_str(key)

        promo = Promotion(key, body, spec, progress, env_name, env_spec)
        if p.phase == "Deploying":
            return await self._follow_rollout(promo)
        if p.phase == "Verifying":
            return await self._follow_verification(promo)
        if p.phase in TERMINAL_PHASES:
            if env_status.in_flight == key_s:
                await self.locks.release(env_name, key_s, body, spec, p)
            return None

        if not self._namespace_allowed(key[0], env_spec):
            _move(
                p,
                "Blocked",
                "NamespaceNotAllowed",
                f"namespace {key[0]} does not match releaseNamespaces of environment {env_name}; "
                "label the namespace or change the Environment",
            )
            return None

        facts = self._approval_facts(key, env_name, body)
        requester = recorded_identity(body, "requester")
        t = tally(env_spec.approvals, requester, facts)
        # The Approvals' status is written after the deploy has started: their evidence is
        # stored first (it precedes the authorization in the chain), their status is only
        # what a person reads, and it cost one API write before every promotion.
        approval_writes = await self._mark_approvals(key, env_name, t, body, spec)
        try:
            return await self._decide_and_deploy(promo, env_status, t, facts)
        finally:
            await self._write_approval_statuses(key[0], approval_writes)

    async def _decide_and_deploy(
        self,
        promo: Promotion,
        env_status: EnvironmentStatus,
        t: Tally,
        facts: Sequence[ApprovalFact],
    ) -> float | None:
        key, body, spec, progress, p = promo.key, promo.body, promo.spec, promo.progress, promo.p
        env_name, env_spec, key_s = promo.env_name, promo.env_spec, promo.holder
        p.approvals = _approval_records(t, facts)
        rollback = _is_rollback(body, spec)
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
                await self.locks.release(env_name, key_s, body, spec, p)
            if (
                p.phase == "WaitingForApproval"
                and decision.phase != "WaitingForApproval"
                and p.since
            ):
                metrics.APPROVAL_WAIT.labels(env_name).observe((_now() - p.since).total_seconds())
            _move(p, decision.phase, decision.reason, decision.message)
            return decision.requeue_after
        return await self._start_deploy(promo, t, decision.checks, asked_by)

    # ---- deploy ------------------------------------------------------------------------
    async def _start_deploy(
        self,
        promo: Promotion,
        t: Tally,
        checks: Sequence[Any],
        promoted_by: Sequence[str] = (),
    ) -> float | None:
        key, body, spec, p = promo.key, promo.body, promo.spec, promo.p
        env_name, env_spec, key_s = promo.env_name, promo.env_spec, promo.holder
        updates = workloads.plan(spec, env_spec)
        apps = applications.targets(env_spec)
        if workloads.has_agent_targets(env_spec):
            return await self._start_agent_deploy(promo, t, checks, promoted_by)
        if not updates and not apps:
            _move(
                p,
                "Blocked",
                "NoTargets",
                f"environment {env_name} has no namespace targets; add spec.targets",
            )
            return None
        unmapped = applications.unmapped(apps, spec)
        if unmapped:
            _move(p, "Blocked", "HelmParameterMissing", "nothing deployed: " + "; ".join(unmapped))
            return None
        if updates and apps:
            _move(
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
            asyncio.to_thread(_read_workloads, updates)
            if updates
            else asyncio.to_thread(applications.read, apps),
            verify_release_images(
                self.registry, [c.image for c in spec.components], self._credentials(env_spec)
            ),
        )
        current: Any = got  # workloads by (ns, kind, name), or Applications by (ns, name)
        missing = _missing(updates, current) if updates else applications.missing(apps, current)
        if missing:
            _move(
                p,
                "Blocked",
                "WorkloadNotFound",
                "nothing deployed: "
                + "; ".join(missing)
                + " — create the workload or map the component to an existing one",
            )
            return 30.0
        gate = await self._digest_gate(promo, report)
        if gate is not True:
            return gate
        chain = await self._supply_chain_gate(promo)
        if not isinstance(chain, SupplyChainReport):
            return chain
        block = await self._plugin_steps_before_deploy(promo)
        if block is not None:
            _move(p, block.phase, block.reason, block.message)
            return block.retry_after
        busy = over_quota(self.view.environments, env_name, self.max_promotions)
        if busy is not None:
            _move(p, "Pending", "PromotionQuota", busy)
            return QUOTA_RETRY
        if not await self.locks.acquire(env_name, key_s):
            _move(
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
                body,
                spec,
                env_name,
                attempt,
                t,
                checks,
                promoted_by,
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
            _move(p, "Deploying", "SyncingApplication", f"setting {applications.describe(apps)}")
        else:
            _move(p, "Deploying", "RollingOut", f"updating {_describe(updates)}")
        p.since = _now()
        # Durable before any workload changes: a restart resumes the rollout, not a new deploy.
        await _persist(self.view, key, promo.progress)
        metrics.PROMOTIONS_IN_FLIGHT.labels(env_name).inc()
        if self.digests is not None:  # the API server's policy must know these digests first
            await self.digests.before_deploy(updates)
        if apps:
            await asyncio.to_thread(applications.write, apps, spec)
        else:
            await asyncio.to_thread(_patch_all, updates, key_s, f"{env_name}/{attempt}")
        await kubeio.emit(
            body, "Deploying", f"{env_name}: deploying {spec.version} (attempt {attempt})"
        )
        return DEPLOY_POLL

    async def _evidence_pending(self, promo: Promotion, exc: EvidenceError) -> float:
        """The authorization evidence could not be stored: nothing is deployed, the lock
        goes back, the step is retried. The evidence errors' messages are written for
        people and never hold a secret (stella.evidence.errors): say which store failed
        and why (Vault unreachable, the log down), not only the error's class."""
        await self.locks.release(promo.env_name, promo.holder, promo.body, promo.spec, promo.p)
        metrics.EVIDENCE_PENDING.labels(promo.env_name, exc.reason).inc()
        _move(
            promo.p,
            "Pending",
            "EvidencePending",
            "nothing deployed: the authorization evidence could not be stored "
            f"({exc.reason}: {exc.message[:512]}); retrying",
        )
        return float(exc.retry_after or 10.0)

    async def _digest_gate(self, promo: Promotion, report: Any) -> float | bool | None:
        """True when every image verified; else what the step returns: None after a halt
        (a digest that does not match: a person must clear it), seconds to a retry when
        the registry or Vault cannot answer now (fail closed)."""
        if report.ok:
            return True
        env_name, p = promo.env_name, promo.p
        if report.halts:
            await self._halt(env_name, promo.body, promo.spec, report.reason, report.message)
            _move(
                p,
                "Failed",
                report.reason,
                f"nothing deployed: {report.message}; environment {env_name} is halted "
                "until a person clears it (stella env clear)",
            )
            metrics.PROMOTIONS.labels(env_name, "DigestMismatch").inc()
            return None
        _move(p, "Pending", report.reason, f"waiting: {report.message}")
        return float(report.retry_after or 15.0)

    async def _supply_chain_gate(self, promo: Promotion) -> SupplyChainReport | float | None:
        """The report (possibly empty) when every image passes requireSignatures and
        requireProvenance; else what the step returns, as for digests: None after a refusal
        (recorded as evidence; the Environment halts when its policy says so), seconds to
        a retry when the registry, Vault or the trust material cannot answer now."""
        if not SupplyChainGate.applies(promo.env_spec):
            return SupplyChainReport()
        report = await self.supply_chain.check(
            promo.spec, promo.env_spec, self._credentials(promo.env_spec)
        )
        if report.ok:
            return report
        env_name, p = promo.env_name, promo.p
        if not report.refuses:
            _move(p, "Pending", report.reason, f"waiting: {report.message}")
            return float(report.retry_after or 15.0)
        try:
            await self.hooks.supply_chain_refused(
                promo.body, promo.spec, env_name, p.attempt + 1, report
            )
        except EvidenceError as exc:
            return await self._evidence_pending(promo, exc)
        halts = SupplyChainGate.halts(promo.env_spec, report)
        if halts:
            await self._halt(env_name, promo.body, promo.spec, report.reason, report.message)
        else:
            metrics.SECURITY_EVENTS.labels(report.reason).inc()
            await kubeio.emit(promo.body, report.reason, f"{env_name}: {report.message}", "Warning")
        after = (
            f"; environment {env_name} is halted until a person clears it (stella env clear)"
            if halts
            else ""
        )
        _move(p, "Failed", report.reason, f"nothing deployed: {report.message}{after}")
        metrics.PROMOTIONS.labels(env_name, report.reason).inc()
        return None

    async def _follow_rollout(self, promo: Promotion) -> float | None:
        spec, p = promo.spec, promo.p
        env_name, env_spec, key_s = promo.env_name, promo.env_spec, promo.holder
        if workloads.has_agent_targets(env_spec):
            return await self._follow_agents(promo)
        if applications.targets(env_spec):
            return await self._follow_applications(promo)
        updates = workloads.plan(spec, env_spec)
        # Re-assert the lock: a no-op unless a crash cut the start short.
        await self.locks.acquire(env_name, key_s, force_self=True)
        current = await asyncio.to_thread(_read_workloads, updates)
        missing = _missing(updates, current)
        started = p.since or _now()
        elapsed = (_now() - started).total_seconds()
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
                await asyncio.to_thread(_patch_all, stale, key_s, f"{env_name}/{p.attempt}")
                return DEPLOY_POLL
        complete = not missing and all(state == "Complete" for _, (state, _) in states)
        after = await self._plugin_steps_after_rollout(promo) if complete else None
        if complete and after is None:
            return await self._rolled_out(
                promo,
                elapsed,
                f"{spec.version} is live in {env_name}: "
                + "; ".join(f"{u.name} {msg}" for u, (_, msg) in states),
            )
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
                await asyncio.to_thread(_restore, p.previous_images)
                outcome = "RolledBack"
                why += "; rolled back to the images that ran before"
            reason = "RolloutTimeout" if not missing else "WorkloadNotFound"
            _move(p, "Failed", after.reason if after is not None and not missing else reason, why)
            await self._finish(promo, outcome, elapsed)
            return None
        return DEPLOY_POLL

    async def _passport(self, promo: Promotion, deployed_at: datetime) -> float | None:
        """Publish the passport (publishPassport) before the promotion counts as Deployed;
        seconds to a retry when the registry or Vault cannot take it now (the rollout is
        complete, the Release stays Deploying with reason PassportPending meanwhile)."""
        if not promo.env_spec.publish_passport:
            return None
        try:
            await self.supply_chain.publish_passport(
                promo.body,
                promo.spec,
                promo.env_name,
                promo.env_spec,
                promo.p.approvals,
                deployed_at,
                self._credentials(promo.env_spec),
            )
        except (RegistryError, SecretsError) as exc:
            _move(
                promo.p,
                promo.p.phase,  # Deploying, or Verifying once verified (engine/verification)
                "PassportPending",
                f"the rollout is complete; the passport could not be pushed yet ({exc.reason}: "
                f"{exc.message[:512]}); retrying",
            )
            return float(exc.retry_after or 10.0)
        return None

    async def _finish(self, promo: Promotion, outcome: str, elapsed: float) -> None:
        """Record the outcome (retried until stored), write the Release, release the lock."""
        body, spec, p, env_name = promo.body, promo.spec, promo.p, promo.env_name
        await self.hooks.outcome(body, spec, env_name, p, outcome)
        await _persist(self.view, promo.key, promo.progress)
        await self.locks.release(env_name, promo.holder, body, spec, p, outcome=outcome)
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
        await _persist_status(self.view, key, status)

    def _live(self, key: ReleaseKey, spec: ReleaseSpec) -> set[str]:
        """The Environments whose status says this Release is the one running there."""
        mine = release_key_str(key)
        return {
            env
            for env in spec.environments
            if ((self.view.environment(env) or {}).get("status") or {}).get("currentRelease")
            == mine
        }

    def _graph(self) -> dict[str, list[str]]:
        return {
            name: list((b.get("spec") or {}).get("requires") or [])
            for name, b in list(self.view.environments.items())
        }

    def _namespace_allowed(self, namespace: str, env_spec: EnvironmentSpec) -> bool:
        if env_spec.release_namespaces is None:
            return True
        return env_spec.release_namespaces.matches(self.view.namespace_labels(namespace))

    def _bound(self, key: ReleaseKey, env_name: str, body: Body) -> list[Body]:
        """The Approvals of this Release here that were made on this very Release (its UID
        and exact spec, as admission stamped them): a re-created Release of the same name
        never inherits the decisions made on the old one."""
        return [
            a
            for a in self.view.approvals_for(key, env_name)
            if (b := recorded_binding(a)) is not None and b.matches(body)
        ]

    def _approval_facts(self, key: ReleaseKey, env_name: str, body: Body) -> list[ApprovalFact]:
        facts = []
        for a in self._bound(key, env_name, body):
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

    async def _mark_approvals(
        self, key: ReleaseKey, env_name: str, t: Tally, body: Body, spec: ReleaseSpec
    ) -> list[tuple[str, dict[str, Any]]]:
        """Approval.status says whether it counted and why; evidence records it once.
        Returns the status writes to make (name, status) once the evidence is stored."""
        ns = key[0]
        writes: list[tuple[str, dict[str, Any]]] = []
        bound = {id(a) for a in self._bound(key, env_name, body)}
        for a in self.view.approvals_for(key, env_name):
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
            ident = recorded_identity(a, "approver")
            try:
                await self.hooks.approval(body, spec, env_name, a, counted, reason, message)
            except EvidenceError as exc:
                # The Approval's status waits for its evidence (the next reconcile retries);
                # the Release itself goes on to its gates and reports EvidencePending there.
                log.warning("approval %s/%s not recorded yet (%s); retrying", ns, name, exc.reason)
                continue
            conds = set_condition([], "Counted", "True" if counted else "False", reason, message)
            writes.append(
                (
                    name,
                    {
                        "counted": counted,
                        "approver": ident.username if ident else None,
                        "conditions": [c.wire() for c in conds],
                    },
                )
            )
        return writes

    @staticmethod
    async def _write_approval_statuses(
        ns: str, writes: Sequence[tuple[str, dict[str, Any]]]
    ) -> None:
        for name, status in writes:
            await asyncio.to_thread(kubeio.patch_approval_status, ns, name, status)

    async def _mark_unbound(self, ns: str, approval: Body) -> None:
        """An Approval made on an earlier Release of the same name says so, once."""
        st = approval.get("status") or {}
        if any(c.get("reason") == "ReleaseReplaced" for c in st.get("conditions", [])):
            return
        message = (
            "this decision was made on an earlier Release of the same name (another UID or "
            "other images) and does not count for the current one; decide again on it"
        )
        conds = set_condition([], "Counted", "False", "ReleaseReplaced", message)
        ident = recorded_identity(approval, "approver")
        await asyncio.to_thread(
            kubeio.patch_approval_status,
            ns,
            approval["metadata"]["name"],
            {
                "counted": False,
                "approver": ident.username if ident else None,
                "conditions": [c.wire() for c in conds],
            },
        )

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

    def _credentials(self, env_spec: EnvironmentSpec) -> Any:
        if env_spec.registry_credentials is None:

            async def none(_: Any) -> None:
                return None

            return none
        if self.vault is None:

            async def unavailable(_: Any) -> None:
                from stella.secrets.errors import VaultUnavailable

                raise VaultUnavailable(
                    "the environment needs registry credentials from Vault, but the operator "
                    "has no Vault configured (set STELLA_VAULT_ADDR)"
                )

            return unavailable
        return vault_credentials(
            self.vault, env_spec.registry_credentials, env_spec.allowed_registries
        )

    async def _halt(
        self, env_name: str, body: Body, spec: ReleaseSpec, reason: str, message: str
    ) -> None:
        halt = HaltState(reason=reason, message=message[:4096], since=_now())
        # A merge patch replaces the whole conditions list: upsert Halted into the ones the
        # Environment has (it used to write [Halted] alone, dropping Ready until the
        # environment reconciler ran again).
        current = EnvironmentStatus.model_validate(
            (self.view.environment(env_name) or {}).get("status") or {}
        )
        conditions = set_condition(current.conditions, "Halted", "True", reason, message[:4000])
        await asyncio.to_thread(
            kubeio.patch_environment_status,
            env_name,
            {"halted": halt.wire(), "conditions": [c.wire() for c in conditions]},
        )
        metrics.ENVIRONMENT_HALTED.labels(env_name).set(1)
        metrics.SECURITY_EVENTS.labels(reason).inc()
        await kubeio.emit(body, reason, f"{env_name} halted: {message}", "Warning")
        try:
            await self.hooks.halted(body, spec, env_name, reason, message)
        except EvidenceError as exc:
            log.error(
                "halt of %s not yet recorded as evidence (%s); will retry", env_name, exc.reason
            )

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
async def _persist(
    view: ClusterView, key: ReleaseKey, progress: Mapping[str, EnvironmentProgress]
) -> None:
    await _persist_status(view, key, {"environments": [p.wire() for p in progress.values()]})


async def _persist_status(view: ClusterView, key: ReleaseKey, status: Mapping[str, Any]) -> None:
    """Patch a Release's status and feed the answer into the view (read-your-writes).

    Found by the issue #6 e2e test: the halting Release was written Failed, then an
    Environment event (the halt itself) re-queued it before the watch had delivered that
    write; the next reconcile read the stale Pending body from the view, saw the halted
    Environment and overwrote Failed with Halted. The view keeps the newest
    resourceVersion, so a late watch event of an older version cannot undo this.
    A Release already gone from the view (deleted) is not brought back."""
    out = await asyncio.to_thread(kubeio.patch_release_status, key, status)
    if view.release(key) is not None and isinstance(out, Mapping):
        view.apply("Release", "MODIFIED", out)


def _progress_by_env(status: ReleaseStatus, spec: ReleaseSpec) -> dict[str, EnvironmentProgress]:
    have = {p.name: p for p in status.environments}
    return {e: have.get(e) or EnvironmentProgress(name=e, since=_now()) for e in spec.environments}


def _move(p: EnvironmentProgress, phase: Any, reason: str, message: str) -> None:
    if p.phase != phase:
        p.since = _now()
    p.phase = phase
    p.reason = reason[:128]
    p.message = message[:4096]


def _sooner(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return _now()


def _is_rollback(body: Body, spec: ReleaseSpec) -> bool:
    """A rollback only as admission stamped it (stella.io/rollback, never the client's
    stella.io/rollback-of alone), for the one Environment it was authorized into."""
    ann = (body.get("metadata") or {}).get("annotations") or {}
    stamp = parse_rollback(ann.get(ROLLBACK_STAMP))
    return stamp is not None and list(spec.environments) == [stamp.environment]


def _approval_records(t: Tally, facts: Sequence[ApprovalFact]) -> list[Any]:
    from stella.models.release import ApprovalRecord

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


def _describe(updates: Sequence[workloads.ImageUpdate]) -> str:
    return ", ".join(f"{u.kind} {u.namespace}/{u.name} ({u.container})" for u in updates)


def _read_workloads(
    updates: Sequence[workloads.ImageUpdate],
) -> dict[tuple[str, str, str], dict[str, Any]]:
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for ns, kind, name in workloads.group_by_workload(updates):
        w = kubeio.get_workload(ns, kind, name)
        if w is not None:
            out[(ns, kind, name)] = w
    return out


def _missing(
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


def _patch_all(updates: Sequence[workloads.ImageUpdate], release_key: str, attempt: str) -> None:
    for (ns, kind, name), ups in workloads.group_by_workload(updates).items():
        kubeio.patch_workload(ns, kind, name, workloads.image_patch(ups, release_key, attempt))


def _restore(images: Sequence[WorkloadImage]) -> None:
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


__all__ = ["Reconciler", "timedelta"]
