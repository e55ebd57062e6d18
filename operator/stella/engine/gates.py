"""The checks a promotion passes right before it deploys, whatever its targets (namespaces
here, Argo CD Applications, agents): every digest verified against the registry, the
supply-chain policy (requireSignatures, requireProvenance, requirePassport), and what a
refusal does — a halt of the Environment a person must clear, or a wait that retries
(fail closed). The passport (publishPassport), signed once the rollout is complete, is
published here too: it attests what these checks passed.

Mixed into the Reconciler."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from stella import metrics
from stella.engine import kubeio
from stella.engine.evidence_hooks import EvidenceHooks
from stella.engine.locks import EnvironmentLocks
from stella.engine.plugin_steps import PluginSteps
from stella.engine.promotion import Promotion, move, now
from stella.engine.supply_chain import SupplyChainGate
from stella.engine.view import ClusterView
from stella.evidence.errors import EvidenceError
from stella.models import EnvironmentSpec, set_condition
from stella.models.environment import EnvironmentStatus, HaltState
from stella.registry import RegistryError
from stella.registry.reference import ImageRef, foreign_registry
from stella.registry.verify import (
    CredentialsLookup,
    VerificationReport,
    advised_message,
    credentials_withheld,
    vault_credentials,
)
from stella.secrets import VaultClient
from stella.secrets.errors import SecretsError
from stella.supplychain.check import SupplyChainReport

log = logging.getLogger("stella.engine")


class PromotionGates(PluginSteps):
    """Mixed into the Reconciler: uses its view, locks, evidence hooks, Vault client and
    supply-chain gate, and the plugin steps."""

    view: ClusterView
    locks: EnvironmentLocks
    hooks: EvidenceHooks
    vault: VaultClient | None
    supply_chain: SupplyChainGate

    def _credentials(self, env_spec: EnvironmentSpec) -> CredentialsLookup:
        if env_spec.registry_credentials is None or not env_spec.allowed_registries:
            # No listed registry: the credentials go to none (T1/T9), Vault is not asked.

            async def none(_: ImageRef) -> None:
                return None

            return none
        if self.vault is None:

            async def unavailable(_: ImageRef) -> None:
                from stella.secrets.errors import VaultUnavailable

                raise VaultUnavailable(
                    "the environment needs registry credentials from Vault, but the operator "
                    "has no Vault configured (set STELLA_VAULT_ADDR)"
                )

            return unavailable
        return vault_credentials(
            self.vault, env_spec.registry_credentials, env_spec.allowed_registries
        )

    async def _gates_before_deploy(
        self, promo: Promotion, digests: VerificationReport
    ) -> SupplyChainReport | float | None:
        """Every check before the lock, in order: the digests (`digests`, the registry's
        report), the supply-chain policy, the plugins' Gate and PreDeploy steps. The
        supply-chain report (its evidence goes into the authorization) when all pass;
        else what the step returns: None when it is over (failed, halted), seconds to a
        retry."""
        foreign = foreign_registry(
            [c.image for c in promo.spec.components], promo.env_spec.allowed_registries
        )
        if foreign is not None:
            # Admitted by an Environment that allowed the registry then (or in the moment
            # before the policy's parameter caught up); it does not now.
            image, host = foreign
            move(
                promo.p,
                "Blocked",
                "RegistryNotAllowed",
                f"nothing deployed: {image[:256]} comes from registry {host}, which "
                f"environment {promo.env_name} no longer allows; push the image to an allowed "
                f"registry and make a new Release, or add {host} to spec.allowedRegistries "
                f"of {promo.env_name}",
            )
            return None
        gate = await self._digest_gate(promo, digests)
        if gate is not True:
            return None if gate is None else float(gate)
        chain = await self._supply_chain_gate(promo)
        if not isinstance(chain, SupplyChainReport):
            return chain
        block = await self._plugin_steps_before_deploy(promo)
        if block is not None:
            move(promo.p, block.phase, block.reason, block.message)
            return block.retry_after
        return chain

    async def _digest_gate(
        self, promo: Promotion, report: VerificationReport
    ) -> float | bool | None:
        """True when every image verified; else what the step returns: None after a halt
        (a digest that does not match: a person must clear it), seconds to a retry when
        the registry or Vault cannot answer now (fail closed)."""
        if report.ok:
            return True
        env_name, p = promo.env_name, promo.p
        if report.halts:
            await self._halt(promo, report.reason, report.message)
            move(
                p,
                "Failed",
                report.reason,
                f"nothing deployed: {report.message}; environment {env_name} is halted "
                "until a person clears it (stella env clear)",
            )
            metrics.PROMOTIONS.labels(env_name, "DigestMismatch").inc()
            return None
        withheld = credentials_withheld(
            env_name, promo.env_spec.registry_credentials, promo.env_spec.allowed_registries
        )
        move(p, "Pending", report.reason, f"waiting: {advised_message(report, withheld)}")
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
            move(p, "Pending", report.reason, f"waiting: {report.message}")
            return float(report.retry_after or 15.0)
        try:
            await self.hooks.supply_chain_refused(promo, p.attempt + 1, report)
        except EvidenceError as exc:
            return await self._evidence_pending(promo, exc)
        halts = SupplyChainGate.halts(promo.env_spec, report)
        if halts:
            await self._halt(promo, report.reason, report.message)
        else:
            metrics.SECURITY_EVENTS.labels(report.reason).inc()
            await kubeio.emit(promo.body, report.reason, f"{env_name}: {report.message}", "Warning")
        after = (
            f"; environment {env_name} is halted until a person clears it (stella env clear)"
            if halts
            else ""
        )
        move(p, "Failed", report.reason, f"nothing deployed: {report.message}{after}")
        metrics.PROMOTIONS.labels(env_name, report.reason).inc()
        return None

    async def _evidence_pending(self, promo: Promotion, exc: EvidenceError) -> float:
        """The authorization evidence could not be stored: nothing is deployed, the lock
        goes back, the step is retried. The evidence errors' messages are written for
        people and never hold a secret (stella.evidence.errors): say which store failed
        and why (Vault unreachable, the log down), not only the error's class."""
        await self.locks.release(promo)
        metrics.EVIDENCE_PENDING.labels(promo.env_name, exc.reason).inc()
        move(
            promo.p,
            "Pending",
            "EvidencePending",
            "nothing deployed: the authorization evidence could not be stored "
            f"({exc.reason}: {exc.message[:512]}); retrying",
        )
        return float(exc.retry_after or 10.0)

    async def _halt(self, promo: Promotion, reason: str, message: str) -> None:
        """Halt the Environment until a person clears it: its status, a metric, an Event,
        and its evidence (logged as an error when it cannot be stored now)."""
        env_name = promo.env_name
        halt = HaltState(reason=reason, message=message[:4096], since=now())
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
        await kubeio.emit(promo.body, reason, f"{env_name} halted: {message}", "Warning")
        try:
            await self.hooks.halted(promo, reason, message)
        except EvidenceError as exc:
            log.error(
                "halt of %s not yet recorded as evidence (%s); will retry", env_name, exc.reason
            )

    async def _passport(self, promo: Promotion, deployed_at: datetime) -> float | None:
        """Publish the passport (publishPassport) before the promotion counts as Deployed;
        seconds to a retry when the registry or Vault cannot take it now (the rollout is
        complete, the Release stays Deploying with reason PassportPending meanwhile)."""
        if not promo.env_spec.publish_passport:
            return None
        try:
            await self.supply_chain.publish_passport(
                promo, deployed_at, self._credentials(promo.env_spec)
            )
        except (RegistryError, SecretsError) as exc:
            move(
                promo.p,
                promo.p.phase,  # Deploying, or Verifying once verified (engine/verification)
                "PassportPending",
                f"the rollout is complete; the passport could not be pushed yet ({exc.reason}: "
                f"{exc.message[:512]}); retrying",
            )
            return float(exc.retry_after or 10.0)
        return None
