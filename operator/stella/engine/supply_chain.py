"""The supply-chain gate of a promotion (issue 17): an Environment's requireSignatures and
requireProvenance, checked against the registry right before deploy, beside digest
verification and with its semantics — a refused image fails the promotion (and halts the
Environment when the policy says so), anything that cannot be checked now fails closed
and is retried. The checks themselves live in :mod:`stella.supplychain`."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime

from stella import __version__
from stella.engine import kubeio
from stella.engine.promotion import Promotion
from stella.evidence.canonical import canonical_json
from stella.models import EnvironmentSpec, ReleaseSpec
from stella.policy import recorded_identity
from stella.policy.binding import binding_of
from stella.registry import RegistryClient
from stella.registry.reference import parse_pinned
from stella.registry.verify import CredentialsLookup
from stella.secrets import VaultClient
from stella.secrets.errors import SecretsError
from stella.secrets.signers import Signer
from stella.settings import Settings
from stella.supplychain.check import (
    ImageSupplyChain,
    SupplyChainReport,
    check_images,
)
from stella.supplychain.errors import SupplyChainError
from stella.supplychain.passport import Approver, PassportFacts, publish_passport
from stella.supplychain.trust import (
    TrustConfigMap,
    passport_rule,
    provenance_rule,
    signature_rule,
)


class SupplyChainGate:
    def __init__(
        self,
        registry: RegistryClient,
        vault: VaultClient | None,
        signer: Signer,
        namespace: str | None = None,
    ) -> None:
        self.registry = registry
        self.vault = vault
        self.signer = signer  # the evidence signer: signs passports, its keys verify them
        self.namespace = namespace or Settings().namespace

    @staticmethod
    def applies(env_spec: EnvironmentSpec) -> bool:
        return (
            env_spec.require_signatures is not None
            or env_spec.require_provenance is not None
            or env_spec.require_passport is not None
        )

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

    async def _configmap(self, name: str) -> TrustConfigMap | None:
        found = await asyncio.to_thread(kubeio.get_configmap, self.namespace, name)
        return None if found is None else TrustConfigMap(labels=found[0], data=found[1])

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
            passport = (
                await passport_rule(
                    env_spec.require_passport, self.vault, self.signer.public_keys()
                )
                if env_spec.require_passport is not None
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
        return await check_images(self.registry, images, sig, prov, credentials, passport=passport)

    async def publish_passport(
        self, promo: Promotion, deployed_at: datetime, credentials: CredentialsLookup
    ) -> None:
        """Attach the passport to every deployed image (raises RegistryError/SecretsError:
        the caller retries; publishing again writes nothing twice): the promotion's
        Environment and its policy, the Release, and the approvals that counted."""
        body, spec, env_name, env_spec = promo.body, promo.spec, promo.env_name, promo.env_spec
        approvals = promo.p.approvals
        meta = body.get("metadata") or {}
        binding = binding_of(body)
        requester = recorded_identity(body, "requester")
        checks = ["digest"]
        checks += ["signatures"] if env_spec.require_signatures is not None else []
        checks += ["provenance"] if env_spec.require_provenance is not None else []
        checks += ["passport"] if env_spec.require_passport is not None else []
        facts = PassportFacts(
            environment=env_name,
            policy_digest=hashlib.sha256(
                canonical_json(env_spec.model_dump(mode="json", by_alias=True))
            ).hexdigest(),
            release=f"{meta.get('namespace')}/{meta.get('name')}",
            release_uid=meta.get("uid"),
            version=spec.version,
            spec_digest=binding.spec_digest if binding else None,
            requester=requester.username if requester else None,
            approvers=tuple(
                Approver(a.approver, a.decision, a.at, a.approval)
                for a in approvals
                if a.decision == "Approve"
            ),
            deployed_at=deployed_at,
            operator_version=__version__,
            checks=tuple(checks),
        )
        for c in spec.components:
            ref = parse_pinned(c.image)
            await publish_passport(
                self.registry, c.image, facts, self.signer, await credentials(ref)
            )
