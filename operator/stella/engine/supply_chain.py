"""The supply-chain gate of a promotion (issue 17): an Environment's requireSignatures and
requireProvenance, checked against the registry right before deploy, beside digest
verification and with its semantics — a refused image fails the promotion (and halts the
Environment when the policy says so), anything that cannot be checked now fails closed
and is retried. The checks themselves live in :mod:`stella.supplychain`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from stella.engine import kubeio
from stella.models import EnvironmentSpec, ReleaseSpec
from stella.registry import RegistryClient
from stella.registry.verify import CredentialsLookup
from stella.secrets import VaultClient
from stella.secrets.errors import SecretsError
from stella.settings import Settings
from stella.supplychain.check import (
    ImageSupplyChain,
    SupplyChainReport,
    check_images,
)
from stella.supplychain.errors import SupplyChainError
from stella.supplychain.trust import provenance_rule, signature_rule


class SupplyChainGate:
    def __init__(
        self, registry: RegistryClient, vault: VaultClient | None, namespace: str | None = None
    ) -> None:
        self.registry = registry
        self.vault = vault
        self.namespace = namespace or Settings().namespace

    @staticmethod
    def applies(env_spec: EnvironmentSpec) -> bool:
        return env_spec.require_signatures is not None or env_spec.require_provenance is not None

    @staticmethod
    def halts(env_spec: EnvironmentSpec, report: SupplyChainReport) -> bool:
        """A refused image halts when the policy it failed says so."""
        if not report.refuses:
            return False
        sig, prov = env_spec.require_signatures, env_spec.require_provenance
        provenance_failed = report.reason.startswith("Provenance")
        if provenance_failed:
            return prov is not None and prov.halt_on_failure
        return sig is not None and sig.halt_on_failure

    async def _configmap(self, name: str) -> Mapping[str, str] | None:
        return await asyncio.to_thread(kubeio.get_configmap_data, self.namespace, name)

    async def check(
        self, spec: ReleaseSpec, env_spec: EnvironmentSpec, credentials: CredentialsLookup
    ) -> SupplyChainReport:
        images = [c.image for c in spec.components]
        try:
            sig = (
                await signature_rule(env_spec.require_signatures, self.vault, self._configmap)
                if env_spec.require_signatures is not None
                else None
            )
            prov = (
                await provenance_rule(env_spec.require_provenance, self.vault, self._configmap)
                if env_spec.require_provenance is not None
                else None
            )
        except (SupplyChainError, SecretsError) as err:
            what = "trusted keys" if isinstance(err, SupplyChainError) else "trusted keys in Vault"
            return SupplyChainReport(
                tuple(
                    ImageSupplyChain(
                        i,
                        False,
                        err.reason,
                        f"{what}: {err.message}",
                        retry_after=(err.retry_after if isinstance(err, SecretsError) else None)
                        or 30.0,
                    )
                    for i in images
                )
            )
        return await check_images(self.registry, images, sig, prov, credentials)
