"""Turn an Environment's supply-chain policy into verification rules: trusted keys read
from Vault references and from a ConfigMap's ``*.pem`` entries (and its
``trusted_root.json``), read afresh at each check. Missing or malformed trust material is
a :class:`TrustConfigError` (fail closed), never an empty trust set.

A ConfigMap counts as trust only with the label ``stella.io/supply-chain-trust=true``: the
admission policy supply-chain-trust-writer.stella.io lets only the operator and the
platform groups create, change or delete a ConfigMap that carries it (or carried it), so
whoever may merely write ConfigMaps in the operator's namespace cannot plant a key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from stella.models.supply_chain import (
    PassportPolicy,
    ProvenancePolicy,
    SignaturePolicy,
    TrustedKeys,
)
from stella.secrets.vault import VaultClient
from stella.supplychain.bundle import Identity
from stella.supplychain.check import PassportRule, ProvenanceRule, SignatureRule
from stella.supplychain.errors import TrustConfigError
from stella.supplychain.keys import TrustedKey, load_trusted_key

TRUSTED_ROOT = "trusted_root.json"
#: The label that puts a ConfigMap under the writer policy; without it, it is not trust.
TRUST_LABEL = "stella.io/supply-chain-trust"


@dataclass(frozen=True)
class TrustConfigMap:
    """What the trust loader reads of a ConfigMap: its labels and its data."""

    data: Mapping[str, str]
    labels: Mapping[str, str] = field(default_factory=dict)


#: Reads a ConfigMap from the operator's namespace (None when it does not exist).
ConfigMapReader = Callable[[str], Awaitable[TrustConfigMap | None]]


def _guarded_data(name: str, found: TrustConfigMap | None) -> Mapping[str, str]:
    if found is None:
        raise TrustConfigError(
            f"the supply-chain policy names ConfigMap {name}, which does not "
            "exist in the operator's namespace"
        )
    if found.labels.get(TRUST_LABEL) != "true":
        raise TrustConfigError(
            f"ConfigMap {name} is not labelled {TRUST_LABEL}=true, so admission does not "
            "guard who writes it and Stella does not trust it; have a platform engineer "
            f"label it: kubectl -n <operator namespace> label configmap {name} "
            f"{TRUST_LABEL}=true"
        )
    return found.data


async def _material(
    policy: TrustedKeys | PassportPolicy,
    vault: VaultClient | None,
    configmaps: ConfigMapReader | None,
) -> tuple[list[TrustedKey], str | None]:
    keys: list[TrustedKey] = []
    root: str | None = None
    if policy.keys:
        if vault is None:
            raise TrustConfigError(
                "the supply-chain policy names keys in Vault, but the operator has no Vault "
                "configured (set STELLA_VAULT_ADDR)"
            )
        for ref in policy.keys:
            pem = await vault.aread(ref, field_name="a trusted key")
            keys.append(load_trusted_key(ref, pem.reveal()))
    config_map = getattr(policy, "config_map", None)
    if config_map is not None:
        found = await configmaps(config_map) if configmaps is not None else None
        data = _guarded_data(config_map, found)
        for entry, text in sorted(data.items()):
            if entry.endswith(".pem"):
                keys.append(load_trusted_key(f"{config_map}/{entry}", text))
        root = data.get(TRUSTED_ROOT)
        if not keys and root is None:
            raise TrustConfigError(
                f"ConfigMap {config_map} holds no *.pem key and no {TRUSTED_ROOT}"
            )
    return keys, root


async def signature_rule(
    policy: SignaturePolicy, vault: VaultClient | None, configmaps: ConfigMapReader | None
) -> SignatureRule:
    keys, root = await _material(policy, vault, configmaps)
    return SignatureRule(
        keys=tuple(keys),
        trusted_root_json=root,
        identities=tuple(Identity(i.subject, i.issuer) for i in policy.identities),
    )


async def provenance_rule(
    policy: ProvenancePolicy, vault: VaultClient | None, configmaps: ConfigMapReader | None
) -> ProvenanceRule:
    keys, _ = await _material(policy, vault, configmaps)
    return ProvenanceRule(
        keys=tuple(keys),
        builders=tuple(policy.builders),
        source_repositories=tuple(policy.source_repositories),
    )


async def passport_rule(
    policy: PassportPolicy, vault: VaultClient | None, own_keys: Mapping[str, str]
) -> PassportRule:
    """The issuing Stella's evidence keys: from Vault when named, else this operator's own
    (its signer's current and retired public keys)."""
    if policy.keys:
        keys, _ = await _material(policy, vault, None)
    else:
        keys = [load_trusted_key(f"evidence key {kid}", pem) for kid, pem in own_keys.items()]
    if not keys:
        raise TrustConfigError("requirePassport has no evidence key to verify passports with")
    return PassportRule(keys=tuple(keys), environments=tuple(policy.environments))
