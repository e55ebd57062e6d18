"""Drift: does a tag still point at the digest a deployed Release pinned? Reported, never followed.

A component written ``registry/repo:1.4.2@sha256:...`` keeps its tag for readers. For an
Environment that asks for it, the reporter looks at the Release currently Deployed there
(``status.currentRelease``), resolves each such tag against its registry (credentials from
Vault, as for verification) and compares it with the pin:

* metric ``stella_image_drift{environment,component}``: 1 while the tag points elsewhere
  (or is gone), 0 while it matches; a check that could not be made (registry or Vault
  down) leaves the last value and counts in ``stella_drift_check_failures_total``;
* a Warning Event ``ImageDrifted`` on the Release when a component starts to drift, a
  Normal Event ``ImageInSync`` when it is back; nothing while the state stays the same.

Nothing is deployed and nothing halts: the pinned digest is what runs, and it still
verifies. Wiring (not done here): call :meth:`DriftReporter.check_all` every few minutes
from the controller with the Environments whose spec asks for drift reports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge

from stella import metrics
from stella.engine.view import Body, ClusterView, parse_release_key
from stella.k8s import events
from stella.models import EnvironmentSpec, ReleaseSpec
from stella.models.environment import EnvironmentStatus
from stella.models.release import ReleaseStatus
from stella.registry import RegistryClient, check_drift_many, vault_credentials
from stella.registry.verify import CredentialsLookup, DriftCheck
from stella.secrets import VaultClient

log = logging.getLogger("stella.engine.drift")

IMAGE_DRIFT = Gauge(
    "stella_image_drift",
    "1 while a deployed component's tag no longer points at its pinned digest (reported, "
    "never followed).",
    ["environment", "component"],
    registry=metrics.REGISTRY,
)
DRIFT_CHECK_FAILURES = Counter(
    "stella_drift_check_failures_total",
    "Drift checks that could not be made (registry or Vault unavailable, auth refused).",
    ["environment", "reason"],
    registry=metrics.REGISTRY,
)

Emit = Callable[..., None]


@dataclass(frozen=True)
class ComponentDrift:
    environment: str
    release: str  # namespace/name
    component: str
    check: DriftCheck


class DriftReporter:
    def __init__(
        self,
        view: ClusterView,
        registry: RegistryClient,
        vault: VaultClient | None,
        emit: Emit = events.emit,
    ) -> None:
        self.view = view
        self.registry = registry
        self.vault = vault
        self.emit = emit
        # (environment, release, component) -> drifted?  Only transitions make Events.
        self._last: dict[tuple[str, str, str], bool] = {}

    async def check_all(self, environments: Iterable[str]) -> list[ComponentDrift]:
        out: list[ComponentDrift] = []
        for name in environments:
            try:
                out += await self.check_environment(name)
            except Exception:  # one environment's trouble never stops the others
                log.exception("drift check of %s failed", name)
        return out

    async def check_environment(self, env_name: str) -> list[ComponentDrift]:
        env_body = self.view.environment(env_name)
        if env_body is None:
            return []
        env_status = EnvironmentStatus.model_validate(env_body.get("status") or {})
        if not env_status.current_release:
            return []
        key = parse_release_key(env_status.current_release)
        body = self.view.release(key)
        if body is None or not _deployed_in(body, env_name):
            return []
        spec = ReleaseSpec.model_validate(body.get("spec") or {})
        tagged = {c.image: c.name for c in spec.components if _has_tag(c.image)}
        if not tagged:
            return []
        env_spec = EnvironmentSpec.model_validate(env_body.get("spec") or {})
        checks = await check_drift_many(self.registry, list(tagged), self._lookup(env_spec))
        results = []
        for check in checks:
            component = tagged[check.image]
            results.append(ComponentDrift(env_name, env_status.current_release, component, check))
            self._report(env_name, body, component, check)
        return results

    def _report(self, env_name: str, body: Body, component: str, check: DriftCheck) -> None:
        if check.reason not in ("InSync", "Drifted", "TagNotFound"):
            DRIFT_CHECK_FAILURES.labels(env_name, check.reason).inc()
            log.warning("drift of %s in %s not checked: %s", component, env_name, check.reason)
            return
        IMAGE_DRIFT.labels(env_name, component).set(1 if check.drifted else 0)
        meta = body.get("metadata") or {}
        key = (env_name, f"{meta.get('namespace')}/{meta.get('name')}", component)
        before = self._last.get(key, False)
        self._last[key] = check.drifted
        if check.drifted and not before:
            self.emit(body, "ImageDrifted", f"{env_name}: {component}: {check.message}", "Warning")
        elif before and not check.drifted:
            self.emit(
                body,
                "ImageInSync",
                f"{env_name}: {component}: tag {check.tag} points at the pinned digest again",
            )

    def _lookup(self, env_spec: EnvironmentSpec) -> CredentialsLookup | None:
        if env_spec.registry_credentials is None or self.vault is None:
            # Without Vault the anonymous request fails with an auth error: counted, no Event.
            return None
        return vault_credentials(
            self.vault, env_spec.registry_credentials, env_spec.allowed_registries
        )


def _has_tag(image: str) -> bool:
    name = image.split("@", 1)[0]
    return ":" in name.rsplit("/", 1)[-1]


def _deployed_in(body: Mapping[str, Any], env_name: str) -> bool:
    status = ReleaseStatus.model_validate(body.get("status") or {})
    return any(p.name == env_name and p.phase == "Deployed" for p in status.environments)
