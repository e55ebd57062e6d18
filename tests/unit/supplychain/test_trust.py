"""Trust material for the policies: missing or malformed is a configuration error (fail
closed, retried), never an empty set of trusted keys."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
from tests.supplychain_support import BUILDER, REPO, KeyPair

from stella.models.supply_chain import PassportPolicy, ProvenancePolicy, SignaturePolicy
from stella.supplychain.errors import TrustConfigError
from stella.supplychain.trust import (
    TRUST_LABEL,
    TrustConfigMap,
    passport_rule,
    provenance_rule,
    signature_rule,
)


def reader(data: dict[str, dict[str, str]], labelled: bool = True):  # type: ignore[no-untyped-def]
    async def read(name: str) -> TrustConfigMap | None:
        found: Mapping[str, str] | None = data.get(name)
        if found is None:
            return None
        return TrustConfigMap(data=found, labels={TRUST_LABEL: "true"} if labelled else {})

    return read


def test_keys_from_a_configmap_are_named_by_entry() -> None:
    ci = KeyPair.generate()
    policy = SignaturePolicy(config_map="trust")
    rule = asyncio.run(
        signature_rule(policy, None, reader({"trust": {"ci.pem": ci.public_pem, "notes": "x"}}))
    )
    assert [k.name for k in rule.keys] == ["trust/ci.pem"]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({}, "does not exist"),
        ({"trust": {"readme.txt": "x"}}, "no *.pem key"),
        ({"trust": {"ci.pem": "not a key"}}, "not a PEM public key"),
    ],
)
def test_missing_or_malformed_configmap_trust_fails_closed(
    data: dict[str, dict[str, str]], words: str
) -> None:
    policy = ProvenancePolicy(config_map="trust", builders=[BUILDER], source_repositories=[REPO])
    with pytest.raises(TrustConfigError) as err:
        asyncio.run(provenance_rule(policy, None, reader(data)))
    assert words in err.value.message and not err.value.refuses


def test_a_configmap_without_the_trust_label_is_not_trust() -> None:
    """Only a labelled ConfigMap is guarded by supply-chain-trust-writer.stella.io; an
    unlabelled one (anyone with ConfigMap rights could have written it) trusts nothing."""
    ci = KeyPair.generate()
    policy = SignaturePolicy(config_map="trust")
    with pytest.raises(TrustConfigError) as err:
        unlabelled = reader({"trust": {"ci.pem": ci.public_pem}}, labelled=False)
        asyncio.run(signature_rule(policy, None, unlabelled))
    assert f"not labelled {TRUST_LABEL}=true" in err.value.message
    assert "label configmap trust" in err.value.message and not err.value.refuses


def test_vault_keys_without_vault_fail_closed() -> None:
    policy = SignaturePolicy(keys=["vault:secret/cosign/ci#pub"])
    with pytest.raises(TrustConfigError) as err:
        asyncio.run(signature_rule(policy, None, reader({})))
    assert "STELLA_VAULT_ADDR" in err.value.message


def test_a_policy_must_name_some_trust() -> None:
    with pytest.raises(ValueError, match="name the trusted keys"):
        SignaturePolicy()


def test_passports_default_to_this_operators_evidence_keys() -> None:
    evidence = KeyPair.generate()
    rule = asyncio.run(
        passport_rule(
            PassportPolicy(environments=["staging"]), None, {"local:ab": evidence.public_pem}
        )
    )
    assert [k.name for k in rule.keys] == ["evidence key local:ab"]
    with pytest.raises(TrustConfigError):
        asyncio.run(passport_rule(PassportPolicy(environments=["staging"]), None, {}))
