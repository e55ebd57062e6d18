"""The plugin steps of a promotion: an Environment's Gate and PreDeploy plugins before its
workloads change, PostDeploy once the rollout completed, Notify after the outcome.

Mixed into the Reconciler. Each run goes through stella.plugins (read live, re-verified,
sandboxed) in a worker thread; its report becomes evidence (stored before the promotion
goes on: no evidence, no deploy), the Plugin's status, a metric and, when it was stopped,
an Event. An attempt at an undeclared capability quarantines the Plugin cluster-wide and
is a security signal: metric, Event, `stella.security` log line and evidence.

Gate and PreDeploy runs happen before the authorization and may repeat (a gate is asked
again until it passes); PostDeploy may run a second time when the operator stops between
the run and the recorded outcome; Notify runs once per recorded outcome, best effort.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from stella import API_VERSION, metrics
from stella.engine import kubeio
from stella.engine.evidence_hooks import EvidenceHooks
from stella.engine.promotion import Promotion
from stella.evidence.errors import EvidenceError
from stella.evidence.event import EvidenceEvent
from stella.evidence.packet import Outcome, PolicyEvidence, ReleaseRef, Subject
from stella.models.common import now, rfc3339
from stella.models.plugin import PluginStep
from stella.plugins import store
from stella.plugins.backends import ApiServerReads, DirectHttp, VaultSecrets
from stella.plugins.baseline import ResourceBaseline
from stella.plugins.report import LIMIT_OUTCOMES
from stella.plugins.runner import PluginRunner, StepResult
from stella.plugins.sandbox import Backends, Sandbox
from stella.secrets import VaultClient

log = logging.getLogger("stella.engine.plugins")
security = logging.getLogger("stella.security")
CAPABILITY_SIGNAL = "PluginCapabilityViolation"
ANOMALY_SIGNAL = "PluginResourceAnomaly"
GATE_RETRY = 30.0


@dataclass(frozen=True)
class StepBlock:
    """Why a promotion does not go on past its plugin steps: phase, reason, message."""

    phase: str
    reason: str
    message: str
    retry_after: float | None


_RUNNERS: dict[str, PluginRunner] = {}
_BASELINE = ResourceBaseline()


def runner(vault: VaultClient | None, max_in_flight: int = 4) -> PluginRunner:
    """One sandbox (one engine, one compiled-module cache) per operator process."""
    if "default" not in _RUNNERS:
        from stella.k8s.client import api_client

        backends = Backends(
            http=DirectHttp(),
            secrets=VaultSecrets(vault.read) if vault is not None else None,
            kube=ApiServerReads(api_client()),
        )
        _RUNNERS["default"] = PluginRunner(Sandbox(backends), max_in_flight=max_in_flight)
    return _RUNNERS["default"]


class PluginSteps:
    """Mixed into the Reconciler: uses its evidence hooks and Vault client."""

    hooks: EvidenceHooks
    vault: VaultClient | None
    plugin_runs_max: int

    async def _plugin_steps_before_deploy(self, promo: Promotion) -> StepBlock | None:
        """Gate steps (a failure waits and asks again), then PreDeploy (a failure fails);
        a run whose evidence could not be stored holds the promotion (EvidencePending)."""
        try:
            return await self._steps_before_deploy(promo)
        except EvidenceError as exc:
            return StepBlock(
                "Pending",
                "EvidencePending",
                "nothing deployed: a plugin run's evidence could not be stored "
                f"({exc.reason}); retrying",
                float(exc.retry_after or 10.0),
            )

    async def _steps_before_deploy(self, promo: Promotion) -> StepBlock | None:
        failed = await self._run_steps(promo, "Gate")
        if failed is not None:
            return StepBlock(
                "Pending",
                failed.reason,
                f"nothing deployed: {failed.message}; asking again",
                failed.refused.retry_after
                if failed.refused and failed.refused.retry_after
                else GATE_RETRY,
            )
        failed = await self._run_steps(promo, "PreDeploy")
        if failed is not None:
            return StepBlock("Failed", failed.reason, f"nothing deployed: {failed.message}", None)
        return None

    async def _plugin_steps_after_rollout(self, promo: Promotion) -> StepResult | None:
        """PostDeploy steps; the first that did not pass, or None."""
        return await self._run_steps(promo, "PostDeploy")

    async def _plugin_notify(self, promo: Promotion) -> None:
        try:
            await self._run_steps(promo, "Notify", stop_at_failure=False)
        except EvidenceError as exc:  # a notification never holds up a recorded outcome
            log.warning("notify plugins of %s: evidence not stored (%s)", promo.holder, exc.reason)

    async def _run_steps(
        self, promo: Promotion, at: str, *, stop_at_failure: bool = True
    ) -> StepResult | None:
        first_failure: StepResult | None = None
        for index, step in enumerate(promo.env_spec.plugins):
            if step.at != at:
                continue
            result = await asyncio.to_thread(runner(self.vault, self.plugin_runs_max).run, step)
            await self._record_run(promo, index, step, result)
            if not result.passed and first_failure is None:
                first_failure = result
                if stop_at_failure:
                    break
        return first_failure

    # ---- what a run leaves behind ------------------------------------------------------
    async def _record_run(
        self, promo: Promotion, index: int, step: PluginStep, result: StepResult
    ) -> None:
        if result.lifted is not None:
            await self._lifted(promo, step, result)
        report = result.report
        outcome = report.outcome if report is not None else result.reason
        metrics.PLUGIN_RUNS.labels(step.plugin, step.at, outcome).inc()
        if report is None:
            log.warning("%s: %s", promo.holder, result.message)
            return
        metrics.PLUGIN_RUN_SECONDS.labels(step.plugin).observe(report.duration_seconds)
        metrics.PLUGIN_FUEL.labels(step.plugin).observe(report.fuel_used)
        # Evidence first: a gate's pass counts only once it is stored (raises otherwise).
        await self.hooks.recorder.arecord(self._run_event(promo, index, step, result))
        await asyncio.to_thread(_write_last_run, step.plugin, promo, result)
        plugin_ref = _plugin_ref(step.plugin)
        if report.quarantines:
            await self._quarantine(promo, step, result)
        elif report.outcome in LIMIT_OUTCOMES:
            log.warning("%s: %s", promo.holder, report.summary())
            await kubeio.emit(plugin_ref, "Plugin" + report.outcome, report.summary(), "Warning")
        anomaly = _BASELINE.observe(step.plugin, report.fuel_used, report.memory_bytes)
        if anomaly is not None:
            metrics.SECURITY_EVENTS.labels(ANOMALY_SIGNAL).inc()
            security.warning(
                "security event %s: plugin %s %s", ANOMALY_SIGNAL, step.plugin, anomaly
            )
            await kubeio.emit(
                plugin_ref, ANOMALY_SIGNAL, f"plugin {step.plugin} {anomaly}", "Warning"
            )

    async def _quarantine(self, promo: Promotion, step: PluginStep, result: StepResult) -> None:
        report = result.report
        assert report is not None and report.violation is not None
        message = report.summary()
        metrics.SECURITY_EVENTS.labels(CAPABILITY_SIGNAL).inc()
        metrics.PLUGINS_QUARANTINED.labels(step.plugin).set(1)
        security.warning(
            "security event %s: plugin %s attempted %s in %s for %s; quarantined",
            CAPABILITY_SIGNAL,
            step.plugin,
            report.violation.describe(),
            promo.env_name,
            promo.holder,
        )
        since = rfc3339(now())
        quarantine = {
            "reason": "CapabilityViolation",
            "message": message[:4096],
            "since": since,
            "manifestDigest": report.manifest_digest,
            "moduleDigest": result.verified.manifest.module.digest if result.verified else "",
            "release": promo.holder,
            "environment": promo.env_name,
        }
        # The runner also refuses this plugin while the write has not landed: it reads the
        # Plugin live, and the write is retried by the next run's violation at worst.
        await asyncio.to_thread(_write_quarantine, step.plugin, quarantine)
        await kubeio.emit(_plugin_ref(step.plugin), "PluginQuarantined", message, "Warning")
        await kubeio.emit(
            promo.body, "PluginQuarantined", f"{promo.env_name}: {message}", "Warning"
        )
        await self.hooks.recorder.arecord(
            EvidenceEvent(
                kind="PluginQuarantined",
                event_id=f"plugin/{step.plugin}/quarantined/{since}",
                environment=promo.env_name,
                release=_release_ref(promo),
                subjects=_subjects(result),
                outcome=Outcome(
                    result="Quarantined", reason=CAPABILITY_SIGNAL, message=message[:4096]
                ),
            )
        )

    async def _lifted(self, promo: Promotion, step: PluginStep, result: StepResult) -> None:
        """A person lifted the quarantine (admission checked who and their verb): record
        it, naming them, then clear it from the Plugin's status."""
        r = result.lifted
        assert r is not None
        await self.hooks.recorder.arecord(
            EvidenceEvent(
                kind="PluginReenabled",
                event_id=f"plugin/{step.plugin}/reenabled/{r.quarantine}",
                environment=promo.env_name,
                subjects=_subjects(result),
                actor=r.by.username,
                outcome=Outcome(
                    result="Reenabled",
                    reason="PluginReenabled",
                    message=f"quarantine since {r.quarantine} lifted by {r.by.username}: "
                    f"{r.reason}"[:4096],
                ),
            )
        )
        await asyncio.to_thread(_write_quarantine, step.plugin, None)
        metrics.PLUGINS_QUARANTINED.labels(step.plugin).set(0)
        log.info("plugin %s re-enabled by %s: %s", step.plugin, r.by.username, r.reason)

    def _run_event(
        self, promo: Promotion, index: int, step: PluginStep, result: StepResult
    ) -> EvidenceEvent:
        report = result.report
        assert report is not None
        return EvidenceEvent(
            kind="PluginRun",
            event_id=(
                f"{_uid(promo)}/{promo.env_name}/plugin-{index}-{step.plugin}/{step.at}/"
                f"{time.time_ns()}"
            ),
            environment=promo.env_name,
            release=_release_ref(promo),
            subjects=_subjects(result),
            policy=PolicyEvidence(
                inputs={"step": step.at, "run": report.evidence()},
                outcome="Allowed" if report.passed else "Denied",
                reasons=[report.summary()[:1024]],
            ),
            outcome=Outcome(result=report.outcome, reason=step.at, message=report.message[:4096]),
        )


def _plugin_ref(name: str) -> dict[str, Any]:
    body = {"apiVersion": API_VERSION, "kind": "Plugin", "metadata": {"name": name}}
    return body


def _uid(promo: Promotion) -> str:
    meta = promo.body.get("metadata", {})
    return str(meta.get("uid") or promo.holder)


def _release_ref(promo: Promotion) -> ReleaseRef:
    meta = promo.body.get("metadata", {})
    return ReleaseRef(
        namespace=promo.key[0], name=promo.key[1], uid=meta.get("uid"), version=promo.spec.version
    )


def _subjects(result: StepResult) -> list[Subject]:
    if result.verified is None:
        return []
    digest = result.verified.manifest.module.digest.removeprefix("sha256:")
    return [Subject(name=f"plugin:{result.plugin}", digest={"sha256": digest})]


def _write_last_run(name: str, promo: Promotion, result: StepResult) -> None:
    report = result.report
    assert report is not None
    verified = result.verified.summary() if result.verified is not None else None
    try:
        store.patch_status(
            name,
            {
                "verified": verified,
                "lastRun": {
                    "at": rfc3339(now()),
                    "outcome": report.outcome,
                    "release": promo.holder,
                    "environment": promo.env_name,
                    "durationSeconds": round(report.duration_seconds, 4),
                    "fuelUsed": report.fuel_used,
                    "memoryBytes": report.memory_bytes,
                },
            },
        )
    except Exception as exc:  # status is for people; the evidence is the record
        log.warning("could not write the last run of plugin %s: %s", name, exc)


def _write_quarantine(name: str, quarantine: dict[str, Any] | None) -> None:
    for attempt in range(5):
        try:
            store.patch_status(name, {"quarantine": quarantine})
            return
        except Exception as exc:
            log.warning("could not write the quarantine of plugin %s (%s); retrying", name, exc)
            time.sleep(0.5 * (attempt + 1))
    log.error("plugin %s: the quarantine could not be written; it stays refused in memory", name)
